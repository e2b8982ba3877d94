import type { Watcher } from "etcd3";
import type { HeartbeatStore, Heartbeat } from "../coordination/heartbeats.js";
import type { UnreachableReason } from "../fsm/operations.js";
import type { Logger } from "../observability/logger.js";
import { EventLoopLag } from "./event-loop-lag.js";
import {
  DEFAULT_VERDICT_LIMITS,
  decideVerdict,
  type SuspectReason,
  type VerdictLimits,
} from "./failure-verdict.js";

export interface FailureDetectorOptions {
  heartbeats: HeartbeatStore;
  /** Heartbeat lease TTL (s): a registered broker with no heartbeat for this long is suspected. */
  heartbeatTtlSeconds: number;
  /** Registered brokers the state considers healthy. */
  healthyBrokers: () => string[];
  /** Whether the state considers this broker down. */
  isDown: (brokerId: string) => boolean;
  /** Whether a broker answers a direct Health probe (false when it is not registered). */
  probe: (brokerId: string) => Promise<boolean>;
  /** Leader action: mark brokers down and move their replicas (one operation). */
  markDown: (brokerIds: string[], reason: UnreachableReason) => Promise<void>;
  /** Leader action: a down broker beats again. */
  markUp: (beat: Heartbeat) => Promise<void>;
  /** Whether this sentinel currently leads (actions are the leader's only). */
  isLeader: () => boolean;
  /** Counts a held verdict (goulette_failure_verdicts_suspect_total). */
  onSuspectVerdict?: (reason: SuspectReason) => void;
  /** When to hold a verdict (defaults: DEFAULT_VERDICT_LIMITS). */
  limits?: Partial<VerdictLimits>;
  /** Pause before a held verdict is checked again (ms, default 1,000). */
  recheckMs?: number;
  logger: Logger;
}

/** Expiries this close together are judged together (the mass-verdict rule needs to see them at once). */
const SETTLE_MS = 250;

/**
 * Every sentinel keeps the latest heartbeat of each broker (for BrokerInfo.last_heartbeat); the leader
 * also turns a missing heartbeat into a reassignment, and a beat from a down broker into its return.
 * A missing heartbeat makes a broker a suspect, not a dead one: the leader gathers evidence (is the key
 * still gone, does a Health probe fail, was this sentinel's event loop or etcd slow, would more than half
 * of the brokers die at once) and decideVerdict (failure-verdict.ts) says down, cleared or held; held
 * verdicts are checked again every `recheckMs`. A broker the state calls healthy but that has no
 * heartbeat when this sentinel starts leading (it died during the election) gets one TTL of grace.
 */
export class FailureDetector {
  readonly #latest = new Map<string, Heartbeat>();
  /** Brokers whose heartbeat went missing → when that was noticed (ms). */
  readonly #suspects = new Map<string, number>();
  /** The reason each held suspect was last logged with (logged again only when it changes). */
  readonly #heldFor = new Map<string, SuspectReason>();
  readonly #lag = new EventLoopLag();
  readonly #limits: VerdictLimits;
  #watcher: Watcher | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #checking = false;
  #stopped = false;

  constructor(private readonly options: FailureDetectorOptions) {
    // A third of the TTL: about the time a broker's next KeepAlive (or its retry) needs to get through.
    const probeHoldMs = (options.heartbeatTtlSeconds * 1000) / 3;
    this.#limits = { ...DEFAULT_VERDICT_LIMITS, probeHoldMs, ...options.limits };
  }

  lastHeartbeat(brokerId: string): number | undefined {
    return this.#latest.get(brokerId)?.lastHeartbeat;
  }

  hasHeartbeat(brokerId: string): boolean {
    return this.#latest.has(brokerId);
  }

  /** Brokers suspected now (heartbeat missing, verdict not reached), for tests and status. */
  get suspects(): string[] {
    return [...this.#suspects.keys()];
  }

  async start(): Promise<void> {
    this.#lag.start();
    this.#watcher = await this.options.heartbeats.watch({
      onBeat: (beat) => {
        this.#latest.set(beat.brokerId, beat);
        this.#clear(beat.brokerId);
        if (this.options.isLeader() && this.options.isDown(beat.brokerId)) {
          this.options
            .markUp(beat)
            .catch((err: unknown) =>
              this.options.logger.warn({ broker: beat.brokerId, err: err }, "could not mark broker up"),
            );
        }
      },
      onExpired: (brokerId) => {
        this.#latest.delete(brokerId);
        if (this.options.isLeader() && !this.options.isDown(brokerId)) {
          this.options.logger.warn({ broker: brokerId }, "broker heartbeat expired; checking the evidence");
          this.#suspect([brokerId]);
        }
      },
      onError: (err) =>
        this.options.logger.warn({ err: err.message }, "heartbeat watch error (etcd3 retries)"),
    });
    for (const [id, beat] of await this.options.heartbeats.all()) this.#latest.set(id, beat);
  }

  /** Called when this sentinel starts leading: brokers without a heartbeat get one TTL of grace. */
  onLeading(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => void this.#sweep(), this.options.heartbeatTtlSeconds * 1000);
    this.#graceTimer.unref();
  }

  async #sweep(): Promise<void> {
    if (this.#stopped || !this.options.isLeader()) return;
    try {
      const beats = await this.options.heartbeats.all();
      const silent = this.options.healthyBrokers().filter((id) => !beats.has(id));
      if (silent.length > 0) {
        this.options.logger.warn(
          { brokers: silent },
          "brokers sent no heartbeat for a whole TTL; checking the evidence",
        );
        this.#suspect(silent);
      }
    } catch (err) {
      this.options.logger.warn({ err: err }, "heartbeat sweep failed; retrying");
      this.onLeading();
    }
  }

  #suspect(brokerIds: string[]): void {
    const now = performance.now(); // monotonic: a wall-clock step must not age suspects
    for (const id of brokerIds) if (!this.#suspects.has(id)) this.#suspects.set(id, now);
    this.#scheduleCheck(SETTLE_MS);
  }

  #clear(brokerId: string): void {
    this.#suspects.delete(brokerId);
    this.#heldFor.delete(brokerId);
  }

  #scheduleCheck(delayMs: number): void {
    if (this.#checkTimer || this.#stopped) return;
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = undefined;
      void this.#check();
    }, delayMs);
    this.#checkTimer.unref();
  }

  /** Gathers the evidence about every suspect, decides, acts; held suspects are checked again later. */
  async #check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    const recheckMs = this.options.recheckMs ?? 1_000;
    try {
      if (this.#stopped || !this.options.isLeader()) {
        // The next leader sweeps on its own.
        this.#suspects.clear();
        this.#heldFor.clear();
        return;
      }
      // Lag over the window in which the suspects' heartbeats should have arrived.
      const eventLoopLagMs = this.#lag.maxOver(this.options.heartbeatTtlSeconds * 1000);
      const startedRead = performance.now();
      const beats = await this.options.heartbeats.all();
      const etcdLatencyMs = performance.now() - startedRead;
      const healthy = new Set(this.options.healthyBrokers());
      for (const id of this.#suspects.keys()) if (!healthy.has(id)) this.#clear(id);
      const ids = [...this.#suspects.keys()];
      const probes = await Promise.all(ids.map((id) => (beats.has(id) ? true : this.options.probe(id))));
      const now = performance.now();
      const verdict = decideVerdict({
        suspects: ids.map((id, i) => ({
          brokerId: id,
          heartbeatPresent: beats.has(id),
          probeAnswered: probes[i] as boolean,
          suspectForMs: now - (this.#suspects.get(id) ?? now),
        })),
        healthyBrokers: healthy.size,
        eventLoopLagMs,
        etcdLatencyMs,
        limits: this.#limits,
      });
      for (const id of verdict.cleared) {
        this.options.logger.info({ broker: id }, "broker heartbeat is back; not moving its replicas");
        this.#clear(id);
      }
      for (const { brokerId, reason } of verdict.held) {
        this.options.onSuspectVerdict?.(reason);
        if (this.#heldFor.get(brokerId) === reason) continue;
        this.#heldFor.set(brokerId, reason);
        this.options.logger.warn(
          { broker: brokerId, reason, eventLoopLagMs, etcdLatencyMs, maxHoldMs: this.#limits.maxHoldMs },
          "broker heartbeat missing but the evidence is suspect; holding the verdict and checking again",
        );
      }
      if (verdict.down.length > 0) {
        this.options.logger.warn(
          { brokers: verdict.down },
          "brokers confirmed unreachable (no heartbeat, no Health answer); moving their replicas",
        );
        for (const id of verdict.down) this.#clear(id);
        this.#markDown(verdict.down, "heartbeat-expired");
      }
    } catch (err) {
      this.options.logger.warn({ err: err }, "could not check suspected brokers; retrying");
    } finally {
      this.#checking = false;
      if (this.#suspects.size > 0) this.#scheduleCheck(recheckMs);
    }
  }

  #markDown(brokerIds: string[], reason: UnreachableReason): void {
    this.options.markDown(brokerIds, reason).catch((err: unknown) => {
      this.options.logger.warn(
        { brokers: brokerIds, err: err },
        "could not mark brokers down; will sweep again",
      );
      this.onLeading();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#checkTimer);
    this.#lag.stop();
    // Idempotent: cancelling an etcd watcher a second time never settles.
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }
}
