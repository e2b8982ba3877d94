import { Code, ConnectError } from "@connectrpc/connect";
import { UnavailableError } from "../errors.js";
import type { BrokerMetrics } from "../observability/metrics.js";
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
export interface ReadBatch {
  records: StoredRecord[];
  highWatermark: number;
}

/**
 * The read loop behind PullMessage and FetchMessages: reads from the start position up to the high
 * watermark, then long-polls on it (no busy loop) until `limit` records were read. Only the leader
 * serves reads: a change of leadership ends the stream with a retryable error; a cut by the client's
 * deadline or cancellation ends it with that status, not as a complete stream.
 */
export async function* readBatches(
  start: ReadStart,
  options: ReadBatchesOptions,
  abort: AbortSignal,
): AsyncGenerator<ReadBatch> {
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
    const records = await p.log.read(
      offset,
      Math.min(options.recordsPerRead, options.limit - sent),
      options.bytesPerRead,
      { endOffset: hw },
    );
    const last = records[records.length - 1];
    if (last === undefined) continue;
    let bytes = 0;
    for (const record of records) bytes += record.payload.length;
    options.metrics.messagesOut.inc(records.length);
    options.metrics.bytesOut.inc(bytes);
    sent += records.length;
    offset = last.offset + 1;
    options.metrics.fetchLatency.observe(latencyLabels, (performance.now() - started) / 1000);
    yield { records, highWatermark: hw };
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
