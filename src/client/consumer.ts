import { bearerHeaders } from "../common/bearer.js";
import { FailedPreconditionError, InvalidArgumentError, type GouletteError } from "../errors.js";
import type { MemberAssignment } from "../gen/goulette/v1/group_pb.js";
import { diffAssignment } from "./assignment-diff.js";
import { callSignal } from "./call-signal.js";
import { unrefTimer } from "./backoff.js";
import {
  AbortedError,
  ClientClosedError,
  MemberReplacedError,
  PartitionNotOwnedError,
  toClientError,
} from "./errors.js";
import {
  DEFAULT_PULL_BATCH_SIZE,
  consumerMode,
  fetchStart,
  staticPartitions,
  validateOptions,
  validateTopics,
  type ConsumerGroupStats,
  type ConsumerOptions,
  type ConsumerStats,
  type Mode,
  type RunOptions,
  type StartFrom,
} from "./consumer-options.js";
import { emitter, sentinelList, type ClientEvent } from "./events.js";
import { GroupMembership } from "./group-membership.js";
import { runHandlers, type HandlerRunnerHost } from "./handler-runner.js";
import { MessageBuffer } from "./message-buffer.js";
import type { ConsumedMessage } from "./messages.js";
import { OffsetCommitter, type CommitTarget } from "./offset-committer.js";
import { PartitionFetcher, type StartAt } from "./partition-fetcher.js";
import { PartitionState, type FetchRun, type Fetched } from "./partition-state.js";
import { DefaultReplicaCount } from "./default-replicas.js";
import { SentinelPool } from "./sentinel-pool.js";
import { TopicMetadata } from "./topic-metadata.js";
import {
  comparePartitions,
  partitionKey,
  sortedPartitions,
  type AssignedPartition,
  type TopicPartition,
} from "./topic-partition.js";

export type {
  ConsumerGroupStats,
  ConsumerOptions,
  ConsumerStats,
  RunOptions,
  StartFrom,
} from "./consumer-options.js";

/*
 * The Consumer orchestrates parts that each do one job: consumer-options.ts (options, validation, and
 * the pure choices of mode, static partitions and fetch start), partition-fetcher.ts (one partition's
 * fetch loop), partition-state.ts (position and processed/committed bookkeeping per partition),
 * offset-committer.ts (commit rounds), group-membership.ts (join, heartbeats), assignment-diff.ts (what
 * an assignment starts and revokes), handler-runner.ts (run()'s handler pool) and message-buffer.ts. This file stays longer than ~400 lines
 * because its public API (receive, run, commit, pause/resume, seek, close) and the rebalance callbacks
 * share the one map of partitions read, whose ownership rules are easier to check in one place.
 */

/**
 * Consumes topics: one FetchMessages stream per partition read, from the partition leader, into a
 * bounded buffer the application reads with `for await`, receive(), receiveBatch() or run().
 *
 * With a group (the default when `group` is given), the consumer is a member of it: the sentinels share
 * the partitions among the live members, and hand them over cooperatively (a revoked partition is
 * committed and released, then its new owner starts from that commit). Without `group`, it reads
 * without committing.
 *
 * Delivery: at least once across restarts and rebalances (a new owner resumes at the committed offset),
 * and exactly once within one consumer's hold of a partition, in offset order per partition. A message
 * counts as processed once the application asks for the next one (or run()'s handler resolves, or
 * commit(message) names it); auto commit commits processed offsets.
 */
export class Consumer implements AsyncIterable<ConsumedMessage> {
  /** The (first) topic. */
  readonly topic: string;
  readonly topics: readonly string[];
  /** "" without a group. */
  readonly group: string;
  readonly #options: ConsumerOptions;
  readonly #mode: Mode;
  readonly #emit: (event: ClientEvent) => void;
  readonly #sentinels: SentinelPool;
  /** replica_count for the topics this client may create without a configured one. */
  readonly #defaultReplicas: DefaultReplicaCount;
  readonly #metadata = new Map<string, TopicMetadata>();
  readonly #headers: Record<string, string>;
  readonly #buffer: MessageBuffer<Fetched>;
  readonly #abort = new AbortController();
  readonly #committer: OffsetCommitter;
  readonly #membership: GroupMembership | undefined;
  /** Partitions read now (owned, in a group), by "topic/partition". */
  readonly #states = new Map<string, PartitionState>();
  readonly #runs = new Set<FetchRun>();
  /** "topic/partition" → the member epoch a partition leader fenced (a take-over at it would be again). */
  readonly #fenced = new Map<string, number>();
  /** Messages handed out by the last receive: processed once the application asks for more. */
  #outstanding: Fetched[] = [];
  #started: Promise<void> | undefined;
  #joined: Promise<void> | undefined;
  #commitTimer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #runActive = false;
  #coordinated = true;
  #replaced = false;
  #resumeWaiters: Array<() => void> = [];
  #deliveredCount = 0;
  #rebalances = 0;
  #lostPartitions = 0;
  #generation = 0;
  #unreachable: string[] = [];
  readonly #onAbort: () => void;

  constructor(options: ConsumerOptions) {
    this.topics = validateTopics(options);
    this.topic = this.topics[0] as string;
    this.group = options.group ?? "";
    this.#mode = consumerMode(options);
    validateOptions(options, this.#mode);
    this.#options = options;
    this.#emit = emitter((event) => {
      if (event.type === "broker-unreachable") this.#unreachable.push(event.brokerId);
      options.onEvent?.(event);
    });
    this.#headers = bearerHeaders(options.token);
    this.#sentinels = new SentinelPool({
      urls: sentinelList(options.sentinels),
      transport: options.transport,
      headers: this.#headers,
      timeoutMs: options.sentinelTimeoutMs ?? 5_000,
      listener: options.listener,
      emit: this.#emit,
    });
    this.#defaultReplicas = new DefaultReplicaCount(this.#sentinels);
    for (const topic of this.topics) {
      this.#metadata.set(
        topic,
        new TopicMetadata({
          topic,
          sentinels: this.#sentinels,
          defaultReplicas: this.#defaultReplicas,
          shape: options.createTopic,
          emit: this.#emit,
        }),
      );
    }
    this.#buffer = new MessageBuffer(Math.max(1, options.maxBufferedMessages ?? 1000));
    this.#committer = new OffsetCommitter({
      group: this.group,
      transport: options.transport,
      headers: this.#headers,
      metadata: (topic) => this.#metadata.get(topic),
      emit: this.#emit,
      onFenced: (target) => {
        if (target.state)
          this.#fence(target.state, "its commit was refused: the partition has a newer owner");
      },
    });
    if (this.#mode === "group") {
      this.#membership = new GroupMembership({
        group: this.group,
        topics: this.topics,
        instanceId: options.instanceId ?? "",
        sessionTimeoutMs: options.sessionTimeoutMs ?? 0,
        clientId: options.clientId ?? "",
        sentinels: this.#sentinels,
        emit: this.#emit,
        retryBackoffMs: options.retryBackoffMs ?? 100,
        maxRetryBackoffMs: options.maxRetryBackoffMs ?? 2_000,
        host: {
          owned: () => [...this.#states.values()],
          apply: (assignment) => this.#apply(assignment),
          membershipLost: (reason) => this.#lose([...this.#states.values()], reason),
          answered: () => this.#wakeResumeWaiters(),
          fatal: (error) => this.#fail(error),
          uncoordinated: (reason) => this.#uncoordinated(reason),
        },
      });
    }
    this.#onAbort = () => void this.#close(new AbortedError(options.signal?.reason, "the consumer"), false);
    if (options.signal?.aborted) this.#closed = true;
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /**
   * Finds the partitions and starts reading (done by the first receive() anyway). In a group, resolves
   * once the consumer joined and applied its first assignment; rejects when the group refused it.
   */
  async start(): Promise<void> {
    await this.#start();
    await this.#joined;
  }

  #start(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClientClosedError("the consumer"));
    this.#started ??= this.#begin().catch((err: unknown) => {
      this.#started = undefined;
      throw err;
    });
    return this.#started;
  }

  async #begin(): Promise<void> {
    // Every topic's assignment first (GetBrokers creates a new topic): the group's assignor and the
    // static partition checks need the partition counts.
    const counts = new Map<string, number>();
    for (const [topic, metadata] of this.#metadata) {
      const assignment = await metadata.get(this.#abort.signal);
      counts.set(topic, assignment.partitions.length);
    }
    if (this.#closed) throw new ClientClosedError("the consumer");
    if (this.#mode === "group") {
      const membership = this.#membership as GroupMembership;
      this.#joined = membership.joined();
      membership.start();
    } else {
      this.#startStatic(counts);
    }
    if (this.group !== "" && (this.#options.autoCommit ?? true)) {
      this.#commitTimer = setInterval(
        () => void this.#commitProcessed(false).catch(() => undefined),
        this.#options.autoCommitIntervalMs ?? 1_000,
      );
      unrefTimer(this.#commitTimer);
    }
  }

  /** Static and peek modes (and a group the sentinels do not coordinate): the chosen partitions of every topic. */
  #startStatic(counts: ReadonlyMap<string, number>): void {
    for (const p of staticPartitions(counts, this.#options)) {
      const state = new PartitionState({ ...p, epoch: 0 });
      this.#states.set(state.key, state);
      this.#startFetch(state, "initial");
    }
  }

  /** The partitions of `topic` (default: the first topic) read now. */
  get partitions(): number[] {
    return [...this.#states.values()]
      .filter((s) => s.topic === this.topic && !s.revoking)
      .map((s) => s.partition)
      .sort((a, b) => a - b);
  }

  /** The partitions this consumer reads now, with their member epochs (0 outside a group). */
  assignment(): AssignedPartition[] {
    return [...this.#states.values()]
      .filter((s) => !s.revoking)
      .map((s) => ({ topic: s.topic, partition: s.partition, epoch: s.epoch }))
      .sort(comparePartitions);
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
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    try {
      await this.#start();
      for (;;) {
        if (this.#closed) return [];
        const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
        if (this.#suspended()) {
          if (remaining === 0) return [];
          await this.#whenResumed(signal, remaining);
          continue;
        }
        const items = this.#take(max);
        if (items.length > 0) {
          this.#outstanding = items;
          return items.map((item) => this.#handOut(item));
        }
        if (remaining === 0 || this.#buffer.closed) return [];
        await this.#buffer.whenAvailable(signal, remaining);
        if (signal.aborted) throw new AbortedError(signal.reason);
      }
    } catch (err) {
      // close() while waiting ends the wait quietly; the caller's own abort is an error.
      if (this.#closed && !options.signal?.aborted) return [];
      throw err;
    }
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

  async *[Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    for (;;) {
      const message = await this.receive();
      if (message === undefined) return;
      yield message;
    }
  }

  /**
   * Calls `handler` for each message until `signal` aborts or the consumer closes; a message is
   * processed once its handler resolves. With `partitionsConcurrently: n`, up to n handlers run at once,
   * never two of one partition (each partition in offset order). A handler that throws stops run() with
   * its error once the running handlers settled (that message is not marked processed); messages taken
   * and not handed to a handler are read again by the next receive() or run().
   */
  async run(
    handler: (message: ConsumedMessage) => Promise<void> | void,
    options: RunOptions = {},
  ): Promise<void> {
    const limit = options.partitionsConcurrently ?? 1;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new InvalidArgumentError(`partitionsConcurrently must be a whole number ≥ 1, got ${limit}`);
    }
    if (this.#runActive) throw new FailedPreconditionError("run() is already running on this consumer");
    this.#markProcessed();
    this.#runActive = true;
    const stop = options.signal ? AbortSignal.any([options.signal, this.#abort.signal]) : this.#abort.signal;
    try {
      await runHandlers(this.#runnerHost, handler, limit, stop);
    } finally {
      this.#runActive = false;
    }
  }

  /** What run()'s loop (handler-runner.ts) sees of this consumer. */
  readonly #runnerHost: HandlerRunnerHost = {
    start: () => this.#start(),
    closed: () => this.#closed,
    suspended: () => this.#suspended(),
    take: (max) => this.#take(max),
    deliverable: (item) => this.#deliverable(item),
    handOut: (item) => this.#handOut(item),
    bufferCapacity: () => this.#buffer.capacity,
    whenAvailable: (signal) => this.#buffer.whenAvailable(signal),
    whenResumed: (signal) => this.#whenResumed(signal),
    refetch: (key) => {
      const state = this.#states.get(key);
      if (state) this.#restartFetch(state);
    },
  };

  /**
   * Commits offsets now: with a message, everything of its partition up to and including it; without,
   * every message handed out so far. Resolves once the partition leaders (and their in-sync replicas)
   * stored them. In a group, a partition that moved to another member rejects with
   * PartitionNotOwnedError (and is reported lost).
   */
  async commit(message?: ConsumedMessage): Promise<void> {
    if (this.group === "") {
      throw new FailedPreconditionError("this consumer has no group: it reads without committing");
    }
    if (message) {
      const state = this.#states.get(partitionKey(message));
      if (!this.topics.includes(message.topic)) {
        throw new InvalidArgumentError(
          `message is from topic ${message.topic}, not ${this.topics.join(", ")}`,
        );
      }
      // A partition being revoked is still this member's: onRevoked may commit it.
      if (this.#mode === "group" && this.#coordinated && !state) {
        throw new PartitionNotOwnedError(
          message.topic,
          message.partition,
          "is not assigned to this consumer",
        );
      }
      if (state) {
        state.markProcessed(message.offset + 1, state.seq);
        // Closing (onRevoked during close()): the closing commit stores it, with the others.
        if (this.#closed) return;
        const target: CommitTarget = { ...this.#target(state), offset: message.offset + 1 };
        await this.#committer.commit(() => [target], this.#round(true));
      } else {
        // A static consumer may commit for partitions it does not read (unfenced).
        const target = {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset + 1,
          epoch: 0,
        };
        await this.#committer.commit(() => [target], this.#round(true));
      }
      return;
    }
    for (const state of this.#states.values()) {
      if (state.delivered !== undefined) state.markProcessed(state.delivered, state.seq);
    }
    await this.#commitProcessed(true);
  }

  /** Stops reading these partitions: a paused partition is neither fetched nor handed out, and stays owned. */
  pause(partitions: readonly TopicPartition[]): void {
    for (const state of partitions.map((p) => this.#owned(p, "pause"))) {
      state.paused = true;
      this.#stopFetch(state);
    }
  }

  /** Reads paused partitions again, from the message after the last one handed out. */
  resume(partitions: readonly TopicPartition[]): void {
    for (const state of partitions.map((p) => this.#owned(p, "resume"))) {
      if (!state.paused) continue;
      state.paused = false;
      if (!this.#closed && state.run === undefined) this.#restartFetch(state);
    }
  }

  /** The paused partitions. */
  paused(): TopicPartition[] {
    return sortedPartitions([...this.#states.values()].filter((s) => s.paused && !s.revoking));
  }

  /**
   * Moves a partition's position: the next message handed out is at `to` (an offset, or the log's start
   * or end now). Messages handed out before no longer count; in a group the position counts as processed,
   * so the next commit stores it (also backwards: a replay).
   */
  seek(partition: TopicPartition, to: StartFrom): void {
    if (typeof to === "number" && (!Number.isSafeInteger(to) || to < 0)) {
      throw new InvalidArgumentError(`seek: offset must be a whole number ≥ 0, got ${to}`);
    }
    if (to !== "earliest" && to !== "latest" && typeof to !== "number") {
      throw new InvalidArgumentError(`seek: expected an offset, "earliest" or "latest", got ${String(to)}`);
    }
    const state = this.#owned(partition, "seek");
    this.#stopFetch(state);
    state.seekTo(typeof to === "number" ? to : undefined);
    const start: StartAt = typeof to === "number" ? { kind: "offset", offset: to } : { kind: to };
    if (state.paused) state.pendingStart = start;
    else if (!this.#closed) this.#startFetch(state, "seek", start);
  }

  stats(): ConsumerStats {
    const positions: Record<string, number> = {};
    const processed: Record<string, number> = {};
    const committed: Record<string, number> = {};
    for (const [key, state] of this.#states) {
      const position = state.run?.fetcher.position ?? state.position;
      if (position !== undefined) positions[key] = position;
      if (state.processed !== undefined) processed[key] = state.processed;
      if (state.committed !== undefined) committed[key] = state.committed.offset;
    }
    let unreachableReports = 0;
    for (const metadata of this.#metadata.values()) unreachableReports += metadata.unreachableReports;
    return {
      delivered: this.#deliveredCount,
      buffered: this.#buffer.size,
      commits: this.#committer.commits,
      positions,
      processed,
      committed,
      paused: this.paused().map(partitionKey),
      unreachableReports,
      unreachableBrokers: [...this.#unreachable],
      sentinelFailovers: this.#sentinels.failovers,
      group: this.#groupStats(),
    };
  }

  #groupStats(): ConsumerGroupStats | undefined {
    const membership = this.#membership;
    if (!membership) return undefined;
    const session = membership.stats();
    const states = [...this.#states.values()];
    return {
      group: this.group,
      memberId: session.memberId,
      generation: this.#generation,
      coordinated: this.#coordinated,
      suspended: this.#coordinated && !this.#closed && membership.suspect(),
      partitions: this.assignment(),
      revoking: sortedPartitions(states.filter((s) => s.revoking)),
      pending: session.pending,
      rebalances: this.#rebalances,
      joins: session.joins,
      lostPartitions: this.#lostPartitions,
      heartbeats: session.heartbeats,
      heartbeatFailures: session.heartbeatFailures,
      lastHeartbeatAgoMs: session.lastHeartbeatAgoMs,
    };
  }

  /**
   * Stops reading, commits processed offsets (auto commit) and, in a group, calls onRevoked first and
   * leaves the group afterwards, so the partitions move to the other members at once. Buffered messages
   * not handed out are dropped; they are delivered again to the group later.
   */
  close(): Promise<void> {
    return this.#close(new ClientClosedError("the consumer"), this.#options.autoCommit ?? true);
  }

  #close(reason: Error, commit: boolean): Promise<void> {
    this.#closing ??= this.#shutdown(reason, commit);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(reason: Error, commit: boolean): Promise<void> {
    this.#closed = true;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    if (this.#commitTimer !== undefined) clearInterval(this.#commitTimer);
    const states = [...this.#states.values()];
    for (const state of states) this.#stopFetch(state);
    this.#abort.abort(reason);
    this.#buffer.close();
    this.#wakeResumeWaiters();
    await Promise.all([...this.#runs].map((run) => run.done));
    const grouped = this.#mode === "group" && this.#coordinated && !this.#replaced;
    const owned = states.filter((s) => this.#states.get(s.key) === s);
    if (grouped && commit && owned.length > 0 && this.#options.onRevoked) {
      await this.#hook("onRevoked", this.#options.onRevoked, sortedPartitions(owned));
    }
    let committed = true;
    if (commit && this.group !== "") committed = await this.#commitProcessed(false, true).catch(() => false);
    if (grouped && owned.length > 0) {
      this.#emit({
        type: "revoked",
        group: this.group,
        generation: this.#generation,
        partitions: sortedPartitions(owned),
        committed,
      });
    }
    this.#states.clear();
    const leave = this.#options.leaveOnClose ?? this.#options.instanceId === undefined;
    await this.#membership?.close(!this.#replaced && leave);
    if (this.#options.ownsTransport) this.#options.transport.close();
  }

  // --- group assignments ---------------------------------------------------------------------------

  #apply(assignment: MemberAssignment): void {
    if (this.#closed) return;
    const assigned = assignment.partitions
      .filter((p) => this.topics.includes(p.topic))
      .map((p) => ({ topic: p.topic, partition: p.partition, epoch: Number(p.epoch) }));
    const diff = diffAssignment(this.#states, assigned);
    const generation = Number(assignment.generation);
    this.#generation = generation;
    if (diff.replaced.length > 0) {
      const list = diff.replaced.map((p) => `${partitionKey(p)} at epoch ${p.epoch}`).join(", ");
      this.#replaced = true;
      this.#fail(
        new MemberReplacedError(
          this.group,
          `the group gave ${list} to another session of member ${assignment.memberId}`,
        ),
      );
      return;
    }
    // Never read a partition at an epoch its leader already refused: nothing read could be committed.
    diff.start = diff.start.filter((p) => (this.#fenced.get(partitionKey(p)) ?? -1) < p.epoch);
    if (diff.start.length === 0 && diff.revoke.length === 0) return;
    this.#rebalances++;
    if (diff.start.length > 0) void this.#takeOver(diff.start, generation);
    if (diff.revoke.length > 0) {
      const states = diff.revoke.map((p) => this.#states.get(partitionKey(p)) as PartitionState);
      void this.#revoke(states, generation);
    }
  }

  /** Partitions the group gave this member: owned at once, read once onAssigned returned. */
  async #takeOver(partitions: AssignedPartition[], generation: number): Promise<void> {
    const states = partitions.map((p) => new PartitionState(p));
    for (const state of states) this.#states.set(state.key, state);
    this.#emit({
      type: "assigned",
      group: this.group,
      generation,
      partitions: [...partitions].sort(comparePartitions),
    });
    if (this.#options.onAssigned) await this.#hook("onAssigned", this.#options.onAssigned, partitions);
    for (const state of states) {
      if (this.#closed || this.#states.get(state.key) !== state || state.revoking || state.paused) continue;
      if (state.run === undefined) this.#restartFetch(state);
    }
  }

  /**
   * A cooperative revocation: stop fetching, drop what is buffered, wait (bounded) for the application to
   * finish what it was handed, onRevoked, commit, then release (a heartbeat at once tells the group).
   */
  async #revoke(states: PartitionState[], generation: number): Promise<void> {
    for (const state of states) {
      state.revoking = true;
      this.#stopFetch(state);
    }
    const timeoutMs = this.#options.revokeTimeoutMs ?? 10_000;
    await Promise.all(states.map((s) => s.whenIdle(timeoutMs, callSignal(this.#abort.signal))));
    if (this.#closed) return; // close() commits and leaves
    const partitions = sortedPartitions(states);
    if (this.#options.onRevoked) await this.#hook("onRevoked", this.#options.onRevoked, partitions);
    const ours = () => states.filter((s) => this.#states.get(s.key) === s);
    const committed =
      this.group !== "" && (this.#options.autoCommit ?? true)
        ? await this.#committer.commit(() => this.#targets(ours()), this.#round(false)).catch(() => false)
        : true;
    const released = ours();
    for (const state of released) this.#states.delete(state.key);
    if (released.length > 0) {
      this.#emit({
        type: "revoked",
        group: this.group,
        generation,
        partitions: sortedPartitions(released),
        committed,
      });
    }
    this.#membership?.heartbeatNow();
  }

  /** Partitions another member owns now: stopped at once, nothing committed. */
  #lose(states: PartitionState[], reason: string): void {
    const lost = states.filter((s) => this.#states.get(s.key) === s);
    if (lost.length === 0) return;
    for (const state of lost) {
      state.revoking = true;
      this.#stopFetch(state);
      this.#states.delete(state.key);
      state.abandon();
    }
    this.#lostPartitions += lost.length;
    const partitions = sortedPartitions(lost);
    this.#emit({ type: "lost", group: this.group, partitions, reason });
    if (this.#options.onLost) void this.#hook("onLost", this.#options.onLost, partitions);
    this.#membership?.heartbeatNow();
  }

  /** A partition leader refused this member's epoch (ABORTED): the partition is lost, not retried. */
  #fence(state: PartitionState, reason: string): void {
    if (this.#states.get(state.key) !== state) return;
    this.#fenced.set(state.key, Math.max(state.epoch, this.#fenced.get(state.key) ?? 0));
    this.#lose([state], reason);
  }

  #uncoordinated(reason: string): void {
    if (this.#closed) return;
    this.#coordinated = false;
    this.#emit({
      type: "uncoordinated",
      group: this.group,
      reason: `the sentinels do not coordinate consumer groups (${reason}): reading every partition`,
    });
    const counts = new Map<string, number>();
    for (const [topic, metadata] of this.#metadata)
      counts.set(topic, metadata.current?.partitions.length ?? 0);
    try {
      this.#startStatic(counts);
    } catch (err) {
      this.#fail(toClientError(err));
    }
  }

  /** Ends the consumer with `error`: receive() and run() throw it once the buffer is drained. */
  #fail(error: GouletteError): void {
    for (const state of [...this.#states.values()]) {
      this.#stopFetch(state);
      this.#states.delete(state.key);
    }
    this.#buffer.fail(error);
    if (this.#membership) void this.#membership.close(false);
  }

  async #hook<T>(name: string, hook: (arg: T) => Promise<void> | void, arg: T): Promise<void> {
    try {
      await hook(arg);
    } catch (err) {
      this.#emit({ type: "error", topic: this.topics.join(","), what: name, error: toClientError(err) });
    }
  }

  // --- fetching ------------------------------------------------------------------------------------

  /**
   * Starts reading a partition. "initial": from the group's committed offset (fencing the previous owner
   * in a group), else `from`; "seek": at `start`; "resume": at the next offset to hand out.
   */
  #startFetch(state: PartitionState, why: "initial" | "resume" | "seek", seekStart?: StartAt): void {
    const start = fetchStart(why, state.position, this.group, this.#options.from ?? "latest", seekStart);
    const initial = why !== "seek" && start.kind !== "offset";
    const abort = new AbortController();
    const run: FetchRun = {
      state,
      abort,
      done: Promise.resolve(),
      fetcher: new PartitionFetcher({
        topic: state.topic,
        partition: state.partition,
        group: this.group,
        memberEpoch: BigInt(state.epoch),
        start,
        metadata: this.#metadata.get(state.topic) as TopicMetadata,
        transport: this.#options.transport,
        headers: this.#headers,
        sink: {
          tryPut: (message) => this.#buffer.tryPut({ message, run, seq: 0 }),
          put: (message, signal) => this.#buffer.put({ message, run, seq: 0 }, signal),
        },
        batchSize: this.#options.pullBatchSize ?? DEFAULT_PULL_BATCH_SIZE,
        retryBackoffMs: this.#options.retryBackoffMs ?? 100,
        maxRetryBackoffMs: this.#options.maxRetryBackoffMs ?? 2_000,
        emit: this.#emit,
        onStart: (offset, source) => {
          if (state.run !== run) return;
          if (why === "seek") {
            if (state.position === undefined) state.seekTo(offset);
            return;
          }
          state.position ??= offset;
          // A start chosen without a committed offset is committed too, so that the group's next
          // reader starts there (not at a later "latest").
          if (initial && source === "chosen" && this.group !== "") state.markProcessed(offset, state.seq);
        },
        onFenced: () => this.#fence(state, "its take-over was refused: the partition has a newer owner"),
        onFatal: (err) => this.#buffer.fail(err),
      }),
    };
    state.run = run;
    state.pendingStart = undefined;
    this.#runs.add(run);
    run.done = run.fetcher
      .run(abort.signal)
      .catch((err: unknown) => this.#buffer.fail(toClientError(err)))
      .finally(() => this.#runs.delete(run));
  }

  /** Stops the partition's fetch and drops its buffered messages (they are fetched again on a restart). */
  #stopFetch(state: PartitionState): void {
    const run = state.run;
    if (!run) return;
    state.run = undefined;
    run.abort.abort();
    this.#buffer.remove((item) => item.run === run);
  }

  /** Fetches again from the next offset to hand out (or a seek made while paused). */
  #restartFetch(state: PartitionState): void {
    this.#stopFetch(state);
    const pending = state.pendingStart;
    if (pending) this.#startFetch(state, "seek", pending);
    else this.#startFetch(state, state.position === undefined ? "initial" : "resume");
  }

  #deliverable(item: Fetched): boolean {
    return item.run.state.run === item.run && !this.#closed;
  }

  /** Up to `max` deliverable messages off the buffer (those of stopped fetches are dropped). */
  #take(max: number): Fetched[] {
    for (;;) {
      const items = this.#buffer.takeAvailable(max);
      if (items.length === 0) return items;
      const deliverable = items.filter((item) => this.#deliverable(item));
      if (deliverable.length > 0) return deliverable;
    }
  }

  #handOut(item: Fetched): ConsumedMessage {
    const state = item.run.state;
    item.seq = state.seq;
    state.handedOut(item.message.offset);
    this.#deliveredCount++;
    return item.message;
  }

  #markProcessed(): void {
    const outstanding = this.#outstanding;
    if (outstanding.length === 0) return;
    this.#outstanding = [];
    for (const item of outstanding) item.run.state.markProcessed(item.message.offset + 1, item.seq);
  }

  /** In a group whose heartbeats went unanswered for a session timeout, nothing is handed out. */
  #suspended(): boolean {
    return this.#membership !== undefined && this.#coordinated && this.#membership.suspect();
  }

  #whenResumed(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        const i = this.#resumeWaiters.indexOf(done);
        if (i !== -1) this.#resumeWaiters.splice(i, 1);
        resolve();
      };
      // Re-checked at least every second (the session may have been answered by then).
      const timer = setTimeout(done, Math.min(timeoutMs ?? 1_000, 1_000));
      signal.addEventListener("abort", done, { once: true });
      this.#resumeWaiters.push(done);
    });
  }

  #wakeResumeWaiters(): void {
    for (const wake of this.#resumeWaiters.splice(0)) wake();
  }

  // --- commits -------------------------------------------------------------------------------------

  #owned(p: TopicPartition, what: string): PartitionState {
    const state = this.#states.get(partitionKey(p));
    if (!state || state.revoking) {
      throw new PartitionNotOwnedError(p.topic, p.partition, `is not read by this consumer (${what})`);
    }
    return state;
  }

  #target(state: PartitionState): CommitTarget {
    return {
      topic: state.topic,
      partition: state.partition,
      offset: state.processed ?? 0,
      epoch: state.epoch,
      state,
      seq: state.seq,
    };
  }

  #targets(states: Iterable<PartitionState>): CommitTarget[] {
    const targets: CommitTarget[] = [];
    for (const state of states) if (state.processed !== undefined) targets.push(this.#target(state));
    return targets;
  }

  #round(throwOnError: boolean, closing = false) {
    return {
      signal: closing ? AbortSignal.timeout(5_000) : this.#abort.signal,
      throwOnError,
      closing,
    };
  }

  /** Commits every partition's processed offset that moved. */
  #commitProcessed(throwOnError: boolean, closing = false): Promise<boolean> {
    if (this.#closed && !closing) return Promise.resolve(true);
    return this.#committer.commit(
      () => this.#targets(this.#states.values()),
      this.#round(throwOnError, closing),
    );
  }
}
