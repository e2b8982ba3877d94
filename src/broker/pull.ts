import type { Message, PullRequest } from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import type { Partition } from "./partition.js";
import { readBatches } from "./read-batches.js";
import { resolveReadStart } from "./read-start.js";
import { toMessage } from "./wire.js";

export interface PullOptions {
  lookup: (topic: string, partition: number) => Partition | undefined;
  metrics: BrokerMetrics;
  /** Longest a long-poll sleeps before re-checking (it is woken by new data long before). */
  idleWakeMs?: number;
}

const DEFAULT_BATCH = 500;
const MAX_BATCH = 10_000;
const READ_BYTES = 1024 * 1024;

/**
 * PullMessage: streams the partition's records from an offset (or the group's committed offset) up to
 * the high watermark, then long-polls: it sleeps until the high watermark moves (no busy loop), and
 * ends after max_messages. Only the leader serves reads; a demotion ends the stream with a retryable
 * error naming the new leader.
 */
export async function* pull(
  options: PullOptions,
  req: PullRequest,
  abort: AbortSignal,
): AsyncGenerator<Message> {
  const start = await resolveReadStart(
    options.lookup,
    req.topic,
    req.partition,
    req.offset,
    req.consumerGroup,
  );
  const batches = readBatches(
    start,
    {
      recordsPerRead: Math.min(req.batchSize === 0 ? DEFAULT_BATCH : req.batchSize, MAX_BATCH),
      bytesPerRead: READ_BYTES,
      limit: req.maxMessages === 0n ? Infinity : Number(req.maxMessages),
      idleWakeMs: options.idleWakeMs ?? 30_000,
      what: "pull",
      metrics: options.metrics,
    },
    abort,
  );
  for await (const { records, highWatermark } of batches) {
    const hwTag = BigInt(highWatermark);
    for (const record of records) yield toMessage(req.topic, req.partition, record, hwTag);
  }
}
