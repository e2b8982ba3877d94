import { createClient } from "@connectrpc/connect";
import { InvalidArgumentError, errorMessage } from "../errors.js";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import { unrefTimer } from "./backoff.js";
import { AbortedError, ClientClosedError, isConnectionFailure, toClientError } from "./errors.js";
import { emitter, sentinelList, type ClientEvent, type CommonClientOptions } from "./events.js";
import { MessageBuffer } from "./message-buffer.js";
import type { ConsumedMessage } from "./messages.js";
import { PartitionFetcher } from "./partition-fetcher.js";
import { SentinelPool } from "./sentinel-pool.js";
import { TopicMetadata, type TopicShape } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

export interface ConsumerOptions extends CommonClientOptions {
  /** How to reach sentinels and brokers (the Node and web entry points supply one). */
  transport: ClientTransport;
  /** Close `transport` when the consumer closes (default false: the caller owns it). */
  ownsTransport?: boolean;
  topic: string;
  /** The consumer group: its committed offsets say where consumption resumes. */
  group: string;
  /**
   * Where a partition starts when the group has no committed offset for it: "earliest" (the oldest
   * message kept) or "latest" (default: only messages produced from now on).
   */
  from?: "earliest" | "latest";
  /**
   * The partitions this consumer reads (default: all). There is no group coordinator: consumers of one
   * group that should share a topic must be given disjoint partitions (or use `member`).
   */
  partitions?: readonly number[];
  /** The shape of the topic if this consumer's GetBrokers creates it (ignored for existing topics). */
  createTopic?: TopicShape;
  /** Static membership: this consumer reads the partitions p with p % count === index. */
  member?: { index: number; count: number };
  /** Commit processed offsets every autoCommitIntervalMs and at close (default true). */
  autoCommit?: boolean;
  /** Default 1000 ms. */
  autoCommitIntervalMs?: number;
  /** Messages received and not yet handed to the application, at most (back-pressure, default 1000). */
  maxBufferedMessages?: number;
  /** Messages per pull wait cycle (default 500). */
  pullBatchSize?: number;
  /** First retry delay after a failed pull (ms, default 100). */
  retryBackoffMs?: number;
  /** Longest retry delay (ms, default 2000). */
  maxRetryBackoffMs?: number;
}

export interface ConsumerStats {
  /** Messages handed to the application. */
  delivered: number;
  /** Messages waiting in the buffer. */
  buffered: number;
  commits: number;
  /** Partition → next offset to receive. */
  positions: Record<number, number>;
  /** Partition → last committed offset (the next offset to consume). */
  committed: Record<number, number>;
  unreachableReports: number;
  unreachableBrokers: string[];
  sentinelFailovers: number;
}

/**
 * Consumes one topic for a consumer group: one PullMessage stream per partition, from the partition
 * leader, into a bounded buffer the application reads with `for await`, receive() or run().
 *
 * Delivery: at least once across restarts (a restarted consumer resumes at the committed offsets), and
 * exactly once within one consumer (a stream that breaks resumes at the next offset not yet received),
 * in offset order per partition. A message counts as processed once the application asks for the next
 * one (or run()'s handler resolves, or commit(message) names it); auto commit commits processed offsets.
 */
export class Consumer implements AsyncIterable<ConsumedMessage> {
  readonly topic: string;
  readonly group: string;
  readonly #options: ConsumerOptions;
  readonly #emit: (event: ClientEvent) => void;
  readonly #sentinels: SentinelPool;
  readonly #metadata: TopicMetadata;
  readonly #headers: Record<string, string>;
  readonly #buffer: MessageBuffer<ConsumedMessage>;
  readonly #abort = new AbortController();
  readonly #fetchers = new Map<number, PartitionFetcher>();
  /** Partition → offset after the last message handed out. */
  readonly #delivered = new Map<number, number>();
  /** Partition → offset after the last message processed. */
  readonly #processed = new Map<number, number>();
  readonly #committed = new Map<number, number>();
  /** Messages handed out by the last receive: processed once the application asks for more. */
  #outstanding: ConsumedMessage[] = [];
  /** start() has finished. */
  #ready = false;
  #started: Promise<void> | undefined;
  #running: Promise<unknown> | undefined;
  #commitTimer: ReturnType<typeof setInterval> | undefined;
  #committing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #closed = false;
  #deliveredCount = 0;
  #commits = 0;
  #unreachable: string[] = [];
  readonly #onAbort: () => void;

  constructor(options: ConsumerOptions) {
    if (!options.topic) throw new InvalidArgumentError("a consumer needs a topic");
    if (!options.group) throw new InvalidArgumentError("a consumer needs a group");
    if (options.member) {
      const { index, count } = options.member;
      if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
        throw new InvalidArgumentError(`member must satisfy 0 ≤ index < count, got ${index} of ${count}`);
      }
    }
    this.topic = options.topic;
    this.group = options.group;
    this.#options = options;
    this.#emit = emitter((event) => {
      if (event.type === "broker-unreachable") this.#unreachable.push(event.brokerId);
      options.onEvent?.(event);
    });
    this.#headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
    this.#sentinels = new SentinelPool({
      urls: sentinelList(options.sentinels),
      transport: options.transport,
      headers: this.#headers,
      timeoutMs: options.sentinelTimeoutMs ?? 5_000,
      emit: this.#emit,
    });
    this.#metadata = new TopicMetadata({
      topic: options.topic,
      sentinels: this.#sentinels,
      shape: options.createTopic,
      emit: this.#emit,
    });
    this.#buffer = new MessageBuffer(Math.max(1, options.maxBufferedMessages ?? 1000));
    this.#onAbort = () =>
      void this.#shutdown(new AbortedError(options.signal?.reason, "the consumer"), false);
    if (options.signal?.aborted) this.#closed = true;
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Finds the partitions and starts pulling (done by the first receive() anyway). */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClientClosedError("the consumer"));
    this.#started ??= this.#start().catch((err: unknown) => {
      this.#started = undefined;
      throw err;
    });
    return this.#started;
  }

  async #start(): Promise<void> {
    const assignment = await this.#metadata.get(this.#abort.signal);
    if (this.#closed) throw new ClientClosedError("the consumer");
    const all = assignment.partitions.map((p) => p.partition);
    let chosen = this.#options.partitions ? [...this.#options.partitions] : all;
    const member = this.#options.member;
    if (member) chosen = chosen.filter((p) => p % member.count === member.index);
    for (const p of chosen) {
      if (!all.includes(p)) {
        throw new InvalidArgumentError(`topic ${this.topic} has ${all.length} partitions; there is no ${p}`);
      }
    }
    for (const partition of chosen) {
      this.#fetchers.set(
        partition,
        new PartitionFetcher({
          topic: this.topic,
          partition,
          group: this.group,
          from: this.#options.from ?? "latest",
          metadata: this.#metadata,
          transport: this.#options.transport,
          headers: this.#headers,
          buffer: this.#buffer,
          batchSize: this.#options.pullBatchSize ?? 500,
          retryBackoffMs: this.#options.retryBackoffMs ?? 100,
          maxRetryBackoffMs: this.#options.maxRetryBackoffMs ?? 2_000,
          emit: this.#emit,
          // Committed like a processed position, so the group remembers where it started.
          onStart: (offset) => advance(this.#processed, partition, offset),
          onFatal: (err) => this.#buffer.fail(err),
        }),
      );
    }
    this.#running = Promise.all(
      [...this.#fetchers.values()].map((f) =>
        f.run(this.#abort.signal).catch((err: unknown) => this.#buffer.fail(toClientError(err))),
      ),
    );
    this.#ready = true;
    if (this.#options.autoCommit ?? true) {
      this.#commitTimer = setInterval(
        () => void this.#commitPositions(this.#processed).catch(() => undefined),
        this.#options.autoCommitIntervalMs ?? 1_000,
      );
      unrefTimer(this.#commitTimer);
    }
  }

  /** The partitions this consumer reads (known after start()). */
  get partitions(): number[] {
    return [...this.#fetchers.keys()];
  }

  /**
   * The next message, or undefined when none arrived within `timeoutMs` (when given) or the consumer
   * closed. Marks the previously received messages processed.
   */
  async receive(
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<ConsumedMessage | undefined> {
    return (await this.receiveBatch({ ...options, max: 1 }))[0];
  }

  /**
   * Up to `max` messages (default 500) as soon as at least one is there: what is buffered, without
   * waiting for more. [] when none arrived within `timeoutMs` or the consumer closed. Marks the
   * previously received messages processed. Cheaper per message than receive() for busy consumers.
   */
  async receiveBatch(
    options: { max?: number; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<ConsumedMessage[]> {
    this.#markProcessed();
    if (this.#closed) return [];
    const max = Math.max(1, options.max ?? 500);
    let messages: ConsumedMessage[];
    try {
      if (!this.#ready) await this.start();
      messages = this.#buffer.takeAvailable(max);
      if (messages.length === 0) {
        const signal = options.signal
          ? AbortSignal.any([options.signal, this.#abort.signal])
          : this.#abort.signal;
        await this.#buffer.whenAvailable(signal, options.timeoutMs);
        messages = this.#buffer.takeAvailable(max);
      }
    } catch (err) {
      // close() while waiting ends the wait quietly; the caller's own abort is an error.
      if (this.#closed && !options.signal?.aborted) return [];
      throw err;
    }
    for (const message of messages) this.#delivered.set(message.partition, message.offset + 1);
    this.#deliveredCount += messages.length;
    this.#outstanding = messages;
    return messages;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    for (;;) {
      const message = await this.receive();
      if (message === undefined) return;
      yield message;
    }
  }

  /**
   * Calls `handler` for each message, one at a time, until `signal` aborts or the consumer closes; a
   * message is processed once its handler resolves. A handler that throws stops run() with its error
   * (that message is not marked processed).
   */
  async run(
    handler: (message: ConsumedMessage) => Promise<void> | void,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    for (;;) {
      let message: ConsumedMessage | undefined;
      try {
        message = await this.receive(options);
      } catch (err) {
        if (err instanceof AbortedError && options.signal?.aborted) return;
        throw err;
      }
      if (message === undefined) return;
      try {
        await handler(message);
      } catch (err) {
        this.#outstanding = [];
        throw err;
      }
    }
  }

  /**
   * Commits offsets now: with a message, everything of its partition up to and including it; without,
   * every message handed out so far. Resolves once the partition leaders (and their in-sync replicas)
   * stored them.
   */
  async commit(message?: ConsumedMessage): Promise<void> {
    const target = new Map<number, number>();
    if (message) {
      if (message.topic !== this.topic) {
        throw new InvalidArgumentError(`message is from topic ${message.topic}, not ${this.topic}`);
      }
      target.set(message.partition, message.offset + 1);
      advance(this.#processed, message.partition, message.offset + 1);
    } else {
      for (const [p, offset] of this.#delivered) {
        target.set(p, offset);
        advance(this.#processed, p, offset);
      }
    }
    await this.#commitPositions(target, true);
  }

  stats(): ConsumerStats {
    const positions: Record<number, number> = {};
    for (const [p, f] of this.#fetchers) if (f.position !== undefined) positions[p] = f.position;
    return {
      delivered: this.#deliveredCount,
      buffered: this.#buffer.size,
      commits: this.#commits,
      positions,
      committed: Object.fromEntries(this.#committed),
      unreachableReports: this.#metadata.unreachableReports,
      unreachableBrokers: [...this.#unreachable],
      sentinelFailovers: this.#sentinels.failovers,
    };
  }

  /**
   * Stops pulling, commits processed offsets (auto commit), and releases the connections. Buffered
   * messages not handed out are dropped; they are delivered again to the group later.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown(new ClientClosedError("the consumer"), this.#options.autoCommit ?? true);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(reason: Error, commit: boolean): Promise<void> {
    if (this.#closed && this.#running === undefined) return;
    this.#closed = true;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    if (this.#commitTimer !== undefined) clearInterval(this.#commitTimer);
    this.#abort.abort(reason);
    this.#buffer.close();
    await this.#running?.catch(() => undefined);
    this.#running = undefined;
    if (commit) {
      await this.#committing.catch(() => undefined);
      await this.#commitPositions(this.#processed, false, true).catch(() => undefined);
    }
    if (this.#options.ownsTransport) this.#options.transport.close();
  }

  #markProcessed(): void {
    const outstanding = this.#outstanding;
    if (outstanding.length === 0) return;
    this.#outstanding = [];
    for (const message of outstanding) advance(this.#processed, message.partition, message.offset + 1);
  }

  /** Commits `positions` that moved past what is committed, one call per partition, to its leader. */
  #commitPositions(positions: Map<number, number>, throwOnError = false, closing = false): Promise<void> {
    const run = async () => {
      if (this.#closed && !closing) return;
      const assignment = this.#metadata.current;
      const errors: unknown[] = [];
      const signal = closing ? AbortSignal.timeout(5_000) : this.#abort.signal;
      await Promise.all(
        [...positions].map(async ([partition, offset]) => {
          if ((this.#committed.get(partition) ?? -1) >= offset) return;
          const location = assignment?.partitions[partition];
          if (!location || location.address === "") {
            errors.push(new Error(`partition ${partition} has no known leader`));
            return;
          }
          try {
            const client = createClient(BrokerService, this.#options.transport.broker(location.address));
            await client.commitOffset(
              { consumerGroup: this.group, topic: this.topic, partition, offset: BigInt(offset) },
              { signal, headers: this.#headers, timeoutMs: 10_000 },
            );
            advance(this.#committed, partition, offset);
            this.#commits++;
          } catch (err) {
            errors.push(err);
            const error = toClientError(err);
            this.#emit({ type: "error", topic: this.topic, what: `commit of partition ${partition}`, error });
            // The leader moved or died: learn the new one before the next attempt.
            const report = isConnectionFailure(err) ? [location.leaderId] : [];
            if (!closing) void this.#metadata.refresh(report).catch(() => undefined);
          }
        }),
      );
      if (throwOnError && errors.length > 0) {
        const first = errors[0];
        throw first instanceof Error && !(first instanceof AbortedError)
          ? toClientError(first)
          : new Error(`commit failed: ${errorMessage(first)}`);
      }
    };
    // One commit round at a time, in order, so a slow older round cannot overwrite a newer offset.
    const next = this.#committing.catch(() => undefined).then(run);
    this.#committing = next.catch(() => undefined);
    return next;
  }
}

function advance(map: Map<number, number>, partition: number, offset: number): void {
  if ((map.get(partition) ?? -1) < offset) map.set(partition, offset);
}
