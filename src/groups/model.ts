/**
 * Consumer-group coordination data (docs/architecture.md, "Consumer groups"). Nothing here is in the
 * operation log: members are lease-bound etcd keys, and each group's state is one key the leader
 * writes.
 */

/** "topic/partition": topic names cannot contain '/'. */
export type PartitionKey = string;

export function partitionKey(topic: string, partition: number): PartitionKey {
  return `${topic}/${partition}`;
}

export function parsePartitionKey(key: PartitionKey): { topic: string; partition: number } {
  const slash = key.lastIndexOf("/");
  return { topic: key.slice(0, slash), partition: Number(key.slice(slash + 1)) };
}

/** One live member, as its lease-bound key holds it. */
export interface MemberRecord {
  memberId: string;
  /** Static membership: a stable name (a pod name); "" for dynamic members. */
  instanceId: string;
  clientId: string;
  /** Subscribed topics, sorted, without duplicates. */
  topics: string[];
  sessionTimeoutMs: number;
  /** Unix ms. */
  joinedAt: number;
  lastHeartbeat: number;
}

/** Who may consume a partition now, and since which generation (the epoch its commits carry). */
export interface Owner {
  member: string;
  epoch: number;
}

/** What the leader stores per group. */
export interface GroupState {
  /** Increases whenever an owner changes; a new owner's epoch is the generation that made it one. */
  generation: number;
  /** Where each partition should be: the assignor's answer. */
  targets: Record<PartitionKey, string>;
  /** Who holds each partition: the target once handed over, or the previous member until it releases. */
  owners: Record<PartitionKey, Owner>;
}

export function emptyGroupState(): GroupState {
  return { generation: 0, targets: {}, owners: {} };
}

/** A group as every sentinel sees it. */
export interface GroupSnapshot {
  group: string;
  members: ReadonlyMap<string, MemberRecord>;
  state: GroupState;
}

export interface AssignedPartition {
  topic: string;
  partition: number;
  epoch: number;
}

/** One member's view of the group state. */
export interface MemberView {
  generation: number;
  /** Owned and targeted: consume these. */
  partitions: AssignedPartition[];
  /** Owned, no longer targeted: stop, commit, release. */
  revoking: { topic: string; partition: number }[];
  /** Targeted, still owned by another member. */
  pending: { topic: string; partition: number }[];
}

export type GroupPhase = "empty" | "stable" | "rebalancing";
