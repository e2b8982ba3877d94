import type { Watcher } from "etcd3";
import type { HeartbeatStore, Heartbeat } from "../coordination/heartbeats.js";
import { errorMessage } from "../errors.js";
import type { UnreachableReason } from "../fsm/operations.js";
import type { Logger } from "../observability/logger.js";

export interface FailureDetectorOptions {
  heartbeats: HeartbeatStore;
  /** Heartbeat lease TTL (s): a registered broker with no heartbeat for this long is down. */
  heartbeatTtlSeconds: number;
  /** Registered brokers the state considers healthy. */
  healthyBrokers: () => string[];
  /** Whether the state considers this broker down. */
  isDown: (brokerId: string) => boolean;
  /** Leader action: mark brokers down and move their replicas (one operation). */
  markDown: (brokerIds: string[], reason: UnreachableReason) => Promise<void>;
  /** Leader action: a down broker beats again. */
  markUp: (beat: Heartbeat) => Promise<void>;
  /** Whether this sentinel currently leads (actions are the leader's only). */
  isLeader: () => boolean;
  logger: Logger;
}

/**
 * Every sentinel keeps the latest heartbeat of each broker (for BrokerInfo.last_heartbeat); the leader
 * also turns an expired heartbeat into a reassignment, and a beat from a down broker into its return.
 * A broker the state calls healthy but that has no heartbeat when this sentinel starts leading (it died
 * during the election) gets one TTL of grace, then is marked down.
 */
export class FailureDetector {
  readonly #latest = new Map<string, Heartbeat>();
  #watcher: Watcher | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(private readonly options: FailureDetectorOptions) {}

  lastHeartbeat(brokerId: string): number | undefined {
    return this.#latest.get(brokerId)?.lastHeartbeat;
  }

  hasHeartbeat(brokerId: string): boolean {
    return this.#latest.has(brokerId);
  }

  async start(): Promise<void> {
    this.#watcher = await this.options.heartbeats.watch({
      onBeat: (beat) => {
        this.#latest.set(beat.brokerId, beat);
        if (this.options.isLeader() && this.options.isDown(beat.brokerId)) {
          this.options
            .markUp(beat)
            .catch((err: unknown) =>
              this.options.logger.warn(
                { broker: beat.brokerId, err: errorMessage(err) },
                "could not mark broker up",
              ),
            );
        }
      },
      onExpired: (brokerId) => {
        this.#latest.delete(brokerId);
        if (this.options.isLeader() && !this.options.isDown(brokerId)) {
          this.options.logger.warn({ broker: brokerId }, "broker heartbeat expired; moving its replicas");
          this.#markDown([brokerId], "heartbeat-expired");
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
          "brokers sent no heartbeat for a whole TTL; moving their replicas",
        );
        this.#markDown(silent, "heartbeat-expired");
      }
    } catch (err) {
      this.options.logger.warn({ err: errorMessage(err) }, "heartbeat sweep failed; retrying");
      this.onLeading();
    }
  }

  #markDown(brokerIds: string[], reason: UnreachableReason): void {
    this.options.markDown(brokerIds, reason).catch((err: unknown) => {
      this.options.logger.warn(
        { brokers: brokerIds, err: errorMessage(err) },
        "could not mark brokers down; will sweep again",
      );
      this.onLeading();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#graceTimer);
    await this.#watcher?.cancel().catch(() => undefined);
  }
}
