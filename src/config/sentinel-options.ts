import { hostname } from "node:os";
import { identityOptions } from "./identity-options.js";
import { corsOptions } from "./cors-options.js";
import { option, type OptionValues } from "./options.js";
import { rpcLimitOptions } from "./rpc-limit-options.js";

/** Every `goulette sentinel` option: flag, GOULETTE_* env var and YAML key (the seed's names kept). */
export const sentinelOptionSchema = {
  id: option({ kind: "string", description: "Sentinel id (unique in the cluster)", default: hostname() }),
  address: option({
    kind: "string",
    description: "Listen host:port: gRPC (h2c), Connect and gRPC-web (HTTP/1.1), /healthz /readyz /metrics",
    default: "0.0.0.0:9090",
  }),
  "advertise-url": option({
    kind: "string",
    description:
      "URL other sentinels forward writes to (the election value); default http://<id or 127.0.0.1>:<port>",
    default: "",
  }),
  "etcd-endpoints": option({
    kind: "list",
    description: "External etcd client URLs, comma-separated (ignored with --enable-embedded-etcd)",
    default: ["http://127.0.0.1:2379"],
  }),
  "etcd-prefix": option({
    kind: "string",
    description: "Key prefix of everything Goulette keeps in etcd",
    default: "/goulette",
  }),
  "enable-embedded-etcd": option({
    kind: "boolean",
    description: "Run etcd as a child process (dev mode; needs the etcd binary)",
    default: false,
  }),
  "etcd-port": option({ kind: "number", description: "Embedded etcd client port", default: 2379, min: 1 }),
  "etcd-peer-port": option({ kind: "number", description: "Embedded etcd peer port", default: 2380, min: 1 }),
  "etcd-data-dir": option({
    kind: "string",
    description: "Embedded etcd data directory",
    default: "./data/etcd",
  }),
  "etcd-tls-ca": option({ kind: "string", description: "CA file for TLS to etcd", default: "" }),
  "etcd-tls-cert": option({ kind: "string", description: "Client certificate for TLS to etcd", default: "" }),
  "etcd-tls-key": option({ kind: "string", description: "Client key for TLS to etcd", default: "" }),
  "etcd-username": option({ kind: "string", description: "etcd user (etcd auth)", default: "" }),
  "etcd-password": option({ kind: "string", description: "etcd password (etcd auth)", default: "" }),
  "log-level": option({
    kind: "string",
    description: "Log level",
    default: "info",
    choices: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
  }),
  "heartbeat-ttl": option({
    kind: "number",
    description: "Broker heartbeat lease TTL in seconds",
    default: 10,
    min: 2,
  }),
  "election-ttl": option({
    kind: "number",
    description: "Leader election lease TTL in seconds",
    default: 5,
    min: 2,
  }),
  "virtual-nodes": option({
    kind: "number",
    description: "Virtual nodes per broker in the hash ring",
    default: 150,
    min: 1,
  }),
  "default-partitions": option({
    kind: "number",
    description: "Partitions of a topic created with partitions=0",
    default: 3,
    min: 1,
  }),
  "snapshot-every": option({
    kind: "number",
    description: "Write a snapshot and compact the log every N operations",
    default: 10_000,
    min: 1,
  }),
  "forward-timeout": option({
    kind: "number",
    description: "How long a write keeps retrying through a leader change, in ms",
    default: 10_000,
    min: 100,
  }),
  "max-group-members": option({
    kind: "number",
    description: "Members one consumer group may have; a join beyond it is refused",
    default: 1000,
    min: 1,
  }),
  "probe-timeout": option({
    kind: "number",
    description: "Deadline of the leader's Health probe of a reported broker, in ms",
    default: 1_000,
    min: 50,
  }),
  "leader-balance-interval": option({
    kind: "number",
    description:
      "How often the leader evens out partition leadership within topics (to in-sync replicas only), in ms; 0: never",
    default: 30_000,
    min: 0,
  }),
  "max-pending-topic-creations": option({
    kind: "number",
    description:
      "Topic creations the leader queues for commit at once; more are refused with ResourceExhausted (clients retry with backoff)",
    default: 256,
    min: 1,
  }),
  "max-pending-role-pushes": option({
    kind: "number",
    description:
      "Topic creations are refused (ResourceExhausted, retried by clients) while more role changes than this wait to reach the brokers",
    default: 2_000,
    min: 1,
  }),
  "suspect-verdict-max-hold": option({
    kind: "number",
    description:
      "How long (ms) the leader may hold a 'broker down' verdict whose evidence is suspect (Health answers, own event loop or etcd slow, most brokers at once)",
    default: 30_000,
    min: 0,
  }),
  "listener-hosts": option({
    kind: "list",
    description:
      "name=host[:port],…: requests sent to that host get the brokers' addresses on listener name (e.g. external=goulette.example.com)",
    default: [],
  }),
  "kube-namespace": option({
    kind: "string",
    description: "Namespace of broker pods (pod watcher)",
    default: "",
  }),
  "kube-broker-selector": option({
    kind: "string",
    description: "Label selector of broker pods; empty disables the pod watcher",
    default: "",
  }),
  kubeconfig: option({
    kind: "string",
    description: "Kubeconfig file (outside a cluster) for the pod watcher",
    default: "",
  }),
  "tls-cert": option({
    kind: "string",
    description: "Server certificate (PEM) for RPC over TLS",
    default: "",
  }),
  "tls-key": option({ kind: "string", description: "Server key (PEM) for RPC over TLS", default: "" }),
  "tls-ca": option({
    kind: "string",
    description: "CA (PEM): require client certificates signed by it (mutual TLS)",
    default: "",
  }),
  "admin-token": option({
    kind: "string",
    description:
      "Legacy single shared token (compatibility): its holder may do everything; prefer --tokens-file",
    default: "",
  }),
  ...identityOptions,
  ...rpcLimitOptions,
  ...corsOptions,
};

export type SentinelOptions = OptionValues<typeof sentinelOptionSchema>;
