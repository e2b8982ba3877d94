import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { TransportPool, type TransportPoolOptions } from "../server/transport-pool.js";
import { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { GouletteError, UnavailableError, errorMessage, isRetryable } from "../errors.js";
import type { SentinelMetrics } from "../observability/metrics.js";

/** Set on forwarded requests: a sentinel that receives one and is not the leader does not forward again. */
export const FORWARDED_HEADER = "goulette-forwarded-by";

export type SentinelClient = Client<typeof SentinelService>;

export interface WriteRouterOptions {
  /** This sentinel's id (sent in the forwarded header). */
  selfId: string;
  selfUrl: string;
  isLeader: () => boolean;
  leaderUrl: () => string | undefined;
  metrics: SentinelMetrics;
  /** How long a write keeps retrying through a leader change before giving up (ms). */
  deadlineMs: number;
  /** Builds the transport to another sentinel (tests and TLS set-ups replace it). */
  transport?: (url: string) => Transport;
  /** Extra headers for forwarded calls (auth). */
  headers?: Record<string, string>;
  /** TLS (CA, client certificate) for connections to the leader. */
  transportOptions?: TransportPoolOptions;
}

/**
 * Routes a write to where it can be carried out: handled here when this sentinel leads, forwarded to
 * the leader's URL (from the election key) otherwise. Retryable failures — no leader yet, leader lost
 * mid-write — are retried until the deadline, so a write survives a leader failover.
 */
export class WriteRouter {
  readonly #clients = new Map<string, SentinelClient>();
  readonly #pool: TransportPool;

  constructor(private readonly options: WriteRouterOptions) {
    this.#pool = new TransportPool(options.transportOptions);
  }

  async route<T>(
    method: string,
    local: () => Promise<T>,
    remote: (client: SentinelClient, headers: Record<string, string>) => Promise<T>,
    forwardedBy: string | null,
  ): Promise<T> {
    const deadline = Date.now() + this.options.deadlineMs;
    let lastError: unknown;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      if (attempt > 0) await sleep(Math.min(500, 50 * attempt));
      let forwarding = false;
      try {
        if (this.options.isLeader()) return await local();
        if (forwardedBy !== null) {
          // Another sentinel thought we lead; let it retry rather than bounce the request around.
          throw new UnavailableError(
            `sentinel ${this.options.selfId} is not the leader (forwarded by ${forwardedBy})`,
          );
        }
        const url = this.options.leaderUrl();
        if (!url || url === this.options.selfUrl)
          throw new UnavailableError("no sentinel leader is elected yet");
        forwarding = true;
        const result = await remote(this.#client(url), {
          ...this.options.headers,
          [FORWARDED_HEADER]: this.options.selfId,
        });
        this.options.metrics.forwarded.inc({ method, outcome: "ok" });
        return result;
      } catch (err) {
        lastError = err;
        // The leader is shedding load: retrying here would only add to it; the client backs off.
        if (isOverload(err)) throw err;
        // Every sentinel write is idempotent (the leader re-checks state before appending), so a
        // forwarded call cut off by the leader's death is safe to send again.
        if (!isRetryable(err) && !(forwarding && isCutOff(err))) {
          if (!this.options.isLeader()) this.options.metrics.forwarded.inc({ method, outcome: "error" });
          throw err;
        }
        if (forwardedBy !== null) throw err;
      }
    }
    if (!this.options.isLeader()) this.options.metrics.forwarded.inc({ method, outcome: "unavailable" });
    throw new UnavailableError(
      `could not reach the sentinel leader within ${this.options.deadlineMs} ms: ${errorMessage(lastError)}`,
    );
  }

  close(): void {
    this.#pool.close();
    this.#clients.clear();
  }

  #client(url: string): SentinelClient {
    let client = this.#clients.get(url);
    if (!client) {
      const transport = this.options.transport?.(url) ?? this.#pool.get(url);
      client = createClient(SentinelService, transport);
      this.#clients.set(url, client);
    }
    return client;
  }
}

/** The leader refused the work as overload (ResourceExhausted), here or through a forwarded call. */
function isOverload(err: unknown): boolean {
  return (err instanceof ConnectError || err instanceof GouletteError) && err.code === Code.ResourceExhausted;
}

/** The connection to the leader broke mid-call (the leader died): the outcome is unknown. */
function isCutOff(err: unknown): boolean {
  return (
    err instanceof ConnectError &&
    [Code.Canceled, Code.Unknown, Code.Internal].includes(err.code) &&
    /stream|socket|ECONN|EPIPE|closed|reset/i.test(err.rawMessage)
  );
}
