/**
 * DeleteRecords on the partition leader: records below an offset are deleted (reads start there), at
 * most up to the high watermark, and the call is answered once every in-sync follower reported
 * deleting them too (Partition.deleteRecordsBefore; followers adopt the leader's log start from their
 * replication answers, see replication-follower.ts `store`).
 */
import { InvalidArgumentError } from "../errors.js";
import type { DeleteRecordsRequest } from "../gen/goulette/v1/broker_pb.js";
import { BeyondHighWatermarkError } from "./errors.js";
import { heldPartition, writableLeader, type PartitionLookup } from "./leader-partition.js";

/** `before_offset` for "every acknowledged record". */
const BEFORE_HIGH_WATERMARK = -1n;

/** Deletes the records and returns the leader's new log start. */
export async function deleteRecords(
  lookup: PartitionLookup,
  req: DeleteRecordsRequest,
  writable: () => boolean,
): Promise<number> {
  if (req.beforeOffset < BEFORE_HIGH_WATERMARK) {
    throw new InvalidArgumentError(
      `before_offset must be an offset (≥ 0) or -1 for the high watermark, got ${req.beforeOffset}`,
    );
  }
  const p = heldPartition(lookup, req.topic, req.partition);
  const generation = await writableLeader(p, writable);
  const hw = p.highWatermark;
  const before = req.beforeOffset === BEFORE_HIGH_WATERMARK ? hw : Number(req.beforeOffset);
  if (before > p.log.logEndOffset) {
    throw new InvalidArgumentError(
      `before_offset ${before} is past the end of ${p.key} (log end offset ${p.log.logEndOffset})`,
    );
  }
  // A new leader lacking the records up to it would keep serving them: only acknowledged ones go.
  if (before > hw) throw new BeyondHighWatermarkError("before_offset", before, p.topic, p.partition, hw);
  return p.deleteRecordsBefore(before, generation);
}
