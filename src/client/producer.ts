import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError, UnavailableError, type GouletteError } from "../errors.js";
import {
  Acks,
  ProduceRecordSchema,
  type BatchesRequest,
  type BatchesResponse,
  type MessageResponse,
  type PartitionBatch,
} from "../gen/goulette/v1/broker_pb.js";
import { decideAck, decideFailure } from "./ack-decisions.js";
import { backoffDelay, retryHintMs, unrefTimer } from "./backoff.js";
import { AbortedError, ClientClosedError, DeliveryTimeoutError, toClientError } from "./errors.js";
import { emitter, sentinelList, type ClientEvent } from "./events.js";
import { toBytes, type ProduceAck, type ProducerMessage } from "./messages.js";
import { KeylessPartitioner, partitionForKey, type PartitionView } from "./partitioner.js";
import { openProduceChannel, type ProduceChannel } from "./produce-channel.js";
import { PRODUCER_DEFAULTS, type ProducerOptions, type ProducerStats } from "./producer-options.js";
import {
  RecordAccumulator,
  type AccumulatedRecord,
  type Batch,
  type Outgoing,
  type PartitionQueue,
  previousMessageId,
} from "./record-accumulator.js";
import { DefaultReplicaCount } from "./default-replicas.js";
import { SentinelPool } from "./sentinel-pool.js";
import { partitionKey } from "./topic-partition.js";
import { TopicMetadata } from "./topic-metadata.js";

export type { ProducerOptions, ProducerStats } from "./producer-options.js";

interface PendingRecord extends AccumulatedRecord {
  topic: TopicState;
  partition: number;
  key: Uint8Array;
  lastError: unknown;
  resolve: (ack: ProduceAck) => void;
  reject: (err: unknown) => void;
  promise: Promise<ProduceAck>;
  cleanup: (() => void) | undefined;
}

type Queue = PartitionQueue<PendingRecord>;

interface TopicState {
  name: string;
  metadata: TopicMetadata;
  partitions: Queue[] | undefined;
  /** Records sent before the first assignment was known (partition not chosen yet). */
  unassigned: PendingRecord[];
  /** Where its messages without key or partition go, and its partitions as that choice sees them. */
  keyless: KeylessPartitioner;
  view: PartitionView | undefined;
  loading: boolean;
  refreshFailures: number;
}

const DEFAULTS = PRODUCER_DEFAULTS;

/**
 * Produces messages to any topic of the cluster: the orchestration around two pure parts. Finds
 * partition leaders with GetBrokers (any sentinel of the list); queues messages per partition in a
 * RecordAccumulator (src/client/record-accumulator.ts: batching, lingering, the sliding windows, retry
 * order), which at each drain hands out one request per leader broker carrying the batches of many
 * partitions (SendBatches); settles each record by its ack with the decisions of
 * src/client/ack-decisions.ts; and resolves each send() with its ack.
 *
 * Idempotence and order: every message gets (producer id, increasing message id per partition) once,
 * at send(); a retry reuses them, so a broker that already stored it acknowledges the original offset
 * instead of writing it twice. After a failure the partition's in-flight requests are all allowed to
 * settle first, then the failed records are sent again in message id order, before anything newer: the
 * log keeps the send order. A broker that cannot be reached is reported to the sentinels
 * (GetBrokers with unreachable_brokers), and the partition continues on the assignment they return.
 * One timer per producer (the earliest linger or backoff), none per partition.
 *
 * About 700 lines: the public API (send, waitForRoom, flush, close, each with its abort handling) and
 * the wiring of metadata, channels and settling stay together; what is decided lives in the two pure
 * modules. The next split would be topic loading and record settling into their own modules.
 */
export class Producer {
  readonly producerId: string;
  readonly #options: ProducerOptions;
  readonly #settings: typeof DEFAULTS;
  readonly #acks: Acks;
  readonly #emit: (event: ClientEvent) => void;
  readonly #sentinels: SentinelPool;
  /** replica_count for the topics this client may create without a configured one. */
  readonly #defaultReplicas: DefaultReplicaCount;
  readonly #headers: Record<string, string>;
  readonly #topics = new Map<string, TopicState>();
  readonly #channels = new Map<string, ProduceChannel>();
  readonly #unsettled = new Set<PendingRecord>();
  readonly #accumulator: RecordAccumulator<PendingRecord>;
  #flushing = 0;
  #state: "open" | "closing" | "closed" = "open";
  #closing: Promise<void> | undefined;
  #roomWaiters: Array<() => void> = [];
  #sweeper: ReturnType<typeof setInterval> | undefined;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** The one drain timer (the earliest linger or backoff end) and when it fires. */
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #drainAt = 0;
  #drainQueued = false;
  #nextRequestId = 1n;
  #stats = { acknowledged: 0, failed: 0, retried: 0, requests: 0, unreachableBrokers: [] as string[] };
  readonly #onAbort: () => void;

  constructor(options: ProducerOptions) {
    this.#options = options;
    const settings = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const value = options[key];
      if (value === undefined) continue;
      if (!Number.isFinite(value) || value < 0 || (key !== "lingerMs" && value === 0)) {
        throw new InvalidArgumentError(`${key} must be a positive number, got ${value}`);
      }
      settings[key] = value;
    }
    this.#settings = settings;
    const partitioner = options.partitioner;
    if (partitioner !== undefined && partitioner !== "sticky" && partitioner !== "round-robin") {
      throw new InvalidArgumentError(
        `partitioner must be "sticky" or "round-robin", got ${String(partitioner)}`,
      );
    }
    this.#accumulator = new RecordAccumulator<PendingRecord>(settings);
    this.#acks = options.acks === "leader" ? Acks.LEADER : Acks.ALL;
    this.producerId = options.producerId ?? randomId();
    this.#emit = emitter(options.onEvent);
    this.#headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
    this.#sentinels = new SentinelPool({
      urls: sentinelList(options.sentinels),
      transport: options.transport,
      headers: this.#headers,
      timeoutMs: settings.sentinelTimeoutMs,
      listener: options.listener,
      emit: this.#emit,
    });
    this.#defaultReplicas = new DefaultReplicaCount(this.#sentinels);
    this.#onAbort = () => this.#shutdown(new AbortedError(options.signal?.reason, "the producer"));
    if (options.signal?.aborted) this.#state = "closed";
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Messages accepted and not yet acknowledged or failed. */
  get pending(): number {
    return this.#unsettled.size;
  }

  stats(): ProducerStats {
    let reports = 0;
    for (const topic of this.#topics.values()) reports += topic.metadata.unreachableReports;
    return {
      pending: this.#unsettled.size,
      inFlight: this.#accumulator.inflight,
      acknowledged: this.#stats.acknowledged,
      failed: this.#stats.failed,
      retried: this.#stats.retried,
      requests: this.#stats.requests,
      unreachableReports: reports,
      unreachableBrokers: [...this.#stats.unreachableBrokers],
      sentinelFailovers: this.#sentinels.failovers,
    };
  }

  /**
   * Queues a message; resolves once it is acknowledged, rejects with a typed error when it cannot be
   * (MessageRejectedError, DeliveryTimeoutError, AbortedError, ClientClosedError). Aborting `signal`
   * withdraws a message not sent yet; one already sent may still be written.
   */
  send(message: ProducerMessage, options: { signal?: AbortSignal } = {}): Promise<ProduceAck> {
    if (this.#state !== "open") return Promise.reject(new ClientClosedError("the producer"));
    const topicName = message.topic ?? this.#options.topic;
    if (!topicName) {
      return Promise.reject(new InvalidArgumentError("the message names no topic and the producer has none"));
    }
    if (message.partition !== undefined && (!Number.isInteger(message.partition) || message.partition < 0)) {
      return Promise.reject(
        new InvalidArgumentError(`partition must be an integer ≥ 0, got ${message.partition}`),
      );
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason, "the send"));
    const topic = this.#topic(topicName);
    const key = toBytes(message.key);
    const payload = toBytes(message.value);
    const now = Date.now();
    let resolve!: (ack: ProduceAck) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<ProduceAck>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const record: PendingRecord = {
      topic,
      partition: message.partition ?? -1,
      messageId: 0n,
      key,
      wire: create(ProduceRecordSchema, {
        key,
        payload,
        headers: Object.entries(message.headers ?? {}).map(([k, v]) => ({ key: k, value: toBytes(v) })),
        timestamp: BigInt(Math.max(0, Math.floor(message.timestamp ?? 0))),
      }),
      bytes: payload.length + key.length,
      enqueuedAt: now,
      deadline: now + this.#settings.deliveryTimeoutMs,
      attempts: 0,
      lastError: undefined,
      state: "unassigned",
      resolve,
      reject,
      promise,
      cleanup: undefined,
    };
    if (signal) {
      const onAbort = () => this.#withdraw(record, new AbortedError(signal.reason, "the send"));
      signal.addEventListener("abort", onAbort, { once: true });
      record.cleanup = () => signal.removeEventListener("abort", onAbort);
    }
    this.#unsettled.add(record);
    this.#startSweeper();
    if (topic.partitions) {
      if (this.#assign(topic, record)) this.#scheduleDrain();
    } else {
      topic.unassigned.push(record);
      this.#loadTopic(topic);
    }
    return promise;
  }

  /** Resolves once fewer than maxPendingMessages messages are unacknowledged (back-pressure for loops). */
  waitForRoom(signal?: AbortSignal): Promise<void> {
    if (this.#unsettled.size < this.#settings.maxPendingMessages || this.#state !== "open") {
      return Promise.resolve();
    }
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#roomWaiters = this.#roomWaiters.filter((w) => w !== wake);
        reject(new AbortedError(signal?.reason));
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#roomWaiters.push(wake);
    });
  }

  /**
   * Sends every queued message now (no lingering) and resolves once every message sent before this call
   * is settled. Failures are reported by each send()'s promise, not here.
   */
  async flush(signal?: AbortSignal): Promise<void> {
    const waiting = [...this.#unsettled].map((r) => r.promise.catch(() => undefined));
    if (waiting.length === 0) return;
    this.#flushing++;
    try {
      this.#drain();
      const all = Promise.all(waiting);
      if (!signal) {
        await all;
        return;
      }
      if (signal.aborted) throw new AbortedError(signal.reason, "the flush");
      let onAbort: (() => void) | undefined;
      try {
        await Promise.race([
          all,
          new Promise<never>((_, reject) => {
            onAbort = () => reject(new AbortedError(signal.reason, "the flush"));
            signal.addEventListener("abort", onAbort, { once: true });
          }),
        ]);
      } finally {
        if (onAbort) signal.removeEventListener("abort", onAbort);
      }
    } finally {
      this.#flushing--;
    }
  }

  /**
   * Stops accepting messages, flushes (unless `flush: false`), then releases every connection. Messages
   * still unsettled when it ends (aborted flush, or flush: false) fail with ClientClosedError.
   */
  close(options: { signal?: AbortSignal; flush?: boolean } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#state === "open") this.#state = "closing";
    this.#closing = (async () => {
      if (options.flush !== false && this.#state === "closing") {
        await this.flush(options.signal).catch(() => undefined);
      }
      this.#shutdown(new ClientClosedError("the producer"));
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- topics and partitions ------------------------------------------------------------------------

  #topic(name: string): TopicState {
    let topic = this.#topics.get(name);
    if (!topic) {
      topic = {
        name,
        metadata: new TopicMetadata({
          topic: name,
          sentinels: this.#sentinels,
          defaultReplicas: this.#defaultReplicas,
          shape: this.#options.createTopic,
          emit: this.#emit,
        }),
        partitions: undefined,
        unassigned: [],
        keyless: new KeylessPartitioner(this.#options.partitioner ?? "sticky"),
        view: undefined,
        loading: false,
        refreshFailures: 0,
      };
      this.#topics.set(name, topic);
    }
    return topic;
  }

  /** First assignment of a topic: creates its partition queues and places the records waiting for it. */
  #loadTopic(topic: TopicState): void {
    if (topic.loading || topic.partitions) return;
    topic.loading = true;
    topic.metadata.get().then(
      (assignment) => {
        topic.loading = false;
        if (this.#state === "closed") return;
        const count = assignment.partitions.length;
        if (count === 0) {
          this.#failUnassigned(topic, new UnavailableError(`topic ${topic.name} has no partitions`));
          return;
        }
        topic.partitions = Array.from({ length: count }, (_, partition) =>
          RecordAccumulator.queue<PendingRecord>(topic.name, partition),
        );
        topic.view = this.#partitionView(topic.name, topic.partitions);
        const waiting = topic.unassigned;
        topic.unassigned = [];
        for (const record of waiting) if (record.state !== "settled") this.#assign(topic, record);
        this.#scheduleDrain();
      },
      (err: unknown) => {
        topic.loading = false;
        if (this.#state === "closed") return;
        const error = toClientError(err);
        if (!error.retryable) {
          this.#failUnassigned(topic, error);
          return;
        }
        this.#emit({ type: "error", topic: topic.name, what: "GetBrokers", error });
        // A record that times out before its topic is known says why (e.g. creations refused as overload).
        for (const record of topic.unassigned) record.lastError = error;
        topic.refreshFailures++;
        this.#later(metadataRetryDelay(topic.refreshFailures, error), () => {
          if (topic.unassigned.some((r) => r.state !== "settled")) this.#loadTopic(topic);
        });
      },
    );
  }

  #failUnassigned(topic: TopicState, error: GouletteError): void {
    const waiting = topic.unassigned;
    topic.unassigned = [];
    for (const record of waiting) this.#fail(record, error);
  }

  /** Chooses the record's partition and queues it; false when the record failed instead. */
  #assign(topic: TopicState, record: PendingRecord): boolean {
    const partitions = topic.partitions as Queue[];
    let partition = record.partition;
    if (partition >= partitions.length) {
      this.#fail(
        record,
        new InvalidArgumentError(
          `topic ${topic.name} has ${partitions.length} partitions; partition ${partition} does not exist`,
        ),
      );
      return false;
    }
    if (partition < 0) {
      partition =
        record.key.length > 0
          ? partitionForKey(record.key, partitions.length)
          : topic.keyless.choose(partitions.length, topic.view as PartitionView);
    }
    record.partition = partition;
    this.#accumulator.append(partitions[partition] as Queue, record);
    return true;
  }

  /** The partitions of a topic as the sticky partitioner sees them. */
  #partitionView(topic: string, partitions: readonly Queue[]): PartitionView {
    const { maxBatchMessages, maxBatchBytes } = this.#settings;
    return {
      batchOpen: (p) => {
        const q = partitions[p] as Queue;
        return q.queue.length > 0 && q.queue.length < maxBatchMessages && q.queuedBytes < maxBatchBytes;
      },
      available: (p) => {
        const q = partitions[p] as Queue;
        return !q.waitingForMetadata && !q.recovering && Boolean(this.#location(topic, p)?.address);
      },
    };
  }

  // ---- sending ------------------------------------------------------------------------------------

  /** Drains once the current run of send() calls (or answers) is over. */
  #scheduleDrain(): void {
    if (this.#drainQueued || this.#state === "closed") return;
    this.#drainQueued = true;
    queueMicrotask(() => {
      this.#drainQueued = false;
      this.#drain();
    });
  }

  /** Sends what may be sent now, one request per leader broker; arranges the next drain. */
  #drain(): void {
    if (this.#state === "closed") return;
    const now = Date.now();
    const urgent = this.#flushing > 0 || this.#state !== "open";
    const drained = this.#accumulator.drain(
      now,
      (topic, partition) => this.#location(topic, partition)?.address,
      urgent,
    );
    for (const name of drained.refresh) {
      const topic = this.#topics.get(name);
      if (topic) this.#refresh(topic, []);
    }
    for (const request of drained.requests) this.#sendRequest(request);
    if (drained.wakeAt !== undefined) this.#wakeAt(drained.wakeAt);
  }

  #location(topic: string, partition: number) {
    return this.#topics.get(topic)?.metadata.current?.partitions[partition];
  }

  #sendRequest(request: Outgoing<PendingRecord>): void {
    const first = request.batches[0] as Batch<PendingRecord>;
    const leaderId = this.#location(first.queue.topic, first.queue.partition)?.leaderId ?? "";
    const batches: PartitionBatch[] = request.batches.map((b) => {
      for (const r of b.records) if (r.attempts > 1) this.#stats.retried++;
      return {
        $typeName: "goulette.v1.PartitionBatch",
        topic: b.queue.topic,
        partition: b.queue.partition,
        records: b.records.map((r) => r.wire),
        previousMessageId: previousMessageId(b.records[0] as PendingRecord),
      };
    });
    const message: BatchesRequest = {
      $typeName: "goulette.v1.BatchesRequest",
      requestId: this.#nextRequestId++,
      producerId: this.producerId,
      acks: this.#acks,
      batches,
      // Each partition's records are settled as soon as that partition is done, not when the slowest
      // partition of the request is (brokers older than this answer once; the same code reads both).
      answerPerBatch: true,
    };
    this.#stats.requests++;
    const channel = this.#channel(request.address);
    const batchOf = new Map(request.batches.map((b) => [partitionKey(b.queue), b]));
    channel
      .send(message, (res) => this.#onAnswers(request, batchOf, res, false))
      .then(
        (res) => this.#onAnswers(request, batchOf, res, true),
        (err: unknown) => this.#onFailure(request, leaderId, channel, err),
      );
  }

  #channel(address: string): ProduceChannel {
    let channel = this.#channels.get(address);
    if (!channel) {
      channel = openProduceChannel({
        transport: this.#options.transport,
        address,
        headers: this.#headers,
        requestTimeoutMs: this.#settings.requestTimeoutMs,
      });
      this.#channels.set(address, channel);
    }
    return channel;
  }

  /**
   * Answers to some of the request's batches (`last`: its final response; a broker answering per batch
   * sends earlier ones). Each answered batch settles its records and leaves the windows; the final
   * response also settles any batch left unanswered (as an answer without acks: retried) and frees the
   * request's slot.
   */
  #onAnswers(
    request: Outgoing<PendingRecord>,
    batchOf: ReadonlyMap<string, Batch<PendingRecord>>,
    res: BatchesResponse,
    last: boolean,
  ): void {
    const refresh = new Map<TopicState, Queue[]>();
    for (const answer of res.responses) {
      const batch = batchOf.get(partitionKey(answer));
      if (batch === undefined || batch.released) continue; // not this request's, or answered already
      this.#settleBatch(batch, answer, refresh);
      this.#accumulator.release(batch);
    }
    if (last) {
      for (const batch of request.batches) if (!batch.released) this.#settleBatch(batch, undefined, refresh);
      this.#accumulator.complete(request);
    }
    for (const [topic, queues] of refresh) this.#refresh(topic, [], queues);
    this.#scheduleDrain();
  }

  /** One batch's answer (undefined: none came): each record acknowledged, retried or failed. */
  #settleBatch(
    batch: Batch<PendingRecord>,
    answer: MessageResponse | undefined,
    refresh: Map<TopicState, Queue[]>,
  ): void {
    const q = batch.queue;
    const retry: PendingRecord[] = [];
    let reason = "";
    batch.records.forEach((record, j) => {
      if (record.state === "settled") return;
      const decision = decideAck(q.topic, q.partition, record.messageId, answer?.acks[j]);
      switch (decision.kind) {
        case "acknowledged":
          this.#succeed(record, decision.ack);
          break;
        case "retry":
          record.lastError = decision.error;
          retry.push(record);
          reason = decision.reason;
          if (decision.refresh) refresh.set(record.topic, [...(refresh.get(record.topic) ?? []), q]);
          break;
        case "rejected":
          this.#fail(record, decision.error);
      }
    });
    if (retry.length > 0) this.#retryLater(q, retry, reason);
    else this.#accumulator.succeeded(q);
  }

  #onFailure(
    request: Outgoing<PendingRecord>,
    leaderId: string,
    channel: ProduceChannel,
    err: unknown,
  ): void {
    // Batches answered before the failure (answers per batch) are settled already.
    const unanswered = request.batches.filter((b) => !b.released);
    this.#accumulator.complete(request);
    if (this.#state === "closed") return;
    const decision = decideFailure(leaderId, request.address, err);
    const topics = new Map<TopicState, Queue[]>();
    for (const batch of unanswered) {
      const records = batch.records;
      const topic = (records[0] as PendingRecord).topic;
      topics.set(topic, [...(topics.get(topic) ?? []), batch.queue]);
      if (decision.kind === "fail") {
        for (const r of records) this.#fail(r, decision.error);
        continue;
      }
      for (const r of records) r.lastError = decision.error;
      this.#retryLater(
        batch.queue,
        records,
        decision.kind === "unreachable" ? "broker unreachable" : decision.error.message,
      );
    }
    if (decision.kind === "unreachable") {
      // One report per broken connection, however many requests were on it.
      if (this.#channels.get(request.address) === channel) {
        this.#channels.delete(request.address);
        channel.close();
        this.#options.transport.forget(request.address);
        this.#stats.unreachableBrokers.push(leaderId);
        for (const topic of topics.keys()) {
          this.#emit({
            type: "broker-unreachable",
            topic: topic.name,
            brokerId: leaderId,
            address: request.address,
            error: decision.error,
          });
        }
      }
      for (const [topic, queues] of topics) this.#refresh(topic, [leaderId], queues);
    }
    this.#scheduleDrain();
  }

  #retryLater(q: Queue, records: PendingRecord[], reason: string): void {
    const { retried, expired } = this.#accumulator.retryLater(q, records, Date.now());
    for (const r of expired) {
      this.#fail(r, new DeliveryTimeoutError(this.#settings.deliveryTimeoutMs, r.attempts, r.lastError));
    }
    if (retried > 0)
      this.#emit({ type: "retry", topic: q.topic, partition: q.partition, records: retried, reason });
  }

  /** GetBrokers again (reporting `unreachable`); `waiting` send nothing before the answer. */
  #refresh(topic: TopicState, unreachable: string[], waiting: Iterable<Queue> = []): void {
    for (const q of waiting) q.waitingForMetadata = true;
    topic.metadata.refresh(unreachable).then(
      () => {
        topic.refreshFailures = 0;
        for (const q of topic.partitions ?? []) {
          q.waitingForMetadata = false;
          this.#accumulator.wake(q);
        }
        this.#scheduleDrain();
      },
      (err: unknown) => {
        if (this.#state === "closed") return;
        const error = toClientError(err);
        this.#emit({ type: "error", topic: topic.name, what: "GetBrokers", error });
        topic.refreshFailures++;
        this.#later(metadataRetryDelay(topic.refreshFailures, error), () =>
          this.#refresh(topic, unreachable, waiting),
        );
      },
    );
  }

  #wakeAt(at: number): void {
    if (this.#drainTimer !== undefined && this.#drainAt <= at) return;
    if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer);
    this.#drainAt = at;
    this.#drainTimer = setTimeout(
      () => {
        this.#drainTimer = undefined;
        this.#drain();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Runs `fn` after `ms` unless the producer closed first (the timer keeps a Node process alive). */
  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#state !== "closed") fn();
    }, ms);
    this.#timers.add(timer);
  }

  // ---- settling -----------------------------------------------------------------------------------

  #succeed(record: PendingRecord, ack: ProduceAck): void {
    if (!this.#settle(record)) return;
    // Stored: later batches may follow it, and what came before it no longer matters.
    record.acknowledged = true;
    record.previous = undefined;
    this.#stats.acknowledged++;
    record.resolve(ack);
  }

  #fail(record: PendingRecord, err: unknown): void {
    if (!this.#settle(record)) return;
    this.#stats.failed++;
    record.reject(err);
  }

  #settle(record: PendingRecord): boolean {
    if (record.state === "settled") return false;
    record.state = "settled";
    record.cleanup?.();
    this.#unsettled.delete(record);
    if (this.#unsettled.size < this.#settings.maxPendingMessages && this.#roomWaiters.length > 0) {
      const waiters = this.#roomWaiters;
      this.#roomWaiters = [];
      for (const wake of waiters) wake();
    }
    return true;
  }

  /** An aborted send: dropped from its queue when not sent yet; its promise rejects either way. */
  #withdraw(record: PendingRecord, err: unknown): void {
    if (record.state === "unassigned") {
      record.topic.unassigned = record.topic.unassigned.filter((r) => r !== record);
    }
    // Queued records are skipped where they are (cheaper than searching the queue now).
    this.#fail(record, err);
  }

  /** Fails queued records past their delivery deadline (in-flight ones are checked when they return). */
  #sweep(): void {
    const now = Date.now();
    const expire = (record: PendingRecord) =>
      this.#fail(
        record,
        new DeliveryTimeoutError(this.#settings.deliveryTimeoutMs, record.attempts, record.lastError),
      );
    for (const topic of this.#topics.values()) {
      topic.unassigned = topic.unassigned.filter((r) => {
        if (r.state === "settled") return false;
        if (now < r.deadline) return true;
        expire(r);
        return false;
      });
      for (const r of this.#accumulator.expired(topic.partitions ?? [], now)) expire(r);
    }
    if (this.#unsettled.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #startSweeper(): void {
    if (this.#sweeper !== undefined) return;
    const period = Math.max(10, Math.min(1_000, Math.floor(this.#settings.deliveryTimeoutMs / 4)));
    this.#sweeper = setInterval(() => this.#sweep(), period);
    unrefTimer(this.#sweeper);
  }

  #shutdown(err: unknown): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    for (const record of [...this.#unsettled]) this.#fail(record, err);
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    for (const wake of this.#roomWaiters.splice(0)) wake();
    if (this.#options.ownsTransport) this.#options.transport.close();
  }
}

/** 128 random bits as hex; getRandomValues works in every browser context (randomUUID needs HTTPS). */
function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The wait before asking the sentinels for a topic's metadata again: exponential backoff with full
 * jitter (many producers failing together, e.g. a burst of topic creations refused as overload, spread
 * out instead of coming back in step), never less than the sentinel's retry hint.
 */
function metadataRetryDelay(failures: number, error: unknown): number {
  const floorMs = retryHintMs(error);
  return backoffDelay(failures, 100, 5_000, {
    jitter: "full",
    ...(floorMs !== undefined ? { floorMs } : {}),
  });
}
