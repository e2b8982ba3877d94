import { InvalidArgumentError } from "../errors.js";
import type { HashRing } from "./hash-ring.js";

/** Where one partition lives. */
export interface PartitionPlacement {
  partition: number;
  /** Distinct broker ids; replicas[0] is the preferred leader. */
  replicas: string[];
}

/**
 * The ring key of a partition: `${topic}#${partition}`. Persisted semantics, like the hash: changing
 * it would move every partition of every topic.
 */
export function partitionKey(topic: string, partition: number): string {
  if (typeof topic !== "string" || topic.length === 0) {
    throw new InvalidArgumentError(`topic must be a non-empty string, got ${JSON.stringify(topic)}`);
  }
  if (!Number.isInteger(partition) || partition < 0) {
    throw new InvalidArgumentError(`partition must be a non-negative integer, got ${partition}`);
  }
  return `${topic}#${partition}`;
}

/**
 * Replicas for partitions 0 .. partitions-1 of a topic: for each, the next `replicaCount` distinct
 * brokers clockwise from hash64(partitionKey) that pass `accept` (e.g. healthy ones). A partition
 * gets fewer replicas when the ring has too few acceptable brokers; the caller decides whether that
 * is an error.
 */
export function placePartitions(
  ring: HashRing,
  topic: string,
  partitions: number,
  replicaCount: number,
  accept?: (brokerId: string) => boolean,
): PartitionPlacement[] {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new InvalidArgumentError(`partition count must be a positive integer, got ${partitions}`);
  }
  if (!Number.isInteger(replicaCount) || replicaCount < 1) {
    throw new InvalidArgumentError(`replica count must be a positive integer, got ${replicaCount}`);
  }
  const placements: PartitionPlacement[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    placements.push({ partition, replicas: ring.pick(partitionKey(topic, partition), replicaCount, accept) });
  }
  return placements;
}

/**
 * How many replica slots moved from `before` to `after` (two placements of the same topic): the
 * (partition, broker) pairs in `after` that were not in `before`, i.e. the replicas that must be
 * copied to a broker that did not have the partition. A reordering (a leader change) moves nothing;
 * a partition only in `after` counts all its replicas.
 */
export function countMovedReplicas(
  before: readonly PartitionPlacement[],
  after: readonly PartitionPlacement[],
): number {
  const previous = new Map<number, ReadonlySet<string>>();
  for (const p of before) {
    if (previous.has(p.partition)) {
      throw new InvalidArgumentError(`partition ${p.partition} appears twice in the first placement`);
    }
    previous.set(p.partition, new Set(p.replicas));
  }
  const seen = new Set<number>();
  let moved = 0;
  for (const p of after) {
    if (seen.has(p.partition)) {
      throw new InvalidArgumentError(`partition ${p.partition} appears twice in the second placement`);
    }
    seen.add(p.partition);
    const had = previous.get(p.partition);
    for (const brokerId of new Set(p.replicas)) if (!had?.has(brokerId)) moved++;
  }
  return moved;
}
