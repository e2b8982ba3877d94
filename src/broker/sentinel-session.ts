import { randomUUID } from "node:crypto";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import type { SetTopicRoleRequest } from "../gen/goulette/v1/broker_pb.js";
import { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { monotonicClock, type Clock } from "../common/clock.js";
import type { Logger } from "../observability/logger.js";
import type { ListenerAddress } from "../fsm/listeners.js";
import type { BrokerAcls } from "./topic-acls.js";

export interface SentinelSessionOptions {
  brokerId: string;
  /** host:port the sentinels and other brokers dial. */
  address: string;
  /** Its other addresses, on named listeners (sorted by name). */
  listeners: readonly ListenerAddress[];
  /** Sentinel URLs (or host:port); any of them, writes are forwarded to the leader. */
  sentinels: readonly string[];
  /** gRPC transport to a sentinel's base URL. */
  transport: (baseUrl: string) => Transport;
  /** Headers of every call (authorization). */
  headers: Record<string, string>;
  /** KeepAlive period (ms). */
  intervalMs: number;
  /** Topics with data on disk (RegisterBroker's informational list). */
  topicsOnDisk: () => Promise<string[]>;
  /**
   * Called with the broker's complete role list after a KeepAlive that lists it, and the list's digest
   * ("" from older sentinels).
   */
  onAssignments: (assignments: SetTopicRoleRequest[], appliedId: bigint, digest: string) => Promise<void>;
  /**
   * The digest of the role list the broker holds exactly (as reconciled by onAssignments and unchanged
   * since), "" when none: a KeepAlive sending it is answered without the list when it still matches.
   */
  heldAssignmentsDigest: () => string;
  /** The topic ACLs every answer refreshes (absent: not followed). */
  acls?: BrokerAcls;
  /**
   * Partitions this broker was made leader of and refuses to lead (a damaged log): after each beat the
   * session asks the sentinels to hand them over (HandOverLeadership) until their roles change.
   */
  refusedLeaderships?: () => Array<{ topic: string; partition: number }>;
  logger: Logger;
  /** The fence's clock: monotonic (default), so a wall-clock step neither stretches nor shrinks it. */
  clock?: Clock;
}

/**
 * KeepAlives between two that ask for the full role list whatever the broker holds: a bound on how long
 * a difference nobody noticed (a bug, not a protocol case) could last.
 */
export const FULL_LIST_EVERY_BEATS = 100;

/**
 * The broker's life with the sentinels: RegisterBroker, then KeepAlive every interval; each answer
 * carries every partition the broker holds with its role and epoch, which the broker reconciles against
 * (roles pushed with SetTopicRole can be missed), or only says the list is unchanged: the broker sends
 * the digest of the list it holds exactly, and the sentinel omits a list with the same digest (with
 * thousands of partitions, decoding and walking the list every beat was most of an idle broker's work).
 * An answer saying `registered: false` (the broker was unregistered, or the sentinels lost it) makes it
 * register again. On errors it moves to the next sentinel URL.
 */
export class SentinelSession {
  readonly #clients: Client<typeof SentinelService>[];
  readonly #abort = new AbortController();
  #current = 0;
  #registered = false;
  /** A RegisterBroker that sends the listeners again, off the beat loop (heartbeats go on meanwhile). */
  #reregistering: Promise<void> | undefined;
  /** A HandOverLeadership request in flight. */
  #handingOver: Promise<void> | undefined;
  /** The sentinels' other listeners were logged (once until they hold the right ones). */
  #listenersWarned = false;
  #synced = false;
  #loop: Promise<void> | undefined;
  #failures = 0;
  /** When the last KeepAlive that the sentinels answered was sent (monotonic ms), and the TTL they gave. */
  #lastBeatAt = 0;
  #ttlMs = 0;
  /** The reconciliation running off the beat loop, and the newest answer waiting for it. */
  #reconciling: Promise<void> | undefined;
  #nextAssignments: { assignments: SetTopicRoleRequest[]; appliedId: bigint; digest: string } | undefined;
  /** Answered KeepAlives since the last one that asked for the full list. */
  #beatsSinceFullList = 0;
  readonly #clock: Clock;
  /** This process's start-up id: registering with a new one tells the sentinels the broker restarted. */
  readonly #incarnation = randomUUID();

  constructor(private readonly options: SentinelSessionOptions) {
    this.#clock = options.clock ?? monotonicClock;
    if (options.sentinels.length === 0) throw new Error("at least one sentinel URL is needed");
    this.#clients = options.sentinels.map((url) => createClient(SentinelService, options.transport(url)));
  }

  /** Registered, and the roles of at least one KeepAlive answer applied. */
  get ready(): boolean {
    return this.#registered && this.#synced;
  }

  /**
   * True while the sentinels' last answered KeepAlive is younger than the heartbeat TTL they announced.
   * Past it they may have declared this broker dead and moved its partitions, so a leader must stop
   * taking writes (a partitioned old leader would otherwise acknowledge writes the new one never sees).
   * Measured from when the beat was sent, on the monotonic clock: the sentinels' lease started later, so
   * this fence expires before they can declare the broker dead.
   */
  get inContact(): boolean {
    return this.#lastBeatAt > 0 && this.#clock.now() - this.#lastBeatAt < this.#ttlMs;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    await this.#reregistering;
    await this.#handingOver;
    await this.#reconciling;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let again = false;
      try {
        again = await this.#beat();
        this.#failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        this.#failures++;
        const url = this.options.sentinels[this.#current];
        this.#current = (this.#current + 1) % this.#clients.length;
        const level = this.#failures === 1 || this.#failures % 10 === 0 ? "warn" : "debug";
        this.options.logger[level](
          { sentinel: url, err: err, failures: this.#failures },
          "sentinel call failed; trying the next sentinel",
        );
      }
      // Re-registering right away, but not in a tight loop if a lagging sentinel keeps saying no.
      if (again) {
        await sleep(100, undefined, { signal }).catch(() => undefined);
        continue;
      }
      const delay =
        this.#failures > 0
          ? Math.min(this.options.intervalMs, 250 * this.#failures)
          : this.options.intervalMs;
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * Deadline of one KeepAlive: a third of the heartbeat TTL (once known), at most two intervals, at least
   * 2 s. A beat that hangs on an overloaded sentinel then leaves time, before the heartbeat expires, to
   * try the next sentinel twice; waiting two intervals on one sentinel left time for one retry at most.
   */
  #beatTimeoutMs(): number {
    const byInterval = Math.min(10_000, this.options.intervalMs * 2);
    const byTtl = this.#ttlMs > 0 ? this.#ttlMs / 3 : byInterval;
    return Math.round(Math.max(2_000, Math.min(byInterval, byTtl)));
  }

  /** RegisterBroker with the broker's addresses (forwarded to the sentinel leader: a longer deadline). */
  async #register(
    client: Client<typeof SentinelService>,
    call: { headers: Record<string, string>; signal: AbortSignal },
  ): Promise<void> {
    await client.registerBroker(
      {
        brokerId: this.options.brokerId,
        address: this.options.address,
        listeners: [...this.options.listeners],
        topics: await this.options.topicsOnDisk(),
        incarnation: this.#incarnation,
      },
      { ...call, timeoutMs: 15_000 },
    );
  }

  /** One round: register if needed, KeepAlive, reconcile. True when it should run again at once. */
  async #beat(): Promise<boolean> {
    const client = this.#clients[this.#current] as Client<typeof SentinelService>;
    const call = {
      headers: this.options.headers,
      signal: this.#abort.signal,
      timeoutMs: this.#beatTimeoutMs(),
    };
    if (!this.#registered) {
      await this.#register(client, call);
      this.#registered = true;
      this.options.logger.info(
        { sentinel: this.options.sentinels[this.#current] },
        "registered with the sentinels",
      );
    }
    const sentAt = this.#clock.now();
    // While a reconciliation runs the held digest is "" anyway; once every FULL_LIST_EVERY_BEATS, ask
    // for the whole list regardless.
    const fullList = this.#beatsSinceFullList >= FULL_LIST_EVERY_BEATS - 1;
    const res = await client.keepAlive(
      {
        brokerId: this.options.brokerId,
        address: this.options.address,
        listeners: [...this.options.listeners],
        status: BrokerStatus.HEALTHY,
        assignmentsDigest: fullList ? "" : this.options.heldAssignmentsDigest(),
        aclsDigest: this.options.acls?.heldDigest ?? "",
      },
      call,
    );
    this.options.acls?.learn(res);
    this.#beatsSinceFullList = fullList ? 0 : this.#beatsSinceFullList + 1;
    if (!res.registered) {
      this.options.logger.warn("the sentinels do not know this broker (any more); registering again");
      this.#registered = false;
      return true;
    }
    if (res.listenersChanged) {
      if (!this.#listenersWarned) {
        this.options.logger.warn(
          { listeners: this.options.listeners.map((l) => `${l.name}=${l.address}`) },
          "the sentinels hold other listeners for this broker; registering them again",
        );
      }
      // Again at every beat while a sentinel leader that predates listeners drops them.
      this.#reregistering ??= this.#register(client, call)
        .catch((err: unknown) => {
          if (!this.#abort.signal.aborted)
            this.options.logger.warn({ err: err }, "registering the listeners failed");
        })
        .finally(() => (this.#reregistering = undefined));
    }
    this.#listenersWarned = res.listenersChanged;
    this.#lastBeatAt = sentAt;
    this.#ttlMs = res.ttlSeconds * 1000;
    // Unchanged: the roles the broker holds are the sentinel's (a push applied since cleared the digest
    // it sent, so this answer cannot hide a change).
    if (!res.assignmentsUnchanged) this.#reconcile(res.assignments, res.appliedId, res.assignmentsDigest);
    this.#askHandOver(client, call);
    return false;
  }

  /**
   * Asks for the leadership of the partitions this broker refuses to lead to move, off the beat loop
   * (the leader sentinel reads the other replicas' progress first); one request at a time, again after
   * the next beat while they still refuse.
   */
  #askHandOver(
    client: Client<typeof SentinelService>,
    call: { headers: Record<string, string>; signal: AbortSignal; timeoutMs: number },
  ): void {
    if (this.#handingOver) return;
    const partitions = this.options.refusedLeaderships?.() ?? [];
    if (partitions.length === 0) return;
    this.#handingOver = client
      .handOverLeadership({ brokerId: this.options.brokerId, partitions }, call)
      .then((res) => {
        this.options.logger.warn(
          { partitions: partitions.length, moved: res.moved, operationId: res.operationId.toString() },
          "asked the sentinels to move the leadership of partitions whose log is damaged here",
        );
      })
      .catch((err: unknown) => {
        if (!this.#abort.signal.aborted)
          this.options.logger.warn(
            { err },
            "asking the sentinels to move a damaged partition's leadership failed",
          );
      })
      .finally(() => (this.#handingOver = undefined));
  }

  /**
   * Applies a KeepAlive answer's roles off the beat loop: applying thousands of new roles can take longer
   * than the heartbeat TTL, and the next beats must not wait for it. One reconciliation runs at a time;
   * answers arriving meanwhile are coalesced to the newest.
   */
  #reconcile(assignments: SetTopicRoleRequest[], appliedId: bigint, digest: string): void {
    this.#nextAssignments = { assignments, appliedId, digest };
    this.#reconciling ??= (async () => {
      for (let next = this.#nextAssignments; next; next = this.#nextAssignments) {
        this.#nextAssignments = undefined;
        if (this.#abort.signal.aborted) return;
        try {
          await this.options.onAssignments(next.assignments, next.appliedId, next.digest);
          this.#synced = true;
        } catch (err) {
          this.options.logger.warn({ err: err }, "could not apply the roles of a KeepAlive answer");
        }
      }
    })().finally(() => (this.#reconciling = undefined));
  }
}
