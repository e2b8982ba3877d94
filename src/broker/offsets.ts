import { InvalidArgumentError } from "../errors.js";
import type {
  CommitOffsetRequest,
  DeleteCommittedOffsetRequest,
  GetCommittedOffsetRequest,
} from "../gen/goulette/v1/broker_pb.js";
import { NO_OFFSET } from "./consumer-offsets.js";
import { BeyondHighWatermarkError } from "./errors.js";
import { heldPartition, writableLeader, type PartitionLookup } from "./leader-partition.js";

const MAX_GROUP_LENGTH = 255;

function validateGroup(group: string): void {
  if (group === "") throw new InvalidArgumentError("consumer_group is empty");
  if (group.length > MAX_GROUP_LENGTH) {
    throw new InvalidArgumentError(
      `consumer_group is ${group.length} characters; the limit is ${MAX_GROUP_LENGTH}`,
    );
  }
}

/** Member epochs are generations: far below 2^53, so they are kept as numbers. */
function validateMemberEpoch(epoch: bigint): number {
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`member_epoch ${epoch} is too large (at most ${Number.MAX_SAFE_INTEGER})`);
  }
  return Number(epoch);
}

/**
 * CommitOffset on the partition leader: stores the group's next offset and answers once every in-sync
 * replica stored it too (the offsets travel on the Replicate streams), so it survives a leader change.
 * A non-zero `member_epoch` below the group's fence is refused with ABORTED (FencedMemberError); an
 * offset past the log end with INVALID_ARGUMENT, one past the high watermark with UNAVAILABLE (retryable).
 */
export async function commitOffset(
  lookup: PartitionLookup,
  req: CommitOffsetRequest,
  writable: () => boolean,
): Promise<void> {
  validateGroup(req.consumerGroup);
  if (req.offset < 0n) throw new InvalidArgumentError(`offset must be ≥ 0, got ${req.offset}`);
  const memberEpoch = validateMemberEpoch(req.memberEpoch);
  const p = heldPartition(lookup, req.topic, req.partition);
  const generation = await writableLeader(p, writable);
  if (req.offset > BigInt(p.log.logEndOffset)) {
    throw new InvalidArgumentError(
      `offset ${req.offset} is past the end of ${p.key} (log end offset ${p.log.logEndOffset})`,
    );
  }
  // Bounded by what every in-sync replica has: an offset past it, kept by a new leader that lacks the
  // records before it, would make the group skip whatever that leader writes at those offsets.
  if (req.offset > BigInt(p.highWatermark)) {
    throw new BeyondHighWatermarkError("offset", Number(req.offset), p.topic, p.partition, p.highWatermark);
  }
  await p.commitOffset(req.consumerGroup, Number(req.offset), memberEpoch, generation);
}

/**
 * The group's committed offset on the partition leader (-1 when it never committed), and the log range.
 * With a non-zero `member_epoch` it is a write first: the group's fence is raised to the epoch (ABORTED
 * when it is already higher) and replicated like a commit, and only then is the offset read.
 */
export async function getCommittedOffset(
  lookup: PartitionLookup,
  req: GetCommittedOffsetRequest,
  writable: () => boolean,
): Promise<{ offset: number; logStartOffset: number; highWatermark: number }> {
  validateGroup(req.consumerGroup);
  const memberEpoch = validateMemberEpoch(req.memberEpoch);
  const p = heldPartition(lookup, req.topic, req.partition);
  if (memberEpoch === 0) {
    await p.leaderReady();
  } else {
    const generation = await writableLeader(p, writable);
    await p.fenceOffsets(req.consumerGroup, memberEpoch, generation);
  }
  return {
    offset: p.offsets.get(req.consumerGroup) ?? NO_OFFSET,
    logStartOffset: p.log.logStartOffset,
    highWatermark: p.highWatermark,
  };
}

/** DeleteCommittedOffset on the partition leader: forgets the group's offset and fence, replicated. */
export async function deleteCommittedOffset(
  lookup: PartitionLookup,
  req: DeleteCommittedOffsetRequest,
  writable: () => boolean,
): Promise<boolean> {
  validateGroup(req.consumerGroup);
  const p = heldPartition(lookup, req.topic, req.partition);
  const generation = await writableLeader(p, writable);
  return p.deleteOffset(req.consumerGroup, generation);
}
