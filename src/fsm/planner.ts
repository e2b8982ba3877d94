import { partitionKey } from "../ring/placement.js";
import { balanceLeaders, leaderFirst } from "./leader-balance.js";
import type { Command, PartitionPlacement, TopicChange, UnreachableReason } from "./operations.js";
import type { ClusterState } from "./state.js";

/**
 * Leader-side decisions, as pure functions of (state, ring, request) → command. The leader proposes the
 * command to the log; the state changes only when the committed operation is applied.
 */

/** What the planner needs from the hash ring. */
export interface RingView {
  /** The next `count` distinct brokers clockwise from hash(key) that pass `accept`. */
  pick(key: string, count: number, accept?: (brokerId: string) => boolean): string[];
}

export function planNewTopic(
  state: ClusterState,
  ring: RingView,
  request: { topic: string; partitions: number; replicaCount: number },
): Command {
  const healthy = (id: string) => state.broker(id)?.status === "healthy";
  const replicaSets: string[][] = [];
  for (let partition = 0; partition < request.partitions; partition++) {
    replicaSets.push(ring.pick(partitionKey(request.topic, partition), request.replicaCount, healthy));
  }
  // The ring chooses each set; within the topic, leadership is spread evenly over the brokers.
  const leaders = balanceLeaders(replicaSets.map((replicas) => ({ replicas })));
  const placements = replicaSets.map((replicas, partition) => ({
    partition,
    replicas: leaderFirst(replicas, leaders[partition]!),
  }));
  return {
    type: "generateTopicReplicas",
    data: { topic: request.topic, replicaCount: request.replicaCount, partitions: placements },
  };
}

/**
 * New replica lists for every partition that has one of `leaving` among its replicas: the surviving
 * replicas keep their order (so an in-sync follower becomes leader and no data is lost), replacements
 * come from the ring, clockwise from the partition's key, skipping down and leaving brokers.
 */
export function planReplacement(
  state: ClusterState,
  ring: RingView,
  leaving: ReadonlySet<string>,
): TopicChange[] {
  const topics = new Set<string>();
  for (const brokerId of leaving) for (const topic of state.topicsOfBroker(brokerId)) topics.add(topic);
  const changes: TopicChange[] = [];
  for (const name of [...topics].sort()) {
    const topic = state.topic(name);
    if (!topic) continue;
    const partitions: PartitionPlacement[] = [];
    for (const p of topic.partitions) {
      if (!p.replicas.some((id) => leaving.has(id))) continue;
      const survivors = p.replicas.filter((id) => !leaving.has(id));
      const usable = (id: string) =>
        !leaving.has(id) && !survivors.includes(id) && state.broker(id)?.status === "healthy";
      const replacements = ring.pick(
        partitionKey(name, p.partition),
        Math.max(0, topic.replicaCount - survivors.length),
        usable,
      );
      partitions.push({ partition: p.partition, replicas: [...survivors, ...replacements] });
    }
    if (partitions.length > 0) changes.push({ topic: name, partitions });
  }
  return changes;
}

/** Under-replicated partitions (fewer replicas than the topic wants) topped up from healthy brokers. */
export function planTopUp(state: ClusterState, ring: RingView): TopicChange[] {
  const changes: TopicChange[] = [];
  for (const name of state.topicNames()) {
    const topic = state.topic(name);
    if (!topic) continue;
    const partitions: PartitionPlacement[] = [];
    for (const p of topic.partitions) {
      const live = p.replicas.filter((id) => state.broker(id)?.status === "healthy");
      if (p.replicas.length >= topic.replicaCount && live.length === p.replicas.length) continue;
      const missing = Math.max(0, topic.replicaCount - live.length);
      const extra = ring.pick(
        partitionKey(name, p.partition),
        missing,
        (id) => !live.includes(id) && state.broker(id)?.status === "healthy",
      );
      if (extra.length === 0 && live.length === p.replicas.length) continue;
      partitions.push({ partition: p.partition, replicas: [...live, ...extra] });
    }
    if (partitions.length > 0) changes.push({ topic: name, partitions });
  }
  return changes;
}

export function planUnreachable(
  state: ClusterState,
  ring: RingView,
  brokerIds: readonly string[],
  reason: UnreachableReason,
): Command {
  const down = [...new Set(brokerIds)].sort();
  return {
    type: "handleUnreachableBrokers",
    data: { brokerIds: down, reason, changes: planReplacement(state, ring, new Set(down)) },
  };
}

export function planUnregister(state: ClusterState, ring: RingView, brokerId: string): Command {
  return {
    type: "unregisterBroker",
    data: { brokerId, changes: planReplacement(state, ring, new Set([brokerId])) },
  };
}

/**
 * May `brokerId` take over leading topic/partition now? The caller answers from what the partition's
 * leader reported (the broker is in its in-sync set), so a hand-over never skips an acknowledged record.
 */
export type MayLead = (topic: string, partition: number, brokerId: string) => boolean;

/**
 * Leadership moved back to an even spread within every topic (after failovers left survivors leading
 * more than their share): replica lists only reordered, so no data moves, and only towards replicas
 * that `mayLead` allows. Partitions whose leader is not healthy are left to failure handling.
 */
export function planLeaderBalance(state: ClusterState, mayLead: MayLead): TopicChange[] {
  const changes: TopicChange[] = [];
  for (const name of state.topicNames()) {
    const topic = state.topic(name);
    if (!topic) continue;
    const healthy = (id: string) => state.broker(id)?.status === "healthy";
    const candidates = topic.partitions.map((p) => {
      const leader = p.replicas[0];
      const settled = leader !== undefined && healthy(leader);
      return {
        replicas: p.replicas,
        // An unhealthy leader's partition is not balanced (failure handling owns it); it still counts.
        eligible: settled
          ? p.replicas.filter((id) => id === leader || (healthy(id) && mayLead(name, p.partition, id)))
          : p.replicas.slice(0, 1),
      };
    });
    const leaders = balanceLeaders(candidates);
    const partitions: PartitionPlacement[] = [];
    topic.partitions.forEach((p, i) => {
      // A partition with no replicas left (every broker unregistered) has no leader to hand over.
      if (p.replicas.length > 0 && leaders[i] !== p.replicas[0]) {
        partitions.push({ partition: p.partition, replicas: leaderFirst(p.replicas, leaders[i]!) });
      }
    });
    if (partitions.length > 0) changes.push({ topic: name, partitions });
  }
  return changes;
}
