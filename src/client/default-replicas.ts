import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import { AbortedError } from "./errors.js";
import type { SentinelPool } from "./sentinel-pool.js";

/** Replicas of a topic created without an explicit count, at most. */
export const DEFAULT_REPLICAS = 3;

/** How long a count is used before the sentinels are asked again. */
export const DEFAULT_REPLICAS_MAX_AGE_MS = 30_000;

/**
 * The replica_count a client's GetBrokers asks for when it may create a topic and none is configured:
 * 3, or the number of healthy brokers when fewer (the sentinels have no default and refuse more replicas
 * than healthy brokers). One count serves every topic of a client: GetClusterStatus describes the whole
 * cluster (each broker with its topics), so a producer that writes to a thousand new topics asks once,
 * not a thousand times. Concurrent callers share one request; a count older than `maxAgeMs` is asked
 * again (brokers come and go).
 */
export class DefaultReplicaCount {
  #value: number | undefined;
  #fetchedAt = 0;
  #pending: Promise<number> | undefined;
  #requests = 0;

  constructor(
    private readonly sentinels: SentinelPool,
    private readonly maxAgeMs = DEFAULT_REPLICAS_MAX_AGE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** GetClusterStatus calls made so far. */
  get requests(): number {
    return this.#requests;
  }

  async get(signal?: AbortSignal): Promise<number> {
    if (this.#value !== undefined && this.now() - this.#fetchedAt < this.maxAgeMs) return this.#value;
    if (signal?.aborted) throw new AbortedError(signal.reason, "the sentinel call");
    // The shared request carries no caller's signal: one caller giving up must not fail the others.
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return untilAborted(this.#pending, signal);
  }

  async #fetch(): Promise<number> {
    this.#requests++;
    const status = await this.sentinels.call((client, callOptions) =>
      client.getClusterStatus({}, callOptions),
    );
    const healthy = status.brokers.filter((b) => b.status === BrokerStatus.HEALTHY).length;
    this.#value = Math.max(1, Math.min(DEFAULT_REPLICAS, healthy));
    this.#fetchedAt = this.now();
    return this.#value;
  }
}

/** `promise`, or an AbortedError as soon as `signal` aborts (the promise itself runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError(signal.reason, "the sentinel call"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
