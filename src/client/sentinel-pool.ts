import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { InvalidArgumentError } from "../errors.js";
import { validateListenerName } from "../fsm/listeners.js";
import { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { AbortedError, NoSentinelReachableError, toClientError } from "./errors.js";
import type { ClientEvent } from "./events.js";
import type { ClientTransport } from "./transport.js";

export interface SentinelPoolOptions {
  /** Sentinel URLs; at least one. */
  urls: readonly string[];
  transport: ClientTransport;
  /** Headers of every call (authorization). */
  headers: Record<string, string>;
  /** Deadline of one call to one sentinel (ms). */
  timeoutMs: number;
  /** The brokers' listener whose addresses the client asks for (undefined or "": the sentinels choose). */
  listener?: string | undefined;
  emit: (event: ClientEvent) => void;
}

/** Per-call options a SentinelPool passes to the function it runs. */
export interface SentinelCallOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  headers: Record<string, string>;
}

/**
 * Codes after which another sentinel may do better: this one is down, unreachable or not ready.
 * ResourceExhausted is not one: the leader refuses work it cannot commit yet (every sentinel forwards
 * to it), so asking the others would only add load; the caller backs off and retries.
 */
const FAIL_OVER = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Unknown,
  Code.Internal,
  Code.Unimplemented,
  Code.Aborted,
  Code.Canceled,
]);

/**
 * Calls "any sentinel of the list": sticks to the one that answered last, and on a failure that
 * another sentinel could avoid moves on to the next URL, round the list once.
 */
export class SentinelPool {
  readonly urls: readonly string[];
  /** The listener every request that returns broker addresses names ("": none, the sentinels choose). */
  readonly listener: string;
  #current = 0;
  #failovers = 0;
  readonly #clients = new Map<string, Client<typeof SentinelService>>();

  constructor(private readonly options: SentinelPoolOptions) {
    if (options.urls.length === 0) throw new InvalidArgumentError("at least one sentinel URL is needed");
    this.urls = options.urls;
    this.listener = options.listener ?? "";
    if (this.listener !== "") validateListenerName(this.listener);
  }

  /** The URL in use. */
  get current(): string {
    return this.urls[this.#current] as string;
  }

  /** How many times the pool moved to another sentinel. */
  get failovers(): number {
    return this.#failovers;
  }

  async call<T>(
    fn: (client: Client<typeof SentinelService>, options: SentinelCallOptions) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const tried: string[] = [];
    const errors: Error[] = [];
    const start = this.#current;
    for (let i = 0; i < this.urls.length; i++) {
      const index = (start + i) % this.urls.length;
      const url = this.urls[index] as string;
      if (signal?.aborted) throw new AbortedError(signal.reason, "the sentinel call");
      try {
        const result = await fn(this.#client(url), {
          timeoutMs: this.options.timeoutMs,
          headers: this.options.headers,
          ...(signal ? { signal } : {}),
        });
        if (index !== this.#current) {
          const from = this.current;
          this.#current = index;
          this.#failovers++;
          this.options.emit({
            type: "sentinel-failover",
            from,
            to: url,
            error: errors[errors.length - 1] ?? new Error("unknown"),
          });
        }
        return result;
      } catch (err) {
        if (signal?.aborted) throw new AbortedError(signal.reason, "the sentinel call");
        if (!(err instanceof ConnectError) || !FAIL_OVER.has(err.code)) throw toClientError(err);
        this.options.transport.forget(url);
        this.#clients.delete(url);
        tried.push(url);
        errors.push(err);
      }
    }
    throw new NoSentinelReachableError(tried, errors);
  }

  #client(url: string): Client<typeof SentinelService> {
    let client = this.#clients.get(url);
    if (!client) {
      client = createClient(SentinelService, this.options.transport.sentinel(url));
      this.#clients.set(url, client);
    }
    return client;
  }
}
