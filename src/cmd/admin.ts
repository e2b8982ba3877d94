import { toJson as protoToJson } from "@bufbuild/protobuf";
import { Admin, NoSentinelReachableError } from "../client/node.js";
import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import {
  GetClusterStatusResponseSchema,
  ListOperationsResponseSchema,
  ListTopicsResponseSchema,
} from "../gen/goulette/v1/sentinel_pb.js";
import { InvalidArgumentError, UnavailableError } from "../errors.js";
import { formatHelp, loadOptions, option, toCamelCase, type OptionValues } from "../config/options.js";
import { describeTlsError } from "../server/tls.js";
import { partitionNumbers, runGroupCommand } from "./admin-groups.js";
import { ACL_USAGE, runAclCommand } from "./admin-acl.js";
import { sentinelsOption } from "./cli-options.js";
import { LISTENER_OPTION, TOKEN_OPTIONS, optionalToken, transportOptions } from "./produce.js";
import { formatTable, toJson } from "./table.js";

const schema = {
  ...sentinelsOption("Sentinel URLs to ask (the first that answers is used)"),
  json: option({ kind: "boolean", description: "Print JSON instead of a table", default: false, short: "J" }),
  ...TOKEN_OPTIONS,
  ...LISTENER_OPTION,
  limit: option({ kind: "number", description: "Rows to list (topics, operations)", default: 100, min: 1 }),
  after: option({
    kind: "string",
    description: "Continue after this topic name / operation id",
    default: "",
  }),
  prefix: option({
    kind: "string",
    description: "Only topics (topics) or groups (groups) whose name starts with this",
    default: "",
  }),
  group: option({
    kind: "string",
    description: "Consumer group (groups: describe this one; reset-offsets, delete-offsets: required)",
    default: "",
  }),
  topic: option({
    kind: "string",
    description:
      "Topic (groups --group: only this one, also for a group without live members; reset-offsets, delete-offsets, delete-records: required; acl: a topic or a prefix ending in '*')",
    default: "",
  }),
  principal: option({
    kind: "string",
    description: "acl: the application ('app:<name>') or every application ('*')",
    default: "",
  }),
  permission: option({
    kind: "list",
    repeatable: true,
    description: "acl add: read and/or write (comma-separated)",
    default: [],
  }),
  partition: option({
    kind: "list",
    repeatable: true,
    description:
      "reset-offsets, delete-offsets, delete-records: only these partitions (comma-separated; default: all)",
    default: [],
  }),
  "to-earliest": option({
    kind: "boolean",
    description: "reset-offsets: to each partition's first stored offset (consume everything retained)",
    default: false,
  }),
  "to-latest": option({
    kind: "boolean",
    description: "reset-offsets: to each partition's high watermark (skip everything so far)",
    default: false,
  }),
  "to-offset": option({
    kind: "number",
    description:
      "reset-offsets: to this offset on each partition; refused unless within every partition's [log start, high watermark]",
    default: -1,
    min: 0,
    integer: true,
  }),
  before: option({
    kind: "number",
    description: "delete-records: delete the records below this offset on each partition named",
    default: -1,
    min: 0,
    integer: true,
  }),
  all: option({
    kind: "boolean",
    description: "delete-records: delete every acknowledged record (up to each partition's high watermark)",
    default: false,
  }),
  "dry-run": option({
    kind: "boolean",
    description: "reset-offsets: print the offsets it would set, commit nothing",
    default: false,
  }),
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

const USAGE = `Usage: goulette admin <command> [options]

  status       leader, sentinels, ring, op-log head/applied, brokers
  topics       topic assignments (what 'etcdctl get /goulette/topics/ --prefix' holds)
  operations   the operation log (what 'etcdctl get /goulette/operations/ --prefix' holds)
  snapshot     make the leader write a snapshot now and compact the log
  unregister-broker <id>
               remove a broker for good (after a scale-down): its replicas move elsewhere
  groups [--prefix p]
               consumer groups: state, live members, generation, topics, partitions
  groups --group g [--topic t]
               one group: its members and their partitions, then per partition the owner,
               committed offset, high watermark and lag, and the total lag (--topic: only that
               topic; needed to see the offsets of a group without live members)
  reset-offsets --group g --topic t (--to-earliest | --to-latest | --to-offset n) [--partition p] [--dry-run]
               set the group's committed offsets on the topic's partitions; prints them before
               and after. Refused while the group has live members (stop its consumers first)
               and when an offset is outside a partition's [log start, high watermark]
  delete-offsets --group g --topic t [--partition p]
               forget the group's committed offsets on the topic's partitions (it then starts
               where its consumers' --from-beginning says). Refused while it has live members
  delete-records --topic t (--before n | --all) [--partition p]
               delete the topic's records below offset n, or every acknowledged record (--all),
               on each partition's leader, answered once every in-sync replica deleted them too.
               Reads below the new log start then fail, and consumer groups committed below it
               start again at it
${ACL_USAGE}

  --json prints JSON instead of tables; flags that do not apply to the command are errors.`;

/** Options every command takes. */
const COMMON_FLAGS = [
  "sentinels",
  "json",
  "token",
  "token-file",
  "listener",
  "tls-ca",
  "tls-cert",
  "tls-key",
];

/** The other options each command takes. */
const COMMAND_FLAGS: Record<string, readonly string[]> = {
  status: [],
  topics: ["limit", "after", "prefix"],
  operations: ["limit", "after"],
  snapshot: [],
  "unregister-broker": [],
  groups: ["prefix", "group", "topic"],
  "reset-offsets": ["group", "topic", "partition", "to-earliest", "to-latest", "to-offset", "dry-run"],
  "delete-offsets": ["group", "topic", "partition"],
  "delete-records": ["topic", "partition", "before", "all"],
  acl: ["principal", "topic", "permission"],
};

export const adminOptionSchema = schema;
/** The admin commands, for --help and shell completion. */
export const ADMIN_COMMANDS: readonly string[] = Object.keys(COMMAND_FLAGS);

export async function runAdmin(argv: string[]): Promise<void> {
  const { values: o, positionals, help, sources } = loadOptions(schema, { argv, allowPositionals: true });
  const command = positionals[0];
  if (help || !command) {
    console.log(formatHelp(USAGE, schema));
    if (!help) process.exitCode = 2;
    return;
  }
  const allowed = Object.hasOwn(COMMAND_FLAGS, command) ? COMMAND_FLAGS[command] : undefined;
  if (!allowed) {
    throw new InvalidArgumentError(
      `unknown admin command '${command}' (${Object.keys(COMMAND_FLAGS).join(", ")})`,
    );
  }
  for (const name of Object.keys(schema)) {
    if (sources[toCamelCase(name)] === "flag" && !COMMON_FLAGS.includes(name) && !allowed.includes(name))
      throw new InvalidArgumentError(`--${name} does not apply to 'admin ${command}' (see --help)`);
  }
  if (command !== "unregister-broker" && command !== "acl" && positionals.length > 1)
    throw new InvalidArgumentError(`unexpected argument '${positionals[1]}' (see --help)`);
  // Every command goes through the SDK's Admin: one failover path for the CLI and applications.
  const admin = new Admin({
    sentinels: o.sentinels,
    sentinelTimeoutMs: 10_000,
    ...optionalToken(o),
    ...(o.listener ? { listener: o.listener } : {}),
    nodeTransport: transportOptions(o),
  });
  try {
    if (Object.hasOwn(GROUP_COMMANDS, command)) await runGroupCommand(command, o, admin);
    else if (command === "acl") await runAclCommand(positionals.slice(1), o, admin);
    else await runCommand(command, positionals.slice(1), o, admin);
  } catch (err) {
    throw withTlsHint(err);
  } finally {
    await admin.close();
  }
}

/** A TLS failure gets a sentence saying what to fix; Node's own message does not. */
function withTlsHint(err: unknown): unknown {
  const failures = err instanceof NoSentinelReachableError ? err.errors : [err];
  for (const [i, failure] of failures.entries()) {
    const hint = describeTlsError(failure);
    const url = err instanceof NoSentinelReachableError ? err.urls[i] : undefined;
    if (hint) return new UnavailableError(url ? `${url}: ${hint}` : hint, { cause: err });
  }
  return err;
}

type AdminOptions = OptionValues<typeof schema>;

/** Commands served through the SDK's Admin client (they also talk to partition leaders). */
const GROUP_COMMANDS = { groups: true, "reset-offsets": true, "delete-offsets": true };

async function runCommand(command: string, args: string[], o: AdminOptions, admin: Admin): Promise<void> {
  switch (command) {
    case "status": {
      const res = await admin.clusterStatus();
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
            ["BROKER", "ADDRESS", "STATUS", "TOPICS", "LAST HEARTBEAT", "LISTENERS"],
            res.brokers.map((b) => [
              b.brokerId,
              b.address,
              BrokerStatus[b.status] ?? "UNSPECIFIED",
              b.topics.length,
              b.lastHeartbeat > 0n ? new Date(Number(b.lastHeartbeat)).toISOString() : "-",
              b.listeners.map((l) => `${l.name}=${l.address}`).join(",") || "-",
            ]),
          ),
        ].join("\n"),
      );
      return;
    }
    case "topics": {
      const res = await admin.listTopics({ prefix: o.prefix, after: o.after, limit: o.limit });
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
      const res = await admin.listOperations({ afterId: BigInt(o.after || "0"), limit: o.limit });
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
      const res = await admin.unregisterBroker(brokerId);
      if (o.json) return print(toJson({ brokerId, operationId: res.operationId }));
      print(`broker ${brokerId} unregistered (operation ${res.operationId}); its replicas were moved`);
      return;
    }
    case "snapshot": {
      const res = await admin.createSnapshot();
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
    case "delete-records": {
      if (!o.topic) throw new InvalidArgumentError("delete-records needs --topic (see --help)");
      // Deleting is for good: what to delete is never a default.
      if (o.before >= 0 === o.all) {
        throw new InvalidArgumentError(
          "delete-records needs either --before n (the records below offset n) or --all (every acknowledged record)",
        );
      }
      const partitions = partitionNumbers(o.partition);
      const deleted = await admin.deleteRecords({
        topic: o.topic,
        ...(partitions ? { partitions } : {}),
        ...(o.before >= 0 ? { before: o.before } : {}),
      });
      if (o.json) {
        const rows = deleted.map((d) => ({ partition: d.partition, logStart: d.logStart }));
        return print(toJson({ topic: o.topic, partitions: rows }));
      }
      print(
        formatTable(
          ["TOPIC", "PARTITION", "LOG START"],
          deleted.map((d) => [d.topic, d.partition, d.logStart]),
        ),
      );
      return;
    }
    default:
      throw new InvalidArgumentError(`unknown admin command '${command}'`);
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function print(text: string): void {
  console.log(text);
}
