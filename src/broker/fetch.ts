import { Code, ConnectError } from "@connectrpc/connect";
import { UnavailableError } from "../errors.js";
import type { FetchRequest, FetchResponse, Message } from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import type { Partition } from "./partition.js";
import { resolveReadStart } from "./read-start.js";
import { toBatchedMessage } from "./wire.js";

export interface FetchOptions {
  lookup: (topic: string, partition: number) => Partition | undefined;
  metrics: BrokerMetrics;
  /** Longest a long-poll sleeps before re-checking (it is woken by new data long before). */
  idleWakeMs?: number;
}

const DEFAULT_MESSAGES = 500;
const MAX_MESSAGES = 10_000;
const DEFAULT_BYTES = 1024 * 1024;
/** Below the clients' default 4 MiB read limit with room for the envelope (one record may exceed it). */
const MAX_BYTES = 8 * 1024 * 1024;

/**
 * FetchMessages: PullMessage in batches. Each response is one storage read (consecutive records, views
 * into the read buffer or the tail cache, no per-record copy before the protobuf encoder) bounded by
 * max_messages and max_bytes, up to the high watermark; when caught up it long-polls on the high
 * watermark like PullMessage, and ends after `limit` records.
 */
export async function* fetchBatches(
  options: FetchOptions,
  req: FetchRequest,
  abort: AbortSignal,
): AsyncGenerator<FetchResponse> {
  const start = await resolveReadStart(
    options.lookup,
    req.topic,
    req.partition,
    req.offset,
    req.consumerGroup,
  );
  const { partition: p, generation } = start;
  let offset = start.offset;
  const perBatch = Math.min(req.maxMessages === 0 ? DEFAULT_MESSAGES : req.maxMessages, MAX_MESSAGES);
  const maxBytes = Math.min(req.maxBytes === 0 ? DEFAULT_BYTES : req.maxBytes, MAX_BYTES);
  const limit = req.limit === 0n ? Infinity : Number(req.limit);
  const idleWakeMs = options.idleWakeMs ?? 30_000;
  let sent = 0;
  while (sent < limit && !abort.aborted) {
    if (p.requireLeader() !== generation) {
      throw new UnavailableError(`leadership of ${p.key} changed during the fetch; fetch again`);
    }
    const hw = p.highWatermark;
    if (offset >= hw) {
      await p.hwSignal.wait(idleWakeMs, abort);
      continue;
    }
    const records = await p.log.read(offset, Math.min(perBatch, limit - sent), maxBytes, { endOffset: hw });
    const last = records[records.length - 1];
    if (last === undefined) continue;
    const messages: Message[] = new Array<Message>(records.length);
    let bytes = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as (typeof records)[number];
      bytes += record.payload.length;
      messages[i] = toBatchedMessage(record);
    }
    options.metrics.messagesOut.inc(records.length);
    options.metrics.bytesOut.inc(bytes);
    sent += records.length;
    offset = last.offset + 1;
    yield {
      $typeName: "goulette.v1.FetchResponse",
      topic: req.topic,
      partition: req.partition,
      messages,
      highWatermark: BigInt(hw),
      logStartOffset: BigInt(p.log.logStartOffset),
    };
  }
  // Cut by the client's deadline or cancellation: end with that status, not as a complete stream.
  if (sent < limit && abort.aborted) {
    throw abort.reason instanceof ConnectError
      ? abort.reason
      : new ConnectError("fetch cancelled", Code.Canceled);
  }
}
