import type { Command, TopicChange } from "./operations.js";
import type { ClusterState } from "./state.js";

/**
 * Choosing a new partition leader when the old one leaves: the surviving replica whose log goes furthest
 * takes over. Every in-sync replica holds every acknowledged (acks=all) record, and all replicas copy
 * one leader's log, so the survivor with the newest epoch and the longest log holds at least what any
 * in-sync survivor holds: no acknowledged record is lost while one in-sync replica survives. The planner
 * keeps survivors in their old order; this reorders them by progress the leader read from the brokers.
 */

/** How far one replica's log goes (from the broker's Health answer). */
export interface ReplicaProgress {
  /** The newest leader epoch in its log. */
  lastEpoch: bigint;
  /** The offset its next record would take. */
  logEndOffset: bigint;
}

/** Progress of `brokerId`'s replica of topic/partition; undefined when it could not be read. */
export type ProgressOf = (topic: string, partition: number, brokerId: string) => ReplicaProgress | undefined;

/** A partition to ask a surviving replica about. */
export interface PartitionToAsk {
  topic: string;
  partition: number;
}

/**
 * For every partition led by one of `leaving`, the surviving replicas to ask about it, grouped by broker
 * (one Health call per broker). Down survivors are left out: they cannot answer and cannot lead.
 */
export function survivorsToAsk(
  state: ClusterState,
  leaving: ReadonlySet<string>,
): Map<string, PartitionToAsk[]> {
  const asks = new Map<string, PartitionToAsk[]>();
  for (const brokerId of leaving) {
    for (const name of state.topicsOfBroker(brokerId)) {
      const topic = state.topic(name);
      if (!topic) continue;
      for (const p of topic.partitions) {
        if (p.replicas[0] !== brokerId) continue;
        for (const survivor of p.replicas.slice(1)) {
          if (leaving.has(survivor) || state.broker(survivor)?.status !== "healthy") continue;
          const list = asks.get(survivor) ?? [];
          list.push({ topic: name, partition: p.partition });
          asks.set(survivor, list);
        }
      }
    }
  }
  return asks;
}

/** Newest epoch first, then longest log; replicas with no known progress last. Stable otherwise. */
function compareProgress(a: ReplicaProgress | undefined, b: ReplicaProgress | undefined): number {
  if (!a || !b) return a ? -1 : b ? 1 : 0;
  if (a.lastEpoch !== b.lastEpoch) return a.lastEpoch > b.lastEpoch ? -1 : 1;
  if (a.logEndOffset !== b.logEndOffset) return a.logEndOffset > b.logEndOffset ? -1 : 1;
  return 0;
}

/**
 * `changes` with, in every partition whose current leader is one of `leaving`, the surviving replicas
 * (those already in the partition's replica list) ordered most up-to-date first. Replacements from the
 * ring stay behind them: a new, empty replica never leads over a survivor.
 */
export function preferUpToDateLeaders(
  state: ClusterState,
  changes: readonly TopicChange[],
  leaving: ReadonlySet<string>,
  progressOf: ProgressOf,
): TopicChange[] {
  return changes.map((change) => {
    const current = state.topic(change.topic);
    if (!current) return change;
    return {
      topic: change.topic,
      partitions: change.partitions.map((placement) => {
        const before = current.partitions.find((p) => p.partition === placement.partition);
        const oldLeader = before?.replicas[0];
        if (!before || oldLeader === undefined || !leaving.has(oldLeader)) return placement;
        const survivors = placement.replicas.filter((id) => before.replicas.includes(id));
        const replacements = placement.replicas.filter((id) => !before.replicas.includes(id));
        const ranked = survivors
          .map((id, index) => ({ id, index, progress: progressOf(change.topic, placement.partition, id) }))
          .sort((a, b) => compareProgress(a.progress, b.progress) || a.index - b.index)
          .map((entry) => entry.id);
        return { partition: placement.partition, replicas: [...ranked, ...replacements] };
      }),
    };
  });
}

/** The brokers a command takes out of placement (their led partitions need a new leader). */
export function leavingBrokers(command: Command): ReadonlySet<string> {
  switch (command.type) {
    case "handleUnreachableBrokers":
      return new Set(command.data.brokerIds);
    case "unregisterBroker":
      return new Set([command.data.brokerId]);
    default:
      return new Set();
  }
}

/** `command` with up-to-date survivors leading the partitions it moves (other commands unchanged). */
export function withUpToDateLeaders(state: ClusterState, command: Command, progressOf: ProgressOf): Command {
  const leaving = leavingBrokers(command);
  if (leaving.size === 0) return command;
  const reorder = (changes: readonly TopicChange[]) =>
    preferUpToDateLeaders(state, changes, leaving, progressOf);
  switch (command.type) {
    case "handleUnreachableBrokers":
      return { ...command, data: { ...command.data, changes: reorder(command.data.changes) } };
    case "unregisterBroker":
      return { ...command, data: { ...command.data, changes: reorder(command.data.changes) } };
    default:
      return command;
  }
}

/**
 * A broker restarted (a new incarnation) while the state still has it leading: its log may have lost
 * records it had not fsynced, which its followers hold. Leading again under the same epoch, it would
 * truncate them to its shorter log. So every partition it led with another healthy replica whose
 * progress is known goes to the most up-to-date of those (newest epoch, then longest log); the list
 * changes, so the epoch is new, and the restarted broker follows right behind it (the leader balancer
 * hands leadership back once it is in sync). Partitions with no such replica stay (nobody else to ask).
 * With `only`, just the partitions it names (a broker that refuses to lead them: its log is damaged).
 */
export function planRestartHandover(
  state: ClusterState,
  brokerId: string,
  progressOf: ProgressOf,
  only?: (topic: string, partition: number) => boolean,
): TopicChange[] {
  const changes: TopicChange[] = [];
  for (const name of state.topicsOfBroker(brokerId)) {
    const topic = state.topic(name);
    if (!topic) continue;
    const partitions: TopicChange["partitions"] = [];
    for (const p of topic.partitions) {
      if (p.replicas[0] !== brokerId || (only !== undefined && !only(name, p.partition))) continue;
      const best = p.replicas
        .slice(1)
        .filter((id) => state.broker(id)?.status === "healthy")
        .map((id, index) => ({ id, index, progress: progressOf(name, p.partition, id) }))
        .filter((entry) => entry.progress !== undefined)
        .sort((a, b) => compareProgress(a.progress, b.progress) || a.index - b.index)[0];
      if (!best) continue;
      partitions.push({
        partition: p.partition,
        replicas: [best.id, brokerId, ...p.replicas.slice(1).filter((id) => id !== best.id)],
      });
    }
    if (partitions.length > 0) changes.push({ topic: name, partitions });
  }
  return changes;
}
