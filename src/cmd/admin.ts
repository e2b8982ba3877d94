import { toJson as protoToJson } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import {
  GetClusterStatusResponseSchema,
  ListOperationsResponseSchema,
  ListTopicsResponseSchema,
  SentinelService,
} from "../gen/goulette/v1/sentinel_pb.js";
import { InvalidArgumentError, UnavailableError } from "../errors.js";
import { formatHelp, loadOptions, option, type OptionValues } from "../config/options.js";
import { bearerHeaders } from "../server/auth.js";
import { describeTlsError } from "../server/tls.js";
import { TransportPool } from "../server/transport-pool.js";
import { formatTable, toJson } from "./table.js";

const schema = {
  sentinel: option({
    kind: "list",
    description: "Sentinel URLs to ask (the first that answers is used)",
    default: ["http://127.0.0.1:9090"],
  }),
  json: option({ kind: "boolean", description: "Print JSON instead of a table", default: false }),
  token: option({ kind: "string", description: "Admin token (when the sentinels require one)", default: "" }),
  limit: option({ kind: "number", description: "Rows to list (topics, operations)", default: 100, min: 1 }),
  after: option({
    kind: "string",
    description: "Continue after this topic name / operation id",
    default: "",
  }),
  prefix: option({ kind: "string", description: "Only topics starting with this", default: "" }),
  "tls-ca": option({
    kind: "string",
    description:
      "CA (PEM) that the sentinels' certificates chain to (https URLs); default: Node's trust store",
    default: "",
  }),
  "tls-cert": option({
    kind: "string",
    description: "Client certificate (PEM) for sentinels that require one (mutual TLS)",
    default: "",
  }),
  "tls-key": option({ kind: "string", description: "Key (PEM) of --tls-cert", default: "" }),
};

const USAGE = `Usage: goulette admin <status|topics|operations|snapshot|unregister-broker> [options]

  status       leader, sentinels, ring, op-log head/applied, brokers
  topics       topic assignments (what 'etcdctl get /goulette/topics/ --prefix' holds)
  operations   the operation log (what 'etcdctl get /goulette/operations/ --prefix' holds)
  snapshot     make the leader write a snapshot now and compact the log
  unregister-broker <id>
               remove a broker for good (after a scale-down): its replicas move elsewhere`;

export async function runAdmin(argv: string[]): Promise<void> {
  const { values: o, positionals, help } = loadOptions(schema, { argv, allowPositionals: true });
  const command = positionals[0];
  if (help || !command) {
    console.log(formatHelp(USAGE, schema));
    if (!help) process.exitCode = 2;
    return;
  }
  const pool = new TransportPool({
    tls: {
      ...(o.tlsCa ? { caFile: o.tlsCa } : {}),
      ...(o.tlsCert ? { certFile: o.tlsCert } : {}),
      ...(o.tlsKey ? { keyFile: o.tlsKey } : {}),
    },
    defaultScheme: "http",
  });
  try {
    await runCommand(command, positionals.slice(1), o, pool);
  } finally {
    pool.close();
  }
}

type AdminOptions = OptionValues<typeof schema>;

async function runCommand(
  command: string,
  args: string[],
  o: AdminOptions,
  pool: TransportPool,
): Promise<void> {
  const call = async <T>(fn: (client: Client<typeof SentinelService>) => Promise<T>): Promise<T> => {
    let lastError: unknown;
    for (const url of o.sentinel) {
      try {
        return await fn(createClient(SentinelService, pool.get(url)));
      } catch (err) {
        // A TLS failure gets a sentence saying what to fix; Node's own message does not.
        const hint = describeTlsError(err);
        lastError = hint ? new UnavailableError(`${url}: ${hint}`) : err;
      }
    }
    throw lastError;
  };
  const options = { timeoutMs: 10_000, headers: bearerHeaders(o.token) };

  switch (command) {
    case "status": {
      const res = await call((c) => c.getClusterStatus({}, options));
      if (o.json) return print(toJson(protoToJson(GetClusterStatusResponseSchema, res)));
      print(
        [
          `answered by:  ${res.sentinelId}`,
          `leader:       ${res.leaderUrl || "(none elected)"}`,
          `ring:         ${res.ringBrokers} brokers, ${res.ringVirtualNodes} virtual nodes`,
          `operations:   head ${res.oplogHeadId}, applied ${res.oplogAppliedId}, lag ${res.replayLagOps}, snapshot at ${res.snapshotId}`,
          `topics:       ${res.topics}`,
          `state digest: ${res.stateDigest.slice(0, 16)}`,
          "",
          formatTable(
            ["SENTINEL", "URL", "LEADER"],
            // An older sentinel campaigns without its id: "-" rather than a blank cell.
            res.sentinels.map((s) => [s.id || "-", s.url, s.isLeader ? "yes" : ""]),
          ),
          "",
          formatTable(
            ["BROKER", "ADDRESS", "STATUS", "TOPICS", "LAST HEARTBEAT"],
            res.brokers.map((b) => [
              b.brokerId,
              b.address,
              BrokerStatus[b.status] ?? "UNSPECIFIED",
              b.topics.length,
              b.lastHeartbeat > 0n ? new Date(Number(b.lastHeartbeat)).toISOString() : "-",
            ]),
          ),
        ].join("\n"),
      );
      return;
    }
    case "topics": {
      const res = await call((c) =>
        c.listTopics({ prefix: o.prefix, after: o.after, limit: o.limit }, options),
      );
      if (o.json) return print(toJson(protoToJson(ListTopicsResponseSchema, res)));
      print(
        formatTable(
          ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "EPOCH", "VERSION"],
          res.topics.flatMap((t) =>
            t.partitions.map((p) => [
              t.topic,
              p.partition,
              p.leader || "-",
              p.replicas.join(","),
              p.epoch,
              t.version,
            ]),
          ),
        ),
      );
      if (res.nextAfter) print(`\nmore: --after ${res.nextAfter}`);
      return;
    }
    case "operations": {
      if (o.after !== "" && !/^\d+$/.test(o.after))
        throw new InvalidArgumentError(`--after must be an operation id, got '${o.after}'`);
      const res = await call((c) =>
        c.listOperations({ afterId: BigInt(o.after || "0"), limit: o.limit }, options),
      );
      if (o.json) return print(toJson(protoToJson(ListOperationsResponseSchema, res)));
      print(
        formatTable(
          ["ID", "TYPE", "TIME", "LEADER", "DATA"],
          res.operations.map((op) => [
            op.id,
            op.type,
            new Date(Number(op.timestamp)).toISOString(),
            op.leaderId,
            truncate(op.dataJson, 80),
          ]),
        ),
      );
      print(`\nhead ${res.headId}; operations up to ${res.snapshotId} are compacted into the snapshot`);
      if (res.nextAfterId > 0n) print(`more: --after ${res.nextAfterId}`);
      return;
    }
    case "unregister-broker": {
      const brokerId = args[0];
      if (!brokerId) throw new InvalidArgumentError("unregister-broker needs a broker id");
      const res = await call((c) => c.unregisterBroker({ brokerId }, options));
      if (o.json) return print(toJson({ brokerId, operationId: res.operationId }));
      print(`broker ${brokerId} unregistered (operation ${res.operationId}); its replicas were moved`);
      return;
    }
    case "snapshot": {
      const res = await call((c) => c.createSnapshot({}, options));
      if (o.json)
        return print(
          toJson({
            snapshotId: res.snapshotId,
            compactedOperations: res.compactedOperations,
            sizeBytes: res.sizeBytes,
          }),
        );
      print(
        `snapshot at operation ${res.snapshotId}: ${res.sizeBytes} bytes, ${res.compactedOperations} operations compacted`,
      );
      return;
    }
    default:
      throw new InvalidArgumentError(
        `unknown admin command '${command}' (status, topics, operations, snapshot, unregister-broker)`,
      );
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function print(text: string): void {
  console.log(text);
}
