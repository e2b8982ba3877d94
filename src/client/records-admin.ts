/** Deleting a topic's records (DeleteRecords on each partition's leader), for the Admin client. */
import { InvalidArgumentError } from "../errors.js";
import { checkName, settleAll, type PartitionLeaders, type TopicPartition } from "./partition-leaders.js";

export interface DeleteRecordsOptions {
  topic: string;
  /** Only these partitions (default: every partition of the topic). */
  partitions?: readonly number[];
  /**
   * Delete the records below this offset on every partition named; default: each partition's high
   * watermark (every acknowledged record: a purge). An offset past a partition's high watermark is
   * refused on that partition.
   */
  before?: number;
  signal?: AbortSignal;
}

export interface RecordsDeletion extends TopicPartition {
  /** The partition's first readable offset afterwards. */
  logStart: number;
}

/** `before_offset` meaning each partition's high watermark. */
const HIGH_WATERMARK = -1n;

/**
 * A leader answers once every in-sync follower deleted the records too; a follower that stopped answering
 * holds it until it leaves the in-sync set (the brokers' --replica-lag-max, 10 s by default).
 */
const DELETE_RECORDS_TIMEOUT_MS = 30_000;

export async function deleteRecords(
  leaders: PartitionLeaders,
  options: DeleteRecordsOptions,
): Promise<RecordsDeletion[]> {
  const { topic, before, signal } = options;
  checkName("topic", topic);
  if (before !== undefined && !(Number.isSafeInteger(before) && before >= 0)) {
    throw new InvalidArgumentError(`'before' must be a whole number ≥ 0, got ${before}`);
  }
  const partitions = await leaders.partitionsOf(topic, options.partitions, signal);
  const beforeOffset = before === undefined ? HIGH_WATERMARK : BigInt(before);
  const starts = await settleAll(
    partitions,
    async (p) => {
      const res = await leaders.onLeader(p, signal, (client, o) =>
        client.deleteRecords(
          { topic, partition: p.partition, beforeOffset },
          { ...o, timeoutMs: DELETE_RECORDS_TIMEOUT_MS },
        ),
      );
      return Number(res.logStartOffset);
    },
    "deleted",
  );
  return partitions.map((p, i) => ({ topic, partition: p.partition, logStart: starts[i] as number }));
}
