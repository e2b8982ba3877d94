import type { FetchRequest, FetchResponse, Message } from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import type { EncodedResponses } from "../server/encoded-responses.js";
import { FetchFrames, encodeFetchEnvelopeFromFrames } from "./fetch-encoding.js";
import type { Partition } from "./partition.js";
import { readBatches, readBatchesWith, type BatchRead, type ReadBatchesOptions } from "./read-batches.js";
import { resolveReadStart } from "./read-start.js";
import { toBatchedMessage } from "./wire.js";

export interface FetchOptions {
  lookup: (topic: string, partition: number) => Partition | undefined;
  metrics: BrokerMetrics;
  /** Longest a long-poll sleeps before re-checking (it is woken by new data long before). */
  idleWakeMs?: number;
}

/** A FetchResponse that serializes to nothing: the placeholder of a pre-encoded one. */
const PLACEHOLDER: FetchResponse = {
  $typeName: "goulette.v1.FetchResponse",
  topic: "",
  partition: 0,
  messages: [],
  highWatermark: 0n,
  logStartOffset: 0n,
};

/** A read of frames as stored, for responses encoded from them (fetch-encoding.ts). */
const readFrames: BatchRead<FetchFrames> = async (log, offset, maxRecords, maxBytes, endOffset) => {
  const read = await log.readInto(() => new FetchFrames(), offset, maxRecords, maxBytes, { endOffset });
  return {
    records: read,
    count: read.length,
    lastOffset: read.frames[read.frames.length - 1]?.offset ?? -1,
    payloadBytes: read.payloadBytes,
  };
};

const DEFAULT_MESSAGES = 500;
const MAX_MESSAGES = 10_000;
const DEFAULT_BYTES = 1024 * 1024;
/** Below the clients' default 4 MiB read limit with room for the envelope (one record may exceed it). */
const MAX_BYTES = 8 * 1024 * 1024;

/**
 * FetchMessages: PullMessage in batches. Each response is one storage read (consecutive records, views
 * into the read buffer or the tail cache, no per-record copy before the protobuf encoder) bounded by
 * max_messages and max_bytes, up to the high watermark; when caught up it long-polls on the high
 * watermark like PullMessage, and ends after `limit` records. With `encoded` (a binary protocol without
 * compression) each response is encoded here straight from the stored records and queued, and a
 * placeholder is yielded in its place (encoded-responses.ts).
 */
export async function* fetchBatches(
  options: FetchOptions,
  req: FetchRequest,
  abort: AbortSignal,
  encoded?: EncodedResponses,
): AsyncGenerator<FetchResponse> {
  const start = await resolveReadStart(
    options.lookup,
    req.topic,
    req.partition,
    req.offset,
    req.consumerGroup,
  );
  const reads: ReadBatchesOptions = {
    recordsPerRead: Math.min(req.maxMessages === 0 ? DEFAULT_MESSAGES : req.maxMessages, MAX_MESSAGES),
    bytesPerRead: Math.min(req.maxBytes === 0 ? DEFAULT_BYTES : req.maxBytes, MAX_BYTES),
    limit: req.limit === 0n ? Infinity : Number(req.limit),
    idleWakeMs: options.idleWakeMs ?? 30_000,
    what: "fetch",
    metrics: options.metrics,
  };
  if (encoded !== undefined) {
    // Encoded here straight from the frames as stored: no record is decoded.
    for await (const { records: frames, highWatermark } of readBatchesWith(start, reads, abort, readFrames)) {
      const fields = {
        topic: req.topic,
        partition: req.partition,
        highWatermark,
        logStartOffset: start.partition.log.logStartOffset,
      };
      encoded.push(encodeFetchEnvelopeFromFrames(fields, frames));
      yield PLACEHOLDER;
    }
    return;
  }
  for await (const { records, highWatermark } of readBatches(start, reads, abort)) {
    const messages: Message[] = new Array<Message>(records.length);
    for (let i = 0; i < records.length; i++)
      messages[i] = toBatchedMessage(records[i] as (typeof records)[number]);
    yield {
      $typeName: "goulette.v1.FetchResponse",
      topic: req.topic,
      partition: req.partition,
      messages,
      highWatermark: BigInt(highWatermark),
      logStartOffset: BigInt(start.partition.log.logStartOffset),
    };
  }
}
