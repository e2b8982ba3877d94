import type { ProduceRecord } from "../gen/goulette/v1/broker_pb.js";
import { backoffDelay } from "../common/backoff.js";

/**
 * The producer's record accumulator (Kafka's RecordAccumulator, kafkajs's producer batching): records
 * queued per partition, and at each drain the batches to send now, grouped into one request per leader
 * broker. Pure: no timers, no I/O; `now` is passed in and the producer acts on what a drain returns.
 *
 * Order and idempotence per partition: message ids increase in append order; after a failed request
 * the partition sends nothing until every request of it in flight has settled, then sends the failed
 * records again, in message id order, before anything newer.
 *
 * Requests in flight per broker are bounded (Kafka's max.in.flight.requests.per.connection): while a
 * broker's window is full, records for every partition it leads queue up, and the next request carries
 * them together, instead of a stream of requests of a record or two each. The window cannot hold a
 * retry back for good: a retry waits for its partition's requests in flight to settle anyway, and
 * every settled request frees its slot; the next request to the broker then carries the retried
 * records at the front of their partition's batch (each partition's queue is in message id order).
 */

export type RecordState = "unassigned" | "queued" | "inflight" | "failed" | "settled";

/** What the accumulator needs of a record (the producer's records carry more). */
export interface AccumulatedRecord {
  messageId: bigint;
  wire: ProduceRecord;
  /** Payload + key bytes. */
  bytes: number;
  enqueuedAt: number;
  deadline: number;
  attempts: number;
  state: RecordState;
  /**
   * The record queued before it on its partition (until found stored or given up on): what a batch
   * starting with it names as the message it follows (the broker's order check).
   */
  previous?: AccumulatedRecord | undefined;
  /** Set by the producer when the record is acknowledged (stored): the chain of predecessors ends here. */
  acknowledged?: boolean;
}

/**
 * The message id a batch starting with `first` follows: the nearest earlier record of its partition that
 * was not given up on (acknowledged, or still being sent), 0n when there is none. Records given up on
 * (timed out, rejected, withdrawn) are skipped, so they never hold the partition up; the walk shortens
 * the chain for good.
 */
export function previousMessageId(first: AccumulatedRecord): bigint {
  const previous = live(first.previous);
  first.previous = previous;
  return previous?.messageId ?? 0n;
}

function live(record: AccumulatedRecord | undefined): AccumulatedRecord | undefined {
  let r = record;
  while (r !== undefined && r.state === "settled" && r.acknowledged !== true) r = r.previous;
  return r;
}

export interface PartitionQueue<R extends AccumulatedRecord> {
  readonly topic: string;
  readonly partition: number;
  nextMessageId: bigint;
  /** Waiting to be sent, in message id order (retries go back to the front). */
  queue: R[];
  queuedBytes: number;
  inflightBatches: number;
  inflightRecords: number;
  /** Records of failed requests, sent again once nothing of the partition is in flight. */
  failed: R[];
  recovering: boolean;
  /** Consecutive failed attempts (backoff). */
  failures: number;
  retryAt: number;
  /** A GetBrokers for this partition's topic must answer before sending again. */
  waitingForMetadata: boolean;
  /** The record appended last (the next one's predecessor). */
  last: R | undefined;
}

export interface AccumulatorLimits {
  /** How long a partial batch waits for more records (ms). */
  lingerMs: number;
  /** Records per partition batch at most. */
  maxBatchMessages: number;
  /** Bytes per partition batch at most (a larger single record goes alone). */
  maxBatchBytes: number;
  /** Bytes per request (all its batches) at most; a request always carries at least one batch. */
  maxRequestBytes: number;
  /** Records in flight over all partitions. */
  maxInFlightMessages: number;
  /** Records in flight per partition. */
  maxInFlightPerPartition: number;
  /** Requests in flight per broker (each carries the batches of many partitions). */
  maxInFlightRequestsPerBroker: number;
  retryBackoffMs: number;
  maxRetryBackoffMs: number;
}

/** Where a partition's records go now: its leader's address, "" when it has none. */
export type LeaderOf = (topic: string, partition: number) => string | undefined;

export interface Batch<R extends AccumulatedRecord> {
  queue: PartitionQueue<R>;
  records: R[];
  /**
   * Its records have left the windows (release(): answered on its own, or its request settled); whether
   * it was answered before its request failed is read before complete() releases the rest.
   */
  released: boolean;
}

/** One request: batches of distinct partitions led by one broker. */
export interface Outgoing<R extends AccumulatedRecord> {
  address: string;
  batches: Batch<R>[];
}

export interface Drain<R extends AccumulatedRecord> {
  requests: Outgoing<R>[];
  /** Drain again at this time (a linger or a retry backoff ends), if nothing else calls first. */
  wakeAt: number | undefined;
  /** Topics whose leaders must be asked again (their partitions wait for the answer). */
  refresh: Set<string>;
}

export class RecordAccumulator<R extends AccumulatedRecord> {
  /** Partitions that may have something to send (the rest have nothing queued or retrying). */
  readonly #active = new Set<PartitionQueue<R>>();
  #inflight = 0;
  /** Requests in flight by broker address (absent: none). */
  readonly #requestsInFlight = new Map<string, number>();

  constructor(readonly limits: AccumulatorLimits) {}

  /** Records in flight over all partitions. */
  get inflight(): number {
    return this.#inflight;
  }

  /** A new, empty partition queue. */
  static queue<R extends AccumulatedRecord>(topic: string, partition: number): PartitionQueue<R> {
    return {
      topic,
      partition,
      nextMessageId: 1n,
      queue: [],
      queuedBytes: 0,
      inflightBatches: 0,
      inflightRecords: 0,
      failed: [],
      recovering: false,
      failures: 0,
      retryAt: 0,
      waitingForMetadata: false,
      last: undefined,
    };
  }

  /** Queues a record on `q`, giving it the partition's next message id. */
  append(q: PartitionQueue<R>, record: R): void {
    record.messageId = q.nextMessageId++;
    record.wire.messageId = record.messageId;
    record.state = "queued";
    record.previous = live(q.last);
    q.last = record;
    q.queue.push(record);
    q.queuedBytes += record.bytes;
    this.#active.add(q);
  }

  /** `q` may be able to send again (an answer came, its metadata arrived). */
  wake(q: PartitionQueue<R>): void {
    this.#active.add(q);
  }

  /** Requests in flight to the broker at `address`. */
  requestsInFlight(address: string): number {
    return this.#requestsInFlight.get(address) ?? 0;
  }

  /**
   * The requests to send now. A broker is ready when its request window has room and one of its
   * partitions is due (a full batch, a linger over, `urgent` — flushing or closing —, a retry); then
   * every partition it leads with records queued sends, lingering or not (fewer, fuller requests), in
   * as many requests as its window allows. Batches are marked in flight. A broker whose window is
   * full is drained again when one of its requests settles (complete()).
   */
  drain(now: number, leaderOf: LeaderOf, urgent: boolean): Drain<R> {
    const refresh = new Set<string>();
    let wakeAt: number | undefined;
    const later = (at: number) => {
      wakeAt = wakeAt === undefined ? at : Math.min(wakeAt, at);
    };
    const ready = new Set<string>();
    const candidates: { q: PartitionQueue<R>; address: string }[] = [];
    for (const q of this.#active) {
      this.#recover(q, now);
      this.#dropSettledHead(q);
      if (q.queue.length === 0) {
        if (!q.recovering) this.#active.delete(q);
        continue;
      }
      if (q.waitingForMetadata || q.recovering) continue;
      if (now < q.retryAt) {
        later(q.retryAt);
        continue;
      }
      const address = leaderOf(q.topic, q.partition);
      if (address === undefined || address === "") {
        // No leader right now (every replica down?): ask again, with backoff between the answers.
        q.failures++;
        q.retryAt = now + this.#backoff(q.failures);
        q.waitingForMetadata = true;
        refresh.add(q.topic);
        continue;
      }
      // Its records accumulate until an answer frees a slot (which drains again): no timer needed.
      if (this.requestsInFlight(address) >= this.limits.maxInFlightRequestsPerBroker) continue;
      candidates.push({ q, address });
      const head = q.queue[0] as R;
      const full =
        q.queue.length >= this.limits.maxBatchMessages || q.queuedBytes >= this.limits.maxBatchBytes;
      const due = head.enqueuedAt + this.limits.lingerMs;
      if (full || urgent || head.attempts > 0 || now >= due) ready.add(address);
      else later(due);
    }
    const requests = new Map<string, { current: Outgoing<R>; bytes: number }>();
    const out: Outgoing<R>[] = [];
    /** Brokers whose window filled during this drain. */
    const full = new Set<string>();
    for (const { q, address } of candidates) {
      if (!ready.has(address) || full.has(address)) continue;
      while (q.queue.length > 0) {
        const globalRoom = this.limits.maxInFlightMessages - this.#inflight;
        const partitionRoom = this.limits.maxInFlightPerPartition - q.inflightRecords;
        // Resumed by the next answer (every answer wakes its partitions and drains).
        if (globalRoom <= 0 || partitionRoom <= 0) break;
        const records = this.#take(q, Math.min(this.limits.maxBatchMessages, globalRoom, partitionRoom));
        if (records.length === 0) break;
        let bytes = 0;
        for (const r of records) bytes += r.bytes;
        let request = requests.get(address);
        // One batch per partition per request (a partition's batches are taken one after another, so
        // only the last batch can be its own); a full request starts another, if the window has room.
        if (
          request === undefined ||
          request.bytes + bytes > this.limits.maxRequestBytes ||
          request.current.batches[request.current.batches.length - 1]?.queue === q
        ) {
          if (this.requestsInFlight(address) >= this.limits.maxInFlightRequestsPerBroker) {
            this.#putBack(q, records, bytes);
            full.add(address);
            break;
          }
          request = { current: { address, batches: [] }, bytes: 0 };
          requests.set(address, request);
          out.push(request.current);
          this.#requestsInFlight.set(address, this.requestsInFlight(address) + 1);
        }
        request.current.batches.push({ queue: q, records, released: false });
        request.bytes += bytes;
        this.#markInFlight(q, records);
      }
    }
    return { requests: out, wakeAt, refresh };
  }

  /**
   * A request settled (answered, failed or timed out): its batches leave the windows and its broker's
   * request window has room again.
   */
  complete(request: Outgoing<R>): void {
    for (const batch of request.batches) if (!batch.released) this.release(batch);
    const left = this.requestsInFlight(request.address) - 1;
    if (left > 0) this.#requestsInFlight.set(request.address, left);
    else this.#requestsInFlight.delete(request.address);
  }

  /**
   * `batch` was answered (its request may still wait on others): its records leave the windows, its
   * request's slot stays taken until complete().
   */
  release(batch: Batch<R>): void {
    batch.released = true;
    const q = batch.queue;
    q.inflightBatches--;
    q.inflightRecords -= batch.records.length;
    this.#inflight -= batch.records.length;
    this.#active.add(q);
  }

  /**
   * Records of a failed attempt wait to be sent again (after everything of the partition in flight has
   * settled, then after a backoff). Returns the ones past their deadline instead: the producer fails them.
   */
  retryLater(q: PartitionQueue<R>, records: readonly R[], now: number): { retried: number; expired: R[] } {
    const expired: R[] = [];
    let retried = 0;
    for (const r of records) {
      if (r.state === "settled") continue;
      if (now >= r.deadline) {
        expired.push(r);
        continue;
      }
      r.state = "failed";
      q.failed.push(r);
      retried++;
    }
    if (retried > 0) {
      if (!q.recovering) q.failures++;
      q.recovering = true;
      this.#active.add(q);
    }
    return { retried, expired };
  }

  /** An answer without retryable errors: the partition's backoff starts over. */
  succeeded(q: PartitionQueue<R>): void {
    if (!q.recovering) q.failures = 0;
  }

  /** Queued records past their deadline (in-flight ones are checked when they return). */
  expired(queues: Iterable<PartitionQueue<R>>, now: number): R[] {
    const out: R[] = [];
    for (const q of queues) {
      // Queues are in message id order, which is send() order: the oldest are at the head.
      for (const r of q.queue) {
        if (r.state === "settled") continue;
        if (now < r.deadline) break;
        out.push(r);
      }
    }
    return out;
  }

  /** Once nothing of a recovering partition is in flight, its failed records go back to the front. */
  #recover(q: PartitionQueue<R>, now: number): void {
    if (!q.recovering || q.inflightBatches > 0) return;
    const retry = q.failed.filter((r) => r.state !== "settled");
    q.failed = [];
    q.recovering = false;
    retry.sort((a, b) => (a.messageId < b.messageId ? -1 : 1));
    for (const r of retry) {
      r.state = "queued";
      q.queuedBytes += r.bytes;
    }
    q.queue = retry.concat(q.queue);
    q.retryAt = now + this.#backoff(q.failures);
  }

  #backoff(failures: number): number {
    return backoffDelay(failures, this.limits.retryBackoffMs, this.limits.maxRetryBackoffMs);
  }

  #take(q: PartitionQueue<R>, max: number): R[] {
    const batch: R[] = [];
    let bytes = 0;
    let removedBytes = 0;
    let i = 0;
    for (; i < q.queue.length && batch.length < max; i++) {
      const record = q.queue[i] as R;
      if (record.state !== "settled") {
        if (batch.length > 0 && bytes + record.bytes > this.limits.maxBatchBytes) break;
        batch.push(record);
        bytes += record.bytes;
      }
      removedBytes += record.bytes;
    }
    q.queue.splice(0, i);
    q.queuedBytes = q.queue.length === 0 ? 0 : q.queuedBytes - removedBytes;
    return batch;
  }

  /** Records just taken go back to the head of their queue, in the order they were taken. */
  #putBack(q: PartitionQueue<R>, records: R[], bytes: number): void {
    q.queue = records.concat(q.queue);
    q.queuedBytes += bytes;
  }

  #dropSettledHead(q: PartitionQueue<R>): void {
    let i = 0;
    let removedBytes = 0;
    while (i < q.queue.length && (q.queue[i] as R).state === "settled") {
      removedBytes += (q.queue[i] as R).bytes;
      i++;
    }
    if (i === 0) return;
    q.queue.splice(0, i);
    q.queuedBytes = q.queue.length === 0 ? 0 : q.queuedBytes - removedBytes;
  }

  #markInFlight(q: PartitionQueue<R>, records: readonly R[]): void {
    for (const r of records) {
      r.state = "inflight";
      r.attempts++;
    }
    q.inflightBatches++;
    q.inflightRecords += records.length;
    this.#inflight += records.length;
  }
}
