import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { TransportPool, toBaseUrl, type TransportPoolOptions } from "../server/transport-pool.js";
import { backoffDelay } from "../common/backoff.js";
import { BrokerService, RoleOutcome } from "../gen/goulette/v1/broker_pb.js";
import type { ClusterState, TopicRecord } from "../fsm/state.js";
import type { Logger } from "../observability/logger.js";
import { roleMessages, type BrokerClient, type CallOptions, type Message } from "./role-messages.js";

export interface RoleNotifierOptions {
  state: ClusterState;
  logger: Logger;
  /** Deadline of one SetTopicRoles/SetTopicRole/RemoveTopic call (ms). */
  timeoutMs?: number;
  transport?: (baseUrl: string) => Transport;
  /** Extra headers (auth). */
  headers?: Record<string, string>;
  /** TLS (CA, client certificate) and the scheme of broker host:port addresses. */
  transportOptions?: TransportPoolOptions;
  /** Calls in flight at once over all brokers (default 16). */
  concurrency?: number;
  /** Calls in flight at once to one broker (default 4). */
  perBrokerConcurrency?: number;
  /** Consecutive failures after which a broker's queue is dropped (default 6): it reconciles through KeepAlive. */
  maxAttempts?: number;
  /** First retry delay after a failed call (ms, default 200), doubled per consecutive failure up to 5 s, with jitter. */
  retryBaseMs?: number;
  /** Roles sent in one SetTopicRoles call (default 1,000; brokers take up to 10,000). */
  maxRolesPerCall?: number;
  /**
   * After a broker answers SetTopicRoles with UNIMPLEMENTED (older than that RPC), roles go to it one
   * SetTopicRole call each for this long (ms, default 60 s), then SetTopicRoles is tried again: the
   * broker may have been upgraded in the meantime.
   */
  legacyRecheckMs?: number;
  /** Clock of the legacyRecheckMs window (tests). */
  now?: () => number;
}

interface BrokerQueue {
  address: string;
  /** Insertion-ordered; a superseding message moves to the end. */
  pending: Map<string, Message>;
  inFlight: number;
  /** Topics with a call in flight (count of their messages in flight): calls about one topic go one at a time, in order. */
  busyTopics: Map<string, number>;
  failures: number;
  retryAt: number;
  timer: NodeJS.Timeout | undefined;
}

const MAX_BACKOFF_MS = 5_000;

/**
 * After the leader changes an assignment it tells the brokers involved (docs/architecture.md): its new role to
 * every replica of a changed partition, RemoveTopic (best effort) to brokers that lost one. The roles
 * queued for one broker go out together, in one SetTopicRoles call (at most `maxRolesPerCall` roles),
 * so creating a topic costs one call per broker rather than one per replica; a broker that does not
 * know SetTopicRoles (UNIMPLEMENTED: an older version during a rolling upgrade) gets SetTopicRole calls.
 *
 * None of it runs on the write path: notify() only records the topic; the calls are worked out on a
 * later turn of the event loop and queued per broker, where the latest message per partition wins (a
 * partition that changed three times while a call was in flight gets one call, with its newest role).
 * Calls go out with bounded concurrency; a failing broker is retried with exponential backoff and, after
 * `maxAttempts` consecutive failures, its queue is dropped: brokers also reconcile their roles from the
 * assignments in every KeepAlive answer, so a lost push is repaired within a heartbeat.
 */
export class RoleNotifier {
  readonly #clients = new Map<string, BrokerClient>();
  readonly #pool: TransportPool;
  /** Topics changed since the last expansion, with their record before the first of those changes. */
  #dirty = new Map<string, TopicRecord | undefined>();
  #expandScheduled = false;
  readonly #queues = new Map<string, BrokerQueue>();
  #inFlight = 0;
  /** Messages in the calls in flight. */
  #messagesInFlight = 0;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  /** Brokers that answered SetTopicRoles with UNIMPLEMENTED → when to try SetTopicRoles again (epoch ms). */
  readonly #legacy = new Map<string, number>();
  /**
   * For tests and logs: messages (roles, removals) delivered and failed, messages superseded before
   * being sent or dropped; RPCs made (`calls`), of which SetTopicRoles (`batches`).
   */
  readonly stats = { sent: 0, failed: 0, superseded: 0, dropped: 0, calls: 0, batches: 0 };

  constructor(private readonly options: RoleNotifierOptions) {
    this.#pool = new TransportPool(options.transportOptions);
  }

  /** Records that `topic` changed (`before` = its record before the change); the calls go out later. */
  notify(topic: string, before: TopicRecord | undefined): void {
    if (this.#closed) return;
    if (!this.#dirty.has(topic)) this.#dirty.set(topic, before);
    if (this.#expandScheduled) return;
    this.#expandScheduled = true;
    setImmediate(() => {
      this.#expandScheduled = false;
      this.#expand();
    });
  }

  /**
   * Role changes not yet delivered: messages queued or in flight, plus topics changed but not yet worked
   * out. Topic creations are refused while it is too large (admission.ts), so brokers take new roles
   * at the rate they apply them.
   */
  get backlog(): number {
    let queued = 0;
    for (const queue of this.#queues.values()) queued += queue.pending.size;
    return queued + this.#messagesInFlight + this.#dirty.size;
  }

  /** Resolves once nothing is queued or in flight (tests; a graceful shutdown may wait on it too). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): void {
    this.#closed = true;
    this.#dirty.clear();
    for (const queue of this.#queues.values()) {
      clearTimeout(queue.timer);
      queue.pending.clear();
    }
    this.#pool.close();
    this.#clients.clear();
    this.#checkIdle();
  }

  #expand(): void {
    const dirty = this.#dirty;
    this.#dirty = new Map();
    for (const [topic, before] of dirty) this.#enqueueTopic(topic, before);
    for (const queue of this.#queues.values()) this.#pump(queue);
    this.#checkIdle();
  }

  #enqueueTopic(topic: string, before: TopicRecord | undefined): void {
    for (const { address, message, dropsTopic } of roleMessages(this.options.state, topic, before)) {
      if (dropsTopic) {
        // The whole topic goes: its per-partition messages to this broker are moot.
        const queue = this.#queues.get(address);
        for (const key of queue?.pending.keys() ?? []) {
          if (key.startsWith(`${topic}#`)) {
            queue?.pending.delete(key);
            this.stats.superseded++;
          }
        }
      }
      this.#enqueue(address, message);
    }
  }

  #enqueue(address: string, message: Message): void {
    let queue = this.#queues.get(address);
    if (!queue) {
      queue = {
        address,
        pending: new Map(),
        inFlight: 0,
        busyTopics: new Map(),
        failures: 0,
        retryAt: 0,
        timer: undefined,
      };
      this.#queues.set(address, queue);
    }
    if (queue.pending.delete(message.key)) this.stats.superseded++;
    queue.pending.set(message.key, message);
  }

  #pump(queue: BrokerQueue): void {
    if (this.#closed) return;
    const concurrency = this.options.concurrency ?? 16;
    const perBroker = this.options.perBrokerConcurrency ?? 4;
    const wait = queue.retryAt - Date.now();
    if (wait > 0) {
      if (!queue.timer) {
        queue.timer = setTimeout(() => {
          queue.timer = undefined;
          this.#pump(queue);
        }, wait);
      }
      return;
    }
    // Every role ready to go joins one SetTopicRoles call (a full one goes at once and another starts);
    // removals go on their own. A message waits while its topic has a call in flight, or is in the
    // batch being built and the message is not a role, so calls about one topic keep their order.
    const batching = (this.#legacy.get(queue.address) ?? 0) <= this.#now();
    const maxRoles = Math.max(1, this.options.maxRolesPerCall ?? 1_000);
    let batch: Message[] = [];
    const batchTopics = new Set<string>();
    for (const message of queue.pending.values()) {
      // A started batch holds a slot of its own.
      const reserved = batch.length > 0 ? 1 : 0;
      if (this.#inFlight + reserved >= concurrency || queue.inFlight + reserved >= perBroker) break;
      if (queue.busyTopics.has(message.topic)) continue;
      if (batching && message.role) {
        batch.push(message);
        batchTopics.add(message.topic);
        if (batch.length >= maxRoles) {
          void this.#sendBatch(queue, batch);
          batch = [];
          batchTopics.clear();
        }
        continue;
      }
      if (batchTopics.has(message.topic)) continue;
      void this.#send(queue, message);
    }
    if (batch.length > 0) void this.#sendBatch(queue, batch);
    if (queue.pending.size === 0 && queue.inFlight === 0) this.#queues.delete(queue.address);
  }

  /** Takes messages off the queue into one call in flight. */
  #begin(queue: BrokerQueue, messages: readonly Message[]): void {
    this.#inFlight++;
    this.#messagesInFlight += messages.length;
    queue.inFlight++;
    for (const message of messages) {
      queue.pending.delete(message.key);
      queue.busyTopics.set(message.topic, (queue.busyTopics.get(message.topic) ?? 0) + 1);
    }
  }

  /** Ends a call: delivered messages are counted, failed ones retried (with backoff) or dropped. */
  #end(queue: BrokerQueue, messages: readonly Message[], failed: readonly Message[]): void {
    this.#release(queue, messages);
    this.stats.sent += messages.length - failed.length;
    if (failed.length === 0) {
      queue.failures = 0;
    } else {
      this.stats.failed += failed.length;
      this.#onFailure(queue, failed);
    }
    this.#afterCall(queue);
  }

  /** The call's slot and its topics are free again. */
  #release(queue: BrokerQueue, messages: readonly Message[]): void {
    this.#inFlight--;
    this.#messagesInFlight -= messages.length;
    queue.inFlight--;
    this.stats.calls++;
    for (const message of messages) {
      const busy = (queue.busyTopics.get(message.topic) ?? 1) - 1;
      if (busy > 0) queue.busyTopics.set(message.topic, busy);
      else queue.busyTopics.delete(message.topic);
    }
  }

  #afterCall(queue: BrokerQueue): void {
    if (!this.#closed) {
      // A freed slot may serve any broker's queue, not only this one.
      this.#pump(queue);
      for (const other of this.#queues.values()) if (other !== queue) this.#pump(other);
    }
    this.#checkIdle();
  }

  #callOptions(): CallOptions {
    return {
      timeoutMs: this.options.timeoutMs ?? 2_000,
      ...(this.options.headers ? { headers: this.options.headers } : {}),
    };
  }

  async #send(queue: BrokerQueue, message: Message): Promise<void> {
    this.#begin(queue, [message]);
    let ok = false;
    try {
      await message.send(this.#client(queue.address), this.#callOptions());
      ok = true;
    } catch (err) {
      this.options.logger.debug(
        { broker: queue.address, err: err, failures: queue.failures + 1 },
        `could not send ${message.what}; will retry`,
      );
    }
    this.#end(queue, [message], ok ? [] : [message]);
  }

  async #sendBatch(queue: BrokerQueue, batch: readonly Message[]): Promise<void> {
    this.#begin(queue, batch);
    let failed: Message[] = [];
    try {
      const res = await this.#client(queue.address).setTopicRoles(
        { roles: batch.flatMap((m) => (m.role ? [m.role] : [])) },
        this.#callOptions(),
      );
      this.stats.batches++;
      failed = batch.filter((message, i) => {
        const result = res.results[i];
        if (result?.outcome === RoleOutcome.APPLIED || result?.outcome === RoleOutcome.STALE) return false;
        this.options.logger.debug(
          { broker: queue.address, code: result?.code, err: result?.message ?? "no result for this role" },
          `broker refused ${message.what}; will retry`,
        );
        return true;
      });
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unimplemented) {
        this.#fallBack(queue, batch);
        return;
      }
      this.options.logger.debug(
        { broker: queue.address, roles: batch.length, err: err, failures: queue.failures + 1 },
        "could not send SetTopicRoles; will retry",
      );
      failed = [...batch];
    }
    this.#end(queue, batch, failed);
  }

  /** An older broker without SetTopicRoles: requeue the batch; its roles go out one call each. */
  #fallBack(queue: BrokerQueue, batch: readonly Message[]): void {
    // At least 1 s, so a broker answering UNIMPLEMENTED is not asked again in a loop.
    this.#legacy.set(queue.address, this.#now() + Math.max(1_000, this.options.legacyRecheckMs ?? 60_000));
    this.options.logger.info(
      { broker: queue.address },
      "broker does not know SetTopicRoles (an older version); sending it one SetTopicRole per role",
    );
    this.#release(queue, batch);
    this.#requeue(queue, batch);
    this.#queues.set(queue.address, queue);
    this.#afterCall(queue);
  }

  /** Puts messages back at the front of the queue unless a newer message for the same key is queued. */
  #requeue(queue: BrokerQueue, messages: readonly Message[]): void {
    // Skipped: a message superseded meanwhile, or a role of a topic now removed as a whole.
    const back = messages.filter((m) => !queue.pending.has(m.key) && !(m.role && queue.pending.has(m.topic)));
    const rest = [...queue.pending.values()];
    queue.pending.clear();
    for (const message of [...back, ...rest]) queue.pending.set(message.key, message);
  }

  #onFailure(queue: BrokerQueue, failed: readonly Message[]): void {
    queue.failures++;
    const maxAttempts = this.options.maxAttempts ?? 6;
    if (queue.failures >= maxAttempts) {
      const dropped = queue.pending.size + failed.length;
      this.stats.dropped += dropped;
      this.options.logger.info(
        { broker: queue.address, failures: queue.failures, dropped },
        "broker does not take role changes; dropping them (it reconciles through KeepAlive)",
      );
      queue.pending.clear();
      queue.failures = 0;
      queue.retryAt = 0;
      return;
    }
    // Retry unless a newer message for the same key is already queued.
    this.#requeue(queue, failed);
    const base = this.options.retryBaseMs ?? 200;
    queue.retryAt = Date.now() + backoffDelay(queue.failures, base, MAX_BACKOFF_MS);
    this.#queues.set(queue.address, queue);
  }

  #isIdle(): boolean {
    if (this.#dirty.size > 0 || this.#expandScheduled || this.#inFlight > 0) return false;
    if (this.#closed) return true;
    for (const queue of this.#queues.values()) if (queue.pending.size > 0) return false;
    return true;
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  #client(address: string): BrokerClient {
    let client = this.#clients.get(address);
    if (!client) {
      const url = toBaseUrl(address, this.#pool.scheme);
      client = createClient(BrokerService, this.options.transport?.(url) ?? this.#pool.get(url));
      this.#clients.set(address, client);
    }
    return client;
  }
}
