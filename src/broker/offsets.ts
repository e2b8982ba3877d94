import { InvalidArgumentError } from "../errors.js";
import { validateTopicName } from "../fsm/validation.js";
import type { CommitOffsetRequest, GetCommittedOffsetRequest } from "../gen/goulette/v1/broker_pb.js";
import { LostContactError, UnknownPartitionError } from "./errors.js";
import type { Partition } from "./partition.js";

const MAX_GROUP_LENGTH = 255;

function validateGroup(group: string): void {
  if (group === "") throw new InvalidArgumentError("consumer_group is empty");
  if (group.length > MAX_GROUP_LENGTH) {
    throw new InvalidArgumentError(
      `consumer_group is ${group.length} characters; the limit is ${MAX_GROUP_LENGTH}`,
    );
  }
}

function leaderPartition(
  lookup: (topic: string, partition: number) => Partition | undefined,
  topic: string,
  partition: number,
): Partition {
  validateTopicName(topic);
  const p = lookup(topic, partition);
  if (p === undefined) throw new UnknownPartitionError(topic, partition);
  return p;
}

/**
 * CommitOffset on the partition leader: stores the group's next offset and answers once every in-sync
 * replica stored it too (the offsets travel on the Replicate streams), so it survives a leader change.
 */
export async function commitOffset(
  lookup: (topic: string, partition: number) => Partition | undefined,
  req: CommitOffsetRequest,
  writable: () => boolean,
): Promise<void> {
  validateGroup(req.consumerGroup);
  if (req.offset < 0n) throw new InvalidArgumentError(`offset must be ≥ 0, got ${req.offset}`);
  const p = leaderPartition(lookup, req.topic, req.partition);
  const generation = await p.leaderReady();
  if (!writable()) throw new LostContactError(p.topic, p.partition);
  if (req.offset > BigInt(p.log.logEndOffset)) {
    throw new InvalidArgumentError(
      `offset ${req.offset} is past the end of ${p.key} (log end offset ${p.log.logEndOffset})`,
    );
  }
  await p.commitOffset(req.consumerGroup, Number(req.offset), generation);
}

/** The group's committed offset on the partition leader (-1 when it never committed), and the log range. */
export async function getCommittedOffset(
  lookup: (topic: string, partition: number) => Partition | undefined,
  req: GetCommittedOffsetRequest,
): Promise<{ offset: number; logStartOffset: number; highWatermark: number }> {
  validateGroup(req.consumerGroup);
  const p = leaderPartition(lookup, req.topic, req.partition);
  await p.leaderReady();
  return {
    offset: p.offsets.get(req.consumerGroup) ?? -1,
    logStartOffset: p.log.logStartOffset,
    highWatermark: p.highWatermark,
  };
}
