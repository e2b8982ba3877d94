import { hostname } from "node:os";
import { identityOptions } from "./identity-options.js";
import { MAX_REPLICA_COUNT } from "../fsm/validation.js";
import { corsOptions } from "./cors-options.js";
import { option, type OptionValues } from "./options.js";
import { rpcLimitOptions } from "./rpc-limit-options.js";

/** Every `goulette broker` option: flag, GOULETTE_* env var and YAML key. */
export const brokerOptionSchema = {
  id: option({
    kind: "string",
    description: "Broker id (unique; the pod name in Kubernetes)",
    default: hostname(),
  }),
  address: option({
    kind: "string",
    description: "Listen host:port: gRPC (h2c), Connect and gRPC-web (HTTP/1.1), /healthz /readyz /metrics",
    default: "0.0.0.0:9190",
  }),
  "advertise-address": option({
    kind: "string",
    description: "host:port clients and other brokers dial; default 127.0.0.1:<port>",
    default: "",
  }),
  "advertise-listeners": option({
    kind: "list",
    description:
      "More addresses on named listeners, name=host:port,… (e.g. external=lb.example.com:9094); name@broker-id=host:port is for that broker only",
    default: [],
  }),
  "data-dir": option({
    kind: "string",
    description: "Directory of the partition logs",
    default: "./data/broker",
  }),
  sentinels: option({
    kind: "list",
    description: "Sentinel URLs, comma-separated (any of them; writes are forwarded to the leader)",
    default: ["http://127.0.0.1:9090"],
  }),
  fsync: option({
    kind: "string",
    description:
      "always: fsync before acknowledging (group commit); interval: fsync every --fsync-interval ms",
    default: "always",
    choices: ["always", "interval"],
  }),
  "fsync-interval": option({
    kind: "number",
    description: "fsync period in ms with --fsync interval",
    default: 200,
    min: 1,
  }),
  "interval-sync": option({
    kind: "string",
    description:
      "With --fsync interval: volume syncs the data directory's filesystem once per interval for every " +
      "partition written in it (one syncfs); file fsyncs each written partition file",
    default: "volume",
    choices: ["volume", "file"],
  }),
  "segment-bytes": option({
    kind: "number",
    description: "Roll a segment file at this size",
    default: 64 * 1024 * 1024,
    min: 4096,
  }),
  "retention-hours": option({
    kind: "number",
    description: "Delete segments older than this (0 = keep)",
    default: 168,
    min: 0,
  }),
  "retention-bytes": option({
    kind: "number",
    description: "Per-partition size cap (0 = none)",
    default: 0,
    min: 0,
  }),
  "max-message-bytes": option({
    kind: "number",
    description: "Largest payload accepted",
    default: 1024 * 1024,
    min: 1,
  }),
  "scrub-interval": option({
    kind: "number",
    description:
      "How often every sealed segment is read again and verified (a damaged range is fetched again from " +
      "an in-sync replica), in ms; the first pass starts a minute after start-up; 0: never",
    default: 86_400_000,
    min: 0,
  }),
  "scrub-bytes-per-second": option({
    kind: "number",
    description: "Read rate bound of the scrub of sealed segments, in bytes per second (the whole broker)",
    default: 4 * 1024 * 1024,
    min: 4096,
  }),
  "keepalive-interval": option({
    kind: "number",
    description: "KeepAlive period in ms (well below the sentinels' heartbeat TTL)",
    default: 3_000,
    min: 100,
  }),
  "replica-lag-max": option({
    kind: "number",
    description: "A follower further behind than this many ms leaves the in-sync replica set",
    default: 10_000,
    min: 100,
  }),
  "replication-sessions": option({
    kind: "boolean",
    description:
      "Replicate every partition followed from one leader over one ReplicateSession stream, and serve it " +
      "(false: one Replicate stream per partition, as brokers before sessions)",
    default: true,
  }),
  "replication-frames": option({
    kind: "boolean",
    description:
      "Replicate records as the stored frames, as they are written, both as follower and as leader " +
      "(false: records one by one, as brokers before frames; for a rolling upgrade, or to rule them out)",
    default: true,
  }),
  "grpc-fast-path": option({
    kind: "boolean",
    description:
      "Serve gRPC calls (binary, uncompressed, over HTTP/2) straight from their HTTP/2 streams, with the " +
      "same checks and interceptors, and follow leaders over a lean gRPC client (false: every call, " +
      "served or made, through connect-node, as before)",
    default: true,
  }),
  "v8-pretenuring": option({
    kind: "boolean",
    description:
      "Let V8 allocate objects of allocation sites it judges long-lived straight into the old generation " +
      "(off by default: a broker's short-lived request objects then filled it and forced full GCs, half " +
      "of a follower's CPU under replication; see docs/benchmarks.md)",
    default: false,
  }),
  "max-open-segment-files": option({
    kind: "number",
    description:
      "Segment files kept open at most; the least recently used are closed and reopened on use (files in " +
      "use stay open); 0: half the process's open-file limit (ulimit -n), between 64 and 65536",
    default: 0,
    min: 0,
    integer: true,
  }),
  "segment-file-idle-timeout": option({
    kind: "number",
    description:
      "A segment file unused for this many ms is closed (reopened on use), so quiet partitions hold no " +
      "file descriptor; 0: only the bound closes files",
    default: 60_000,
    min: 0,
    max: 2 ** 31 - 1,
    integer: true,
  }),
  "min-insync-replicas": option({
    kind: "number",
    description:
      "acks=all is refused (NOT_ENOUGH_REPLICAS) while fewer replicas than this are in sync, leader included",
    default: 1,
    min: 1,
    // More could never be in sync: a topic has at most this many replicas.
    max: MAX_REPLICA_COUNT,
    integer: true,
  }),
  "max-consumer-lag-series": option({
    kind: "number",
    description:
      'Series of goulette_broker_consumer_group_lag_messages at most; the smaller lags are summed into group="_other"',
    default: 200,
    min: 1,
    max: 100_000,
    integer: true,
  }),
  "max-partitions": option({
    kind: "number",
    description: "Partitions this broker holds at most; a role for one more is refused (ResourceExhausted)",
    default: 50_000,
    min: 1,
    max: 10_000_000,
    integer: true,
  }),
  "max-consumer-groups": option({
    kind: "number",
    description:
      "Consumer groups one partition keeps committed offsets for; a commit of one more is refused (ResourceExhausted)",
    default: 10_000,
    min: 1,
    max: 10_000_000,
    integer: true,
  }),
  "unread-responses-timeout": option({
    kind: "number",
    description:
      "ms a SendMessage stream stays paused with answers its client does not read; then it is ended (ResourceExhausted)",
    default: 30_000,
    min: 100,
    max: 2 ** 31 - 1,
    integer: true,
  }),
  "log-level": option({
    kind: "string",
    description: "Log level",
    default: "info",
    choices: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
  }),
  "tls-cert": option({
    kind: "string",
    description: "Server certificate (PEM) for RPC over TLS",
    default: "",
  }),
  "tls-key": option({ kind: "string", description: "Server key (PEM)", default: "" }),
  "tls-ca": option({
    kind: "string",
    description: "CA (PEM) requiring client certificates (mutual TLS)",
    default: "",
  }),
  "auth-token": option({
    kind: "string",
    description:
      "Legacy single shared token (compatibility): sent to sentinels, and its holder may do everything; prefer --tokens-file",
    default: "",
  }),
  ...identityOptions,
  ...rpcLimitOptions,
  ...corsOptions,
};

export type BrokerOptions = OptionValues<typeof brokerOptionSchema>;
