import { InvalidArgumentError } from "../errors.js";
import type { Admin, GroupDescription, GroupMember, OffsetTarget, TopicPartition } from "../client/node.js";
import { formatTable, toJson } from "./table.js";

/** The admin options the group commands read. */
export interface GroupCommandOptions {
  json: boolean;
  prefix: string;
  group: string;
  topic: string;
  partition: string[];
  toEarliest: boolean;
  toLatest: boolean;
  toOffset: number;
  dryRun: boolean;
}

/** `goulette admin groups | reset-offsets | delete-offsets`, through the SDK's Admin client. */
export async function runGroupCommand(command: string, o: GroupCommandOptions, admin: Admin): Promise<void> {
  if (command === "groups") await (o.group ? describe(admin, o) : list(admin, o));
  else if (command === "reset-offsets") await reset(admin, o);
  else await remove(admin, o);
}

async function list(admin: Admin, o: GroupCommandOptions): Promise<void> {
  if (o.topic) throw new InvalidArgumentError("--topic goes with --group (see --help)");
  const groups = await admin.listGroups({ prefix: o.prefix });
  if (o.json) {
    const rows = groups.map((g) => ({
      group: g.group,
      state: g.state,
      members: g.members,
      generation: g.generation,
      topics: g.topics,
      partitions: g.partitions,
    }));
    return print(toJson({ groups: rows }));
  }
  print(
    formatTable(
      ["GROUP", "STATE", "MEMBERS", "GENERATION", "TOPICS", "PARTITIONS"],
      groups.map((g) => [g.group, g.state, g.members, g.generation, g.topics.join(",") || "-", g.partitions]),
    ),
  );
}

async function describe(admin: Admin, o: GroupCommandOptions): Promise<void> {
  if (o.prefix) throw new InvalidArgumentError("--prefix lists groups; it does not go with --group");
  const d = await admin.describeGroup(o.group, o.topic ? { topics: [o.topic] } : {});
  const failed = d.partitions.filter((p) => p.error !== undefined);
  if (failed.length > 0) process.exitCode = 1;
  if (o.json) {
    // `lag: null` rather than a missing key where nothing is committed.
    return print(toJson({ ...d, partitions: d.partitions.map((p) => ({ ...p, lag: p.lag ?? null })) }));
  }
  const lines = [
    `group ${d.group}: ${d.state || "no live members"}, generation ${d.generation}, ` +
      `${d.members.length} member${d.members.length === 1 ? "" : "s"}`,
  ];
  if (d.members.length === 0 && d.partitions.length === 0) {
    // Without members there are no subscriptions to read offsets of; an unknown group shows nothing.
    if (d.state !== "") print(lines[0] as string);
    console.error(`group '${d.group}' has no live members; --topic t shows its committed offsets on t`);
    return;
  }
  if (d.members.length > 0) lines.push("", membersTable(d.members));
  if (d.unassigned.length > 0) lines.push("", `unassigned: ${refs(d.unassigned)}`);
  if (d.partitions.length > 0) {
    lines.push(
      "",
      formatTable(
        ["TOPIC", "PARTITION", "OWNER", "COMMITTED", "HIGH WATERMARK", "LAG"],
        d.partitions.map((p) =>
          p.error !== undefined
            ? [p.topic, p.partition, p.owner || "-", "?", "?", "?"]
            : [
                p.topic,
                p.partition,
                p.owner || "-",
                p.committed < 0 ? "-" : p.committed,
                p.highWatermark,
                p.lag ?? "-",
              ],
        ),
      ),
      "",
      totals(d),
    );
  }
  print(lines.join("\n"));
  for (const p of failed) console.error(`partition ${p.partition} of '${p.topic}': ${p.error}`);
}

function membersTable(members: GroupMember[]): string {
  return formatTable(
    ["MEMBER", "INSTANCE", "CLIENT", "SESSION", "PARTITIONS", "REVOKING", "PENDING"],
    members.map((m) => [
      m.memberId,
      m.instanceId || "-",
      m.clientId || "-",
      `${m.sessionTimeoutMs} ms`,
      refs(m.partitions),
      refs(m.revoking),
      refs(m.pending),
    ]),
  );
}

function totals(d: GroupDescription): string {
  const known = d.partitions.filter((p) => p.lag !== undefined);
  const lag = known.reduce((sum, p) => sum + (p.lag ?? 0), 0);
  const uncommitted = d.partitions.filter((p) => p.error === undefined && p.committed < 0).length;
  const failed = d.partitions.filter((p) => p.error !== undefined).length;
  return (
    `total lag ${lag} over ${known.length} of ${d.partitions.length} partitions` +
    (uncommitted > 0 ? `; ${uncommitted} without a committed offset` : "") +
    (failed > 0 ? `; ${failed} whose leader did not answer` : "")
  );
}

function refs(partitions: readonly TopicPartition[]): string {
  return partitions.map((p) => `${p.topic}/${p.partition}`).join(",") || "-";
}

async function reset(admin: Admin, o: GroupCommandOptions): Promise<void> {
  const { group, topic } = required(o, "reset-offsets");
  const chosen = [o.toEarliest, o.toLatest, o.toOffset >= 0].filter(Boolean).length;
  if (chosen !== 1)
    throw new InvalidArgumentError(
      "reset-offsets needs exactly one of --to-earliest, --to-latest, --to-offset N (see --help)",
    );
  const to: OffsetTarget = o.toEarliest ? "earliest" : o.toLatest ? "latest" : { offset: o.toOffset };
  const partitions = partitionNumbers(o.partition);
  const resets = await admin.resetOffsets({
    group,
    topic,
    to,
    dryRun: o.dryRun,
    ...(partitions ? { partitions } : {}),
  });
  if (o.json) {
    const rows = resets.map((r) => ({ partition: r.partition, before: r.before, after: r.after }));
    return print(toJson({ group, topic, dryRun: o.dryRun, partitions: rows }));
  }
  print(
    [
      formatTable(
        ["TOPIC", "PARTITION", "BEFORE", "AFTER"],
        resets.map((r) => [r.topic, r.partition, r.before < 0 ? "-" : r.before, r.after]),
      ),
      "",
      o.dryRun
        ? `dry run: nothing committed (${resets.length} partition${resets.length === 1 ? "" : "s"})`
        : `group '${group}' now starts at these offsets on ${resets.length} partition${resets.length === 1 ? "" : "s"} of '${topic}'`,
    ].join("\n"),
  );
}

async function remove(admin: Admin, o: GroupCommandOptions): Promise<void> {
  const { group, topic } = required(o, "delete-offsets");
  const partitions = partitionNumbers(o.partition);
  const deleted = await admin.deleteOffsets({ group, topic, ...(partitions ? { partitions } : {}) });
  if (o.json) {
    const rows = deleted.map((d) => ({ partition: d.partition, deleted: d.deleted }));
    return print(toJson({ group, topic, partitions: rows }));
  }
  const count = deleted.filter((d) => d.deleted).length;
  print(
    [
      formatTable(
        ["TOPIC", "PARTITION", "DELETED"],
        deleted.map((d) => [d.topic, d.partition, d.deleted ? "yes" : "no (none committed)"]),
      ),
      "",
      `deleted the committed offsets of group '${group}' on ${count} of ${deleted.length} partition${deleted.length === 1 ? "" : "s"} of '${topic}'`,
    ].join("\n"),
  );
}

function required(o: GroupCommandOptions, command: string): { group: string; topic: string } {
  if (!o.group) throw new InvalidArgumentError(`${command} needs --group (see --help)`);
  if (!o.topic) throw new InvalidArgumentError(`${command} needs --topic (see --help)`);
  return { group: o.group, topic: o.topic };
}

/** `--partition` values as numbers; undefined when none was given (every partition). */
export function partitionNumbers(values: string[]): number[] | undefined {
  if (values.length === 0) return undefined;
  return values.map((value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
      throw new InvalidArgumentError(`--partition: '${value}' is not a partition number`);
    return n;
  });
}

function print(text: string): void {
  console.log(text);
}
