import { Code, ConnectError } from "@connectrpc/connect";
import { UnavailableError } from "../errors.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import type { PartitionLog } from "../storage/index.js";
import type { StoredRecord } from "../storage/record-format.js";
import type { ReadStart } from "./read-start.js";

export interface ReadBatchesOptions {
  /** Records per storage read at most. */
  recordsPerRead: number;
  /** Payload bytes per storage read at most (one record may exceed it). */
  bytesPerRead: number;
  /** Records in total before the stream ends (Infinity: none). */
  limit: number;
  /** Longest a long-poll sleeps before re-checking (it is woken by new data long before). */
  idleWakeMs: number;
  /** Which stream reads: for error messages and the fetch latency's `stream` label. */
  what: "pull" | "fetch";
  metrics: BrokerMetrics;
}

/** One storage read: consecutive records below `highWatermark`. */
export interface ReadBatch<T = StoredRecord[]> {
  records: T;
  highWatermark: number;
}

/** What one storage read gave, and the counts the read loop needs of it. */
export interface ReadResult<T> {
  records: T;
  count: number;
  /** The offset of its last record (meaningless when count is 0). */
  lastOffset: number;
  payloadBytes: number;
}

/** One storage read of at most `maxRecords` records / `maxBytes` from `offset`, below `endOffset`. */
export type BatchRead<T> = (
  log: PartitionLog,
  offset: number,
  maxRecords: number,
  maxBytes: number,
  endOffset: number,
) => Promise<ReadResult<T>>;

/** Reads decoded records (PullMessage, and FetchMessages encoded by protobuf-es). */
export const readRecords: BatchRead<StoredRecord[]> = async (
  log,
  offset,
  maxRecords,
  maxBytes,
  endOffset,
) => {
  const records = await log.read(offset, maxRecords, maxBytes, { endOffset });
  let payloadBytes = 0;
  for (const record of records) payloadBytes += record.payload.length;
  return {
    records,
    count: records.length,
    lastOffset: records[records.length - 1]?.offset ?? -1,
    payloadBytes,
  };
};

/**
 * The read loop behind PullMessage and FetchMessages: reads from the start position up to the high
 * watermark, then long-polls on it (no busy loop) until `limit` records were read. Only the leader
 * serves reads: a change of leadership ends the stream with a retryable error; a cut by the client's
 * deadline or cancellation ends it with that status, not as a complete stream.
 */
export function readBatches(
  start: ReadStart,
  options: ReadBatchesOptions,
  abort: AbortSignal,
): AsyncGenerator<ReadBatch> {
  return readBatchesWith(start, options, abort, readRecords);
}

/** readBatches, each storage read made by `read` (decoded records, or the frames as stored). */
export async function* readBatchesWith<T>(
  start: ReadStart,
  options: ReadBatchesOptions,
  abort: AbortSignal,
  read: BatchRead<T>,
): AsyncGenerator<ReadBatch<T>> {
  const { partition: p, generation } = start;
  const latencyLabels = options.what === "pull" ? STREAM_PULL : STREAM_FETCH;
  let offset = start.offset;
  let sent = 0;
  // When the broker started on the next batch: the stream asked for it, or new data woke it.
  let started = performance.now();
  while (sent < options.limit && !abort.aborted) {
    if (p.requireLeader() !== generation) {
      throw new UnavailableError(
        `leadership of ${p.key} changed during the ${options.what}; ${options.what} again`,
      );
    }
    const hw = p.highWatermark;
    if (offset >= hw) {
      await p.hwSignal.wait(options.idleWakeMs, abort);
      started = performance.now();
      continue;
    }
    const result = await read(
      p.log,
      offset,
      Math.min(options.recordsPerRead, options.limit - sent),
      options.bytesPerRead,
      hw,
    );
    if (result.count === 0) continue;
    options.metrics.messagesOut.inc(result.count);
    options.metrics.bytesOut.inc(result.payloadBytes);
    sent += result.count;
    offset = result.lastOffset + 1;
    options.metrics.fetchLatency.observe(latencyLabels, (performance.now() - started) / 1000);
    yield { records: result.records, highWatermark: hw };
    started = performance.now();
  }
  if (sent < options.limit && abort.aborted) {
    throw abort.reason instanceof ConnectError
      ? abort.reason
      : new ConnectError(`${options.what} cancelled`, Code.Canceled);
  }
}

const STREAM_PULL = { stream: "pull" } as const;
const STREAM_FETCH = { stream: "fetch" } as const;
