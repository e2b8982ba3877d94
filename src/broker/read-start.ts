import { InvalidArgumentError } from "../errors.js";
import { validateTopicName } from "../fsm/validation.js";
import { OffsetOutOfRangeError } from "../storage/index.js";
import { BeyondHighWatermarkError, UnknownPartitionError } from "./errors.js";
import type { Partition } from "./partition.js";

/** Where a consumer read starts, resolved on the partition leader. */
export interface ReadStart {
  partition: Partition;
  /** The leadership the read runs under: a change ends the read. */
  generation: number;
  offset: number;
}

/**
 * Validates a read request (PullMessage, FetchMessages) and resolves its start: `offset`, or with -1 the
 * group's committed offset (the log start when there is none, or when retention passed it).
 * InvalidArgument for a bad topic or offset, NotFound for a partition not held here, OutOfRange for an
 * offset outside [log start, high watermark], Unavailable when this broker does not lead it or a
 * committed offset is past the high watermark (a new leader still learning it).
 */
export async function resolveReadStart(
  lookup: (topic: string, partition: number) => Partition | undefined,
  topic: string,
  partitionId: number,
  requested: bigint,
  group: string,
): Promise<ReadStart> {
  validateTopicName(topic);
  if (requested < -1n)
    throw new InvalidArgumentError(`offset must be ≥ 0, or -1 for the committed offset; got ${requested}`);
  if (requested === -1n && group === "") {
    throw new InvalidArgumentError("offset -1 (resume from the committed offset) needs a consumer_group");
  }
  const partition = lookup(topic, partitionId);
  if (partition === undefined) throw new UnknownPartitionError(topic, partitionId);
  const generation = await partition.leaderReady();
  const log = partition.log;
  const hw = partition.highWatermark;
  if (requested === -1n) {
    const committed = partition.offsets.get(group) ?? log.logStartOffset;
    // Past the log end: the commit came from records this leader never had (an unclean leader
    // change). Resuming there would skip what it writes next; resume at its high watermark instead.
    if (committed > log.logEndOffset)
      return { partition, generation, offset: Math.max(hw, log.logStartOffset) };
    if (committed > hw)
      throw new BeyondHighWatermarkError("committed offset", committed, topic, partitionId, hw);
    return { partition, generation, offset: Math.max(committed, log.logStartOffset) };
  }
  // Reads see records below the high watermark only; a start past it is out of the readable range.
  if (requested > BigInt(hw) || Number(requested) < log.logStartOffset) {
    throw new OffsetOutOfRangeError(Number(requested), log.logStartOffset, hw);
  }
  return { partition, generation, offset: Number(requested) };
}
