import { Code, ConnectError } from "@connectrpc/connect";
import { UnavailableError } from "../errors.js";
import type { Message, PullRequest } from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import type { Partition } from "./partition.js";
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
  const { partition: p, generation } = start;
  let offset = start.offset;
  const batch = Math.min(req.batchSize === 0 ? DEFAULT_BATCH : req.batchSize, MAX_BATCH);
  const limit = req.maxMessages === 0n ? Infinity : Number(req.maxMessages);
  const idleWakeMs = options.idleWakeMs ?? 30_000;
  let sent = 0;
  while (sent < limit && !abort.aborted) {
    if (p.requireLeader() !== generation) {
      throw new UnavailableError(`leadership of ${p.key} changed during the pull; pull again`);
    }
    const hw = p.highWatermark;
    if (offset >= hw) {
      await p.hwSignal.wait(idleWakeMs, abort);
      continue;
    }
    const records = await p.log.read(offset, Math.min(batch, limit - sent), READ_BYTES, { endOffset: hw });
    let bytes = 0;
    const hwTag = BigInt(hw);
    for (const record of records) {
      bytes += record.payload.length;
      yield toMessage(req.topic, req.partition, record, hwTag);
    }
    options.metrics.messagesOut.inc(records.length);
    options.metrics.bytesOut.inc(bytes);
    sent += records.length;
    const last = records[records.length - 1];
    if (last !== undefined) offset = last.offset + 1;
  }
  // Cut by the client's deadline or cancellation: end with that status, not as a complete stream.
  if (sent < limit && abort.aborted) {
    throw abort.reason instanceof ConnectError
      ? abort.reason
      : new ConnectError("pull cancelled", Code.Canceled);
  }
}
