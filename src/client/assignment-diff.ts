import { partitionKey, type AssignedPartition, type TopicPartition } from "./topic-partition.js";

/** What a member runs now, per partition key: the epoch it consumes it at, and whether it is releasing it. */
export interface RunningPartition {
  topic: string;
  partition: number;
  epoch: number;
  /** Being revoked: stopped, waiting for the application and the commit before its release. */
  revoking: boolean;
}

export interface AssignmentDiff {
  /** Assigned and not run yet: take over (GetCommittedOffset with the epoch), then fetch. */
  start: AssignedPartition[];
  /** Run and no longer assigned: stop, commit, release. */
  revoke: TopicPartition[];
  /**
   * Run at one epoch and assigned at another: the group gave this member's partition to another
   * session under the same member id (static membership: a process with the same instance id joined).
   * This process must stop them; it is the one that was replaced.
   */
  replaced: AssignedPartition[];
}

/**
 * The changes that bring what a member runs to an assignment (pure). A partition being revoked that the
 * assignment lists again is left alone: it is released first, and the next assignment gives it back.
 */
export function diffAssignment(
  running: ReadonlyMap<string, RunningPartition>,
  assigned: readonly AssignedPartition[],
): AssignmentDiff {
  const start: AssignedPartition[] = [];
  const replaced: AssignedPartition[] = [];
  const listed = new Set<string>();
  for (const p of assigned) {
    const key = partitionKey(p);
    if (listed.has(key)) continue;
    listed.add(key);
    const current = running.get(key);
    if (current === undefined) start.push({ topic: p.topic, partition: p.partition, epoch: p.epoch });
    else if (current.epoch !== p.epoch)
      replaced.push({ topic: p.topic, partition: p.partition, epoch: p.epoch });
  }
  const revoke: TopicPartition[] = [];
  for (const [key, p] of running) {
    if (!listed.has(key) && !p.revoking) revoke.push({ topic: p.topic, partition: p.partition });
  }
  return { start, revoke, replaced };
}

/**
 * Heartbeat answers and pushes can cross: an assignment is applied only if it is for the current member
 * id and its generation is at least the last one applied (generations only grow within a group). A new
 * member id (a join or rejoin) starts over.
 */
export class GenerationGate {
  #memberId = "";
  #generation = -1n;

  /** The member id assignments must carry from now on (after a join); forgets the last generation. */
  reset(memberId: string): void {
    this.#memberId = memberId;
    this.#generation = -1n;
  }

  /** True (and remembers it) when an assignment of `memberId` at `generation` should be applied. */
  accept(memberId: string, generation: bigint): boolean {
    if (memberId === "" || memberId !== this.#memberId || generation < this.#generation) return false;
    this.#generation = generation;
    return true;
  }

  /** The generation of the last assignment applied (-1 before the first). */
  get generation(): bigint {
    return this.#generation;
  }
}
