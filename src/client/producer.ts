import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError, UnavailableError, type GouletteError } from "../errors.js";
import {
  Acks,
  MessageRequestSchema,
  ProduceError,
  ProduceRecordSchema,
  type MessageResponse,
  type ProduceRecord,
} from "../gen/goulette/v1/broker_pb.js";
import { backoffDelay, retryHintMs, unrefTimer } from "./backoff.js";
import {
  AbortedError,
  BrokerUnreachableError,
  ClientClosedError,
  DeliveryTimeoutError,
  MessageRejectedError,
  isConnectionFailure,
  toClientError,
} from "./errors.js";
import { emitter, sentinelList, type ClientEvent, type CommonClientOptions } from "./events.js";
import { toBytes, type ProduceAck, type ProducerMessage } from "./messages.js";
import { partitionForKey } from "./partitioner.js";
import { openProduceChannel, type ProduceChannel } from "./produce-channel.js";
import { SentinelPool } from "./sentinel-pool.js";
import { TopicMetadata, type PartitionLocation, type TopicShape } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

export interface ProducerOptions extends CommonClientOptions {
  /** How to reach sentinels and brokers (the Node and web entry points supply one). */
  transport: ClientTransport;
  /** Close `transport` when the producer closes (default false: the caller owns it). */
  ownsTransport?: boolean;
  /** Topic of messages that name none. */
  topic?: string;
  /**
   * The shape of a topic this producer creates by producing to it (a topic is created by the first
   * GetBrokers that names it). Ignored for existing topics.
   */
  createTopic?: TopicShape;
  /** "all" (default): acknowledged once every in-sync replica has it; "leader": once the leader has. */
  acks?: "all" | "leader";
  /** How long a partial batch waits for more messages before it is sent (ms, default 5). */
  lingerMs?: number;
  /** Messages per request at most (default 500). */
  maxBatchMessages?: number;
  /** Payload bytes per request at most (default 1 MiB; a larger single message goes alone). */
  maxBatchBytes?: number;
  /** The sliding window: messages sent and not yet acknowledged, over all partitions (default 4096). */
  maxInFlightMessages?: number;
  /**
   * The window of one partition (default 1000). Keep it at or below the brokers' idempotency window
   * (1024 message ids per producer and partition), so that every retry is recognised as one.
   */
  maxInFlightPerPartition?: number;
  /** waitForRoom() waits while this many messages are unacknowledged (default 20000). */
  maxPendingMessages?: number;
  /** A message not acknowledged this long after send() fails with DeliveryTimeoutError (ms, default 120000). */
  deliveryTimeoutMs?: number;
  /** A request without a response this long counts as a broker failure (ms, default 30000). */
  requestTimeoutMs?: number;
  /** First retry delay (ms, default 50); doubles per consecutive failure. */
  retryBackoffMs?: number;
  /** Longest retry delay (ms, default 2000). */
  maxRetryBackoffMs?: number;
  /** The idempotency id of this producer (default: random). Reuse one only for the same message stream. */
  producerId?: string;
}

/** Counters of a producer. */
export interface ProducerStats {
  /** Messages accepted by send() and not settled yet. */
  pending: number;
  /** Messages on the wire, waiting for their acks. */
  inFlight: number;
  acknowledged: number;
  /** Messages that failed for good (rejected, timed out, aborted, closed). */
  failed: number;
  /** Message sends repeated after a retryable error. */
  retried: number;
  /** Requests sent (batches, first attempts and retries). */
  requests: number;
  /** GetBrokers requests that reported unreachable brokers. */
  unreachableReports: number;
  /** Broker ids reported unreachable, in order (repeats included). */
  unreachableBrokers: string[];
  /** Moves from a failed sentinel to another one. */
  sentinelFailovers: number;
}

type RecordState = "unassigned" | "queued" | "inflight" | "failed" | "settled";

interface PendingRecord {
  topic: TopicState;
  partition: number;
  messageId: bigint;
  key: Uint8Array;
  wire: ProduceRecord;
  bytes: number;
  enqueuedAt: number;
  deadline: number;
  attempts: number;
  lastError: unknown;
  state: RecordState;
  resolve: (ack: ProduceAck) => void;
  reject: (err: unknown) => void;
  promise: Promise<ProduceAck>;
  cleanup: (() => void) | undefined;
}

interface PartitionQueue {
  topic: TopicState;
  partition: number;
  nextMessageId: bigint;
  /** Waiting to be sent, in message id order (retries go back to the front). */
  queue: PendingRecord[];
  queuedBytes: number;
  inflightBatches: number;
  inflightRecords: number;
  /** Records of failed requests, sent again once nothing of the partition is in flight. */
  failed: PendingRecord[];
  recovering: boolean;
  /** Consecutive failed attempts (backoff). */
  failures: number;
  retryAt: number;
  /** A GetBrokers for this partition's topic must answer before sending again. */
  waitingForMetadata: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  timerAt: number;
}

interface TopicState {
  name: string;
  metadata: TopicMetadata;
  partitions: PartitionQueue[] | undefined;
  /** Records sent before the first assignment was known (partition not chosen yet). */
  unassigned: PendingRecord[];
  roundRobin: number;
  loading: boolean;
  refreshFailures: number;
}

const DEFAULTS = {
  lingerMs: 5,
  maxBatchMessages: 500,
  maxBatchBytes: 1024 * 1024,
  maxInFlightMessages: 4096,
  maxInFlightPerPartition: 1000,
  maxPendingMessages: 20_000,
  deliveryTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  retryBackoffMs: 50,
  maxRetryBackoffMs: 2_000,
  sentinelTimeoutMs: 5_000,
};

/**
 * Produces messages to any topic of the cluster. Finds partition leaders with GetBrokers (any sentinel
 * of the list), batches messages per partition (lingerMs, maxBatchMessages), keeps a sliding window of
 * messages in flight, and resolves each send() with its ack.
 *
 * Idempotence and order: every message gets (producer id, increasing message id per partition) once,
 * at send(); a retry reuses them, so a broker that already stored it acknowledges the original offset
 * instead of writing it twice. After a failure the partition's in-flight requests are all allowed to
 * settle first, then the failed records are sent again in message id order, before anything newer: the
 * log keeps the send order. A broker that cannot be reached is reported to the sentinels
 * (GetBrokers with unreachable_brokers), and the partition continues on the assignment they return.
 */
export class Producer {
  readonly producerId: string;
  readonly #options: ProducerOptions;
  readonly #settings: typeof DEFAULTS;
  readonly #acks: Acks;
  readonly #emit: (event: ClientEvent) => void;
  readonly #sentinels: SentinelPool;
  readonly #headers: Record<string, string>;
  readonly #topics = new Map<string, TopicState>();
  readonly #channels = new Map<string, ProduceChannel>();
  readonly #unsettled = new Set<PendingRecord>();
  /** Partitions that stopped sending because the global window was full. */
  readonly #blocked = new Set<PartitionQueue>();
  #inflight = 0;
  #flushing = 0;
  #state: "open" | "closing" | "closed" = "open";
  #closing: Promise<void> | undefined;
  #roomWaiters: Array<() => void> = [];
  #sweeper: ReturnType<typeof setInterval> | undefined;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
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
      inFlight: this.#inflight,
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
      const queue = this.#assign(topic, record);
      if (queue) this.#drive(queue);
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
      for (const topic of this.#topics.values()) for (const q of topic.partitions ?? []) this.#drive(q);
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
          shape: this.#options.createTopic,
          emit: this.#emit,
        }),
        partitions: undefined,
        unassigned: [],
        roundRobin: 0,
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
        topic.partitions = Array.from({ length: count }, (_, partition) => newQueue(topic, partition));
        const waiting = topic.unassigned;
        topic.unassigned = [];
        for (const record of waiting) if (record.state !== "settled") this.#assign(topic, record);
        for (const queue of topic.partitions) this.#drive(queue);
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

  /** Chooses the record's partition and message id; undefined when the record failed instead. */
  #assign(topic: TopicState, record: PendingRecord): PartitionQueue | undefined {
    const partitions = topic.partitions as PartitionQueue[];
    let partition = record.partition;
    if (partition >= partitions.length) {
      this.#fail(
        record,
        new InvalidArgumentError(
          `topic ${topic.name} has ${partitions.length} partitions; partition ${partition} does not exist`,
        ),
      );
      return undefined;
    }
    if (partition < 0) {
      partition =
        record.key.length > 0
          ? partitionForKey(record.key, partitions.length)
          : topic.roundRobin++ % partitions.length;
    }
    const queue = partitions[partition] as PartitionQueue;
    record.partition = partition;
    record.messageId = queue.nextMessageId++;
    record.wire.messageId = record.messageId;
    record.state = "queued";
    queue.queue.push(record);
    queue.queuedBytes += record.bytes;
    return queue;
  }

  // ---- sending ------------------------------------------------------------------------------------

  /** Sends what the partition may send now; arranges to be called again when that changes. */
  #drive(q: PartitionQueue): void {
    if (this.#state === "closed") return;
    if (q.recovering) {
      if (q.inflightBatches > 0) return; // resumed when the last one settles
      const retry = q.failed.filter((r) => r.state !== "settled");
      q.failed = [];
      q.recovering = false;
      retry.sort((a, b) => (a.messageId < b.messageId ? -1 : 1));
      for (const r of retry) {
        r.state = "queued";
        q.queuedBytes += r.bytes;
      }
      q.queue = retry.concat(q.queue);
      q.retryAt =
        Date.now() +
        backoffDelay(q.failures, this.#settings.retryBackoffMs, this.#settings.maxRetryBackoffMs);
    }
    this.#dropSettledHead(q);
    if (q.queue.length === 0 || q.waitingForMetadata) return;
    const now = Date.now();
    if (now < q.retryAt) {
      this.#wakeAt(q, q.retryAt);
      return;
    }
    const location = q.topic.metadata.current?.partitions[q.partition];
    if (!location || location.address === "") {
      // No leader right now (every replica down?): ask again, with backoff between the answers.
      q.failures++;
      q.retryAt =
        now + backoffDelay(q.failures, this.#settings.retryBackoffMs, this.#settings.maxRetryBackoffMs);
      this.#refresh(q.topic, [], q);
      return;
    }
    const s = this.#settings;
    while (q.queue.length > 0) {
      const globalRoom = s.maxInFlightMessages - this.#inflight;
      if (globalRoom <= 0) {
        this.#blocked.add(q);
        return;
      }
      const partitionRoom = s.maxInFlightPerPartition - q.inflightRecords;
      if (partitionRoom <= 0) return; // resumed by this partition's next ack
      const head = q.queue[0] as PendingRecord;
      const full = q.queue.length >= s.maxBatchMessages || q.queuedBytes >= s.maxBatchBytes;
      if (!full && this.#flushing === 0 && this.#state === "open" && head.attempts === 0) {
        const due = head.enqueuedAt + s.lingerMs;
        if (now < due) {
          this.#wakeAt(q, due);
          return;
        }
      }
      const batch = this.#take(q, Math.min(s.maxBatchMessages, globalRoom, partitionRoom));
      if (batch.length > 0) this.#sendBatch(q, batch, location);
      this.#dropSettledHead(q);
    }
  }

  #take(q: PartitionQueue, max: number): PendingRecord[] {
    const batch: PendingRecord[] = [];
    let bytes = 0;
    let removedBytes = 0;
    let i = 0;
    for (; i < q.queue.length && batch.length < max; i++) {
      const record = q.queue[i] as PendingRecord;
      if (record.state !== "settled") {
        if (batch.length > 0 && bytes + record.bytes > this.#settings.maxBatchBytes) break;
        batch.push(record);
        bytes += record.bytes;
      }
      removedBytes += record.bytes;
    }
    q.queue.splice(0, i);
    q.queuedBytes = q.queue.length === 0 ? 0 : q.queuedBytes - removedBytes;
    return batch;
  }

  #dropSettledHead(q: PartitionQueue): void {
    let i = 0;
    let removedBytes = 0;
    while (i < q.queue.length && (q.queue[i] as PendingRecord).state === "settled") {
      removedBytes += (q.queue[i] as PendingRecord).bytes;
      i++;
    }
    if (i === 0) return;
    q.queue.splice(0, i);
    q.queuedBytes = q.queue.length === 0 ? 0 : q.queuedBytes - removedBytes;
  }

  #sendBatch(q: PartitionQueue, batch: PendingRecord[], location: PartitionLocation): void {
    const request = create(MessageRequestSchema, {
      topic: q.topic.name,
      partition: q.partition,
      producerId: this.producerId,
      acks: this.#acks,
      records: batch.map((r) => r.wire),
    });
    for (const r of batch) {
      r.state = "inflight";
      r.attempts++;
      if (r.attempts > 1) this.#stats.retried++;
    }
    q.inflightBatches++;
    q.inflightRecords += batch.length;
    this.#inflight += batch.length;
    this.#stats.requests++;
    const channel = this.#channel(location.address);
    channel.send(request).then(
      (res) => this.#onResponse(q, batch, res),
      (err: unknown) => this.#onFailure(q, batch, location, channel, err),
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

  #release(q: PartitionQueue, count: number): void {
    q.inflightBatches--;
    q.inflightRecords -= count;
    this.#inflight -= count;
  }

  #onResponse(q: PartitionQueue, batch: PendingRecord[], res: MessageResponse): void {
    this.#release(q, batch.length);
    const retry: PendingRecord[] = [];
    let refresh = false;
    let reason = "";
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i] as PendingRecord;
      const ack = res.acks[i];
      if (record.state === "settled") continue;
      if (!ack || ack.messageId !== record.messageId) {
        record.lastError = new UnavailableError("the broker's response did not carry this message's ack");
        retry.push(record);
        reason = "incomplete response";
        continue;
      }
      switch (ack.error) {
        case ProduceError.NONE:
          this.#succeed(record, {
            topic: q.topic.name,
            partition: q.partition,
            offset: Number(ack.offset),
            messageId: Number(record.messageId),
            duplicate: ack.duplicate,
          });
          break;
        case ProduceError.NOT_LEADER:
        case ProduceError.UNKNOWN_PARTITION:
        case ProduceError.NOT_ENOUGH_REPLICAS:
        case ProduceError.STORAGE:
          // Leadership moved (or not taken yet): retry once the sentinels say where it is now.
          if (ack.error === ProduceError.NOT_LEADER || ack.error === ProduceError.UNKNOWN_PARTITION) {
            refresh = true;
          }
          record.lastError = new UnavailableError(ack.errorMessage || ProduceError[ack.error]);
          retry.push(record);
          reason = ProduceError[ack.error] ?? String(ack.error);
          break;
        case ProduceError.MESSAGE_TOO_LARGE:
          this.#fail(record, new MessageRejectedError("message-too-large", ack.errorMessage));
          break;
        case ProduceError.INVALID:
          this.#fail(record, new MessageRejectedError("invalid", ack.errorMessage));
          break;
        default:
          this.#fail(
            record,
            new MessageRejectedError("unknown", ack.errorMessage || `produce error ${ack.error}`),
          );
      }
    }
    if (retry.length > 0) this.#retryLater(q, retry, reason);
    else if (!q.recovering) q.failures = 0;
    if (refresh) this.#refresh(q.topic, [], q);
    this.#drive(q);
    this.#driveBlocked();
  }

  #onFailure(
    q: PartitionQueue,
    batch: PendingRecord[],
    location: PartitionLocation,
    channel: ProduceChannel,
    err: unknown,
  ): void {
    this.#release(q, batch.length);
    if (this.#state === "closed") return;
    if (isConnectionFailure(err)) {
      const error = new BrokerUnreachableError(location.leaderId, location.address, { cause: err });
      // One report per broken connection, however many requests were on it.
      if (this.#channels.get(location.address) === channel) {
        this.#channels.delete(location.address);
        channel.close();
        this.#options.transport.forget(location.address);
        this.#stats.unreachableBrokers.push(location.leaderId);
        this.#emit({
          type: "broker-unreachable",
          topic: q.topic.name,
          brokerId: location.leaderId,
          address: location.address,
          error,
        });
      }
      for (const r of batch) r.lastError = error;
      this.#retryLater(q, batch, "broker unreachable");
      this.#refresh(q.topic, [location.leaderId], q);
    } else {
      const error = toClientError(err);
      if (error.retryable) {
        for (const r of batch) r.lastError = error;
        this.#retryLater(q, batch, error.message);
      } else {
        for (const r of batch) this.#fail(r, error);
      }
    }
    this.#drive(q);
    this.#driveBlocked();
  }

  #retryLater(q: PartitionQueue, records: PendingRecord[], reason: string): void {
    const now = Date.now();
    let count = 0;
    for (const r of records) {
      if (r.state === "settled") continue;
      if (now >= r.deadline) {
        this.#fail(r, new DeliveryTimeoutError(this.#settings.deliveryTimeoutMs, r.attempts, r.lastError));
        continue;
      }
      r.state = "failed";
      q.failed.push(r);
      count++;
    }
    if (count === 0) return;
    if (!q.recovering) q.failures++;
    q.recovering = true;
    this.#emit({ type: "retry", topic: q.topic.name, partition: q.partition, records: count, reason });
  }

  /** GetBrokers again (reporting `unreachable`); `q` waits for the answer before sending again. */
  #refresh(topic: TopicState, unreachable: string[], q?: PartitionQueue): void {
    if (q) q.waitingForMetadata = true;
    topic.metadata.refresh(unreachable).then(
      () => {
        topic.refreshFailures = 0;
        for (const queue of topic.partitions ?? []) {
          queue.waitingForMetadata = false;
          this.#drive(queue);
        }
      },
      (err: unknown) => {
        if (this.#state === "closed") return;
        const error = toClientError(err);
        this.#emit({ type: "error", topic: topic.name, what: "GetBrokers", error });
        topic.refreshFailures++;
        this.#later(metadataRetryDelay(topic.refreshFailures, error), () =>
          this.#refresh(topic, unreachable, q),
        );
      },
    );
  }

  #driveBlocked(): void {
    if (this.#blocked.size === 0) return;
    const blocked = [...this.#blocked];
    this.#blocked.clear();
    for (const q of blocked) this.#drive(q);
  }

  #wakeAt(q: PartitionQueue, at: number): void {
    if (q.timer !== undefined && q.timerAt <= at) return;
    if (q.timer !== undefined) clearTimeout(q.timer);
    q.timerAt = at;
    q.timer = setTimeout(
      () => {
        q.timer = undefined;
        this.#drive(q);
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
      for (const q of topic.partitions ?? []) {
        // Queues are in message id order, which is send() order: the oldest are at the head.
        for (const r of q.queue) {
          if (r.state === "settled") continue;
          if (now < r.deadline) break;
          expire(r);
        }
        this.#dropSettledHead(q);
      }
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
    for (const topic of this.#topics.values()) {
      for (const q of topic.partitions ?? []) if (q.timer !== undefined) clearTimeout(q.timer);
    }
    for (const record of [...this.#unsettled]) this.#fail(record, err);
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    for (const wake of this.#roomWaiters.splice(0)) wake();
    if (this.#options.ownsTransport) this.#options.transport.close();
  }
}

function newQueue(topic: TopicState, partition: number): PartitionQueue {
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
    timer: undefined,
    timerAt: 0,
  };
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
