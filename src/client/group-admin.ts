import type { DescribeGroupResponse, GroupSummary } from "../gen/goulette/v1/group_pb.js";
import { consumerLag } from "../common/consumer-lag.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { toClientError } from "./errors.js";
import {
  PartitionLeaders,
  checkName,
  inParallel,
  settleAll,
  type Located,
  type PartitionLeadersOptions,
  type TopicPartition,
} from "./partition-leaders.js";

export type { SentinelCall, TopicPartition } from "./partition-leaders.js";

/** One live member of a consumer group, as the sentinels describe it. */
export interface GroupMember {
  memberId: string;
  /** Static membership name ("" when none). */
  instanceId: string;
  /** The label the member gave (host or pod name). */
  clientId: string;
  /** Its subscription. */
  topics: string[];
  sessionTimeoutMs: number;
  /** Unix ms. */
  joinedAt: number;
  /** Unix ms. */
  lastHeartbeat: number;
  /** Partitions it owns (consumes), with the epoch at which each was handed to it. */
  partitions: (TopicPartition & { epoch: bigint })[];
  /** Partitions it was asked to release and has not yet. */
  revoking: TopicPartition[];
  /** Partitions it will get once their previous owner releases them. */
  pending: TopicPartition[];
}

/** A group's position on one partition, from the partition leader. */
export interface GroupPartitionOffsets extends TopicPartition {
  /** The owning member's id ("" when no member owns the partition). */
  owner: string;
  /** The next offset the group consumes; -1 when it never committed. */
  committed: number;
  /** The first offset the leader still stores. */
  logStart: number;
  /** The end a consumer can read to. */
  highWatermark: number;
  /**
   * highWatermark − committed, counted from logStart when committed is below it (never below 0);
   * undefined when nothing is committed or the leader failed.
   */
  lag: number | undefined;
  /** Why the leader could not be asked (then the numbers above are -1). */
  error?: string;
}

export interface GroupDescription {
  group: string;
  /** "stable", "rebalancing" or "empty"; "" for a group the sentinels do not know. */
  state: string;
  generation: bigint;
  members: GroupMember[];
  /** Partitions of the subscribed topics that no member owns. */
  unassigned: TopicPartition[];
  /** Every partition of the group's topics, in topic then partition order. */
  partitions: GroupPartitionOffsets[];
}

/** Where resetOffsets moves the group: a partition's log start, its high watermark, or an offset. */
export type OffsetTarget = "earliest" | "latest" | { offset: number };

export interface ResetOffsetsOptions {
  group: string;
  topic: string;
  to: OffsetTarget;
  /** Only these partitions (default: every partition of the topic). */
  partitions?: readonly number[];
  /** Compute and return the new offsets without committing them. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface OffsetReset extends TopicPartition {
  /** The committed offset before (-1: none). */
  before: number;
  /** The committed offset now (with dryRun: what it would be). */
  after: number;
}

export interface DeleteOffsetsOptions {
  group: string;
  topic: string;
  /** Only these partitions (default: every partition of the topic). */
  partitions?: readonly number[];
  signal?: AbortSignal;
}

export interface OffsetDeletion extends TopicPartition {
  /** False when the group had no committed offset there. */
  deleted: boolean;
}

export type GroupAdminOptions = PartitionLeadersOptions;

interface Committed {
  offset: number;
  logStart: number;
  highWatermark: number;
}

/**
 * The consumer-group half of the Admin client: membership from the sentinels (ListGroups,
 * DescribeGroup), offsets from each partition's leader. Offsets are read and written with member
 * epoch 0, which neither raises nor trips the group's commit fence. Partition leaders are found and
 * called through PartitionLeaders (partition-leaders.ts).
 */
export class GroupAdmin {
  readonly #leaders: PartitionLeaders;

  constructor(private readonly options: GroupAdminOptions) {
    this.#leaders = new PartitionLeaders(options);
  }

  async listGroups(options: { prefix?: string; signal?: AbortSignal } = {}): Promise<GroupSummary[]> {
    const res = await this.options.sentinels(
      (c, o) => c.listGroups({ prefix: options.prefix ?? "" }, o),
      options.signal,
    );
    return res.groups;
  }

  async describeGroup(
    group: string,
    options: { topics?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<GroupDescription> {
    checkName("group", group);
    for (const topic of options.topics ?? []) checkName("topic", topic);
    const res = await this.#describe(group, options.signal);
    const description = toDescription(group, res);
    // Topics given are asked for as named (an unknown one is an error); the subscriptions' topics may
    // not exist yet, and those are skipped.
    const given = options.topics !== undefined && options.topics.length > 0;
    const topics = given ? [...new Set(options.topics)] : subscribedTopics(description);
    const located = await this.#leaders.locate(topics, given, options.signal);
    const owners = new Map<string, string>();
    for (const m of description.members)
      for (const p of m.partitions) owners.set(key(p.topic, p.partition), m.memberId);
    description.partitions = await inParallel(located, async (p) => {
      const base = {
        topic: p.topic,
        partition: p.partition,
        owner: owners.get(key(p.topic, p.partition)) ?? "",
      };
      try {
        const c = await this.#committed(group, p, options.signal);
        const lag = c.offset < 0 ? undefined : consumerLag(c.offset, c.logStart, c.highWatermark);
        return { ...base, committed: c.offset, logStart: c.logStart, highWatermark: c.highWatermark, lag };
      } catch (err) {
        const error = toClientError(err).message;
        return { ...base, committed: -1, logStart: -1, highWatermark: -1, lag: undefined, error };
      }
    });
    return description;
  }

  async resetOffsets(options: ResetOffsetsOptions): Promise<OffsetReset[]> {
    const { group, topic, to, signal } = options;
    checkName("group", group);
    checkName("topic", topic);
    if (typeof to === "object" && !(Number.isSafeInteger(to.offset) && to.offset >= 0))
      throw new InvalidArgumentError(`the offset to reset to must be a whole number ≥ 0, got ${to.offset}`);
    if (typeof to !== "object" && to !== "earliest" && to !== "latest")
      throw new InvalidArgumentError(`'to' must be "earliest", "latest" or { offset }, got '${String(to)}'`);
    await this.#refuseWhileLive(group, "reset its offsets", signal);
    const partitions = await this.#leaders.partitionsOf(topic, options.partitions, signal);
    // Every partition is read and checked before anything is written: a bad offset changes nothing.
    const read = await settleAll(partitions, (p) => this.#committed(group, p, signal));
    const resets = partitions.map((p, i): OffsetReset => {
      const c = read[i] as Committed;
      const after = to === "earliest" ? c.logStart : to === "latest" ? c.highWatermark : to.offset;
      if (after < c.logStart || after > c.highWatermark) {
        throw new InvalidArgumentError(
          `offset ${after} is outside partition ${p.partition} of '${topic}': it holds [${c.logStart}, ${c.highWatermark}]`,
        );
      }
      return { topic, partition: p.partition, before: c.offset, after };
    });
    if (options.dryRun) return resets;
    await settleAll(
      partitions,
      async (p, i) => {
        const offset = BigInt((resets[i] as OffsetReset).after);
        await this.#leaders.onLeader(p, signal, (client, o) =>
          client.commitOffset(
            { consumerGroup: group, topic, partition: p.partition, offset, memberEpoch: 0n },
            o,
          ),
        );
      },
      "committed",
    );
    return resets;
  }

  async deleteOffsets(options: DeleteOffsetsOptions): Promise<OffsetDeletion[]> {
    const { group, topic, signal } = options;
    checkName("group", group);
    checkName("topic", topic);
    await this.#refuseWhileLive(group, "delete its offsets", signal);
    const partitions = await this.#leaders.partitionsOf(topic, options.partitions, signal);
    const deleted = await settleAll(
      partitions,
      async (p) => {
        const res = await this.#leaders.onLeader(p, signal, (client, o) =>
          client.deleteCommittedOffset({ consumerGroup: group, topic, partition: p.partition }, o),
        );
        return res.deleted;
      },
      "deleted",
    );
    return partitions.map((p, i) => ({ topic, partition: p.partition, deleted: deleted[i] === true }));
  }

  #describe(group: string, signal: AbortSignal | undefined): Promise<DescribeGroupResponse> {
    return this.options.sentinels((c, o) => c.describeGroup({ group }, o), signal);
  }

  /** Live members would commit over offsets changed under them (and they own the partitions). */
  async #refuseWhileLive(group: string, what: string, signal: AbortSignal | undefined): Promise<void> {
    const res = await this.#describe(group, signal);
    if (res.members.length === 0) return;
    const names = res.members.map((m) => (m.instanceId ? `${m.memberId} (${m.instanceId})` : m.memberId));
    const shown = names.length > 5 ? [...names.slice(0, 5), `${names.length - 5} more`] : names;
    throw new FailedPreconditionError(
      `group '${group}' has ${res.members.length} live member${res.members.length === 1 ? "" : "s"} ` +
        `(${shown.join(", ")}): stop its consumers before you ${what}, or they would commit over the change`,
    );
  }

  /** GetCommittedOffset with member epoch 0: a plain read that raises no fence. */
  async #committed(group: string, p: Located, signal: AbortSignal | undefined): Promise<Committed> {
    const res = await this.#leaders.onLeader(p, signal, (client, o) =>
      client.getCommittedOffset(
        { consumerGroup: group, topic: p.topic, partition: p.partition, memberEpoch: 0n },
        o,
      ),
    );
    return {
      offset: Number(res.offset),
      logStart: Number(res.logStartOffset),
      highWatermark: Number(res.highWatermark),
    };
  }
}
function key(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

function toDescription(group: string, res: DescribeGroupResponse): GroupDescription {
  return {
    group,
    state: res.state,
    generation: res.generation,
    members: res.members.map((m) => ({
      memberId: m.memberId,
      instanceId: m.instanceId,
      clientId: m.clientId,
      topics: [...m.topics],
      sessionTimeoutMs: m.sessionTimeoutMs,
      joinedAt: Number(m.joinedAt),
      lastHeartbeat: Number(m.lastHeartbeat),
      partitions: m.partitions.map((p) => ({ topic: p.topic, partition: p.partition, epoch: p.epoch })),
      revoking: m.revoking.map((p) => ({ topic: p.topic, partition: p.partition })),
      pending: m.pending.map((p) => ({ topic: p.topic, partition: p.partition })),
    })),
    unassigned: res.unassigned.map((p) => ({ topic: p.topic, partition: p.partition })),
    partitions: [],
  };
}

/** Every topic the members subscribe to, own or wait for, or that has unassigned partitions. */
function subscribedTopics(d: GroupDescription): string[] {
  const topics = new Set<string>();
  for (const m of d.members) {
    for (const t of m.topics) topics.add(t);
    for (const p of [...m.partitions, ...m.pending, ...m.revoking]) topics.add(p.topic);
  }
  for (const p of d.unassigned) topics.add(p.topic);
  return [...topics].sort();
}
