/** Finding the partition a leader-side request names, and checking this broker may write to it. */
import { validateTopicName } from "../fsm/validation.js";
import { LostContactError, UnknownPartitionError } from "./errors.js";
import type { Partition } from "./partition.js";

export type PartitionLookup = (topic: string, partition: number) => Partition | undefined;

/** The partition's replica here; INVALID_ARGUMENT for a malformed topic, NOT_FOUND when none is held. */
export function heldPartition(lookup: PartitionLookup, topic: string, partition: number): Partition {
  validateTopicName(topic);
  const p = lookup(topic, partition);
  if (p === undefined) throw new UnknownPartitionError(topic, partition);
  return p;
}

/** Leadership is ready and this broker may take writes; returns the leadership generation. */
export async function writableLeader(p: Partition, writable: () => boolean): Promise<number> {
  const generation = await p.leaderReady();
  if (!writable()) throw new LostContactError(p.topic, p.partition);
  return generation;
}
