import { InvalidArgumentError } from "../errors.js";

/** Bounds on what clients can hold on the server (slow clients, many connections, many streams, big requests). */
export interface RpcServerLimits {
  /**
   * Largest request message accepted, in bytes (after decompression); larger ones get ResourceExhausted.
   * Overrides the server's own default (RpcServerOptions.readMaxBytes).
   */
  maxRequestBytes?: number;
  /** Most TCP connections open at once; further ones are closed as they are accepted (default 8192). */
  maxConnections?: number;
  /** Most RPCs in flight on one HTTP/2 connection (the SETTINGS_MAX_CONCURRENT_STREAMS it advertises; default 1000). */
  maxConcurrentStreams?: number;
  /**
   * Time a new connection has to say which protocol it speaks (first bytes, or the TLS handshake), and an
   * HTTP/1.1 request to send all its headers, in ms (default 10 s). This bounds slowloris clients.
   */
  headersTimeoutMs?: number;
  /** Time an HTTP/1.1 request has to send its whole body, in ms (default 60 s; responses may take longer). */
  requestTimeoutMs?: number;
  /** An HTTP/1.1 keep-alive connection with no request for this long is closed, in ms (default 65 s). */
  keepAliveTimeoutMs?: number;
  /** An HTTP/2 connection with no RPC in flight for this long is closed (GOAWAY), in ms (default 5 min). */
  idleTimeoutMs?: number;
  /**
   * Request bytes the process holds at once (bodies read and not yet answered, plus the estimated size
   * of their decoded messages); a request that would pass it gets ResourceExhausted with a retry hint
   * (default 128 MiB; at least twice the request size, which is raised to fit).
   */
  maxInflightBytes?: number;
  /** The same budget for the requests of one connection (default 48 MiB; at least the request size). */
  maxConnectionInflightBytes?: number;
  /**
   * Estimated memory one decoded request message may take (default: twice the request size); a
   * larger one is refused with ResourceExhausted before it is decoded.
   */
  maxDecodedBytes?: number;
  /** Elements of repeated fields in one request message (default 100,000); more: InvalidArgument. */
  maxRequestElements?: number;
}

/** Limits whose default depends on the request size, which each server sets. */
type SizedLimit = "maxRequestBytes" | "maxDecodedBytes";

/** Every limit but the request size, whose default each server sets (see RpcServerOptions.readMaxBytes). */
export type ResolvedRpcLimits = Required<Omit<RpcServerLimits, SizedLimit>> &
  Pick<RpcServerLimits, SizedLimit>;

export const DEFAULT_RPC_LIMITS: Readonly<Required<Omit<RpcServerLimits, SizedLimit>>> = {
  maxConnections: 8192,
  maxConcurrentStreams: 1000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 65_000,
  idleTimeoutMs: 300_000,
  maxInflightBytes: 128 * 1024 * 1024,
  maxConnectionInflightBytes: 48 * 1024 * 1024,
  maxRequestElements: 100_000,
};

/** Largest timer Node accepts (ms); a longer one fires at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS is 31 bits in Node. */
export const MAX_CONCURRENT_STREAMS = 2 ** 31 - 1;
/** A request message beyond this is not an RPC (Connect reads a message into one buffer). */
export const MAX_REQUEST_BYTES = 1024 * 1024 * 1024;

/** Range each limit must be in: [min, max], whole numbers. */
export const RPC_LIMIT_RANGES: Readonly<Record<keyof RpcServerLimits, readonly [number, number]>> = {
  maxRequestBytes: [1024, MAX_REQUEST_BYTES],
  maxConnections: [1, 1_000_000],
  maxConcurrentStreams: [1, MAX_CONCURRENT_STREAMS],
  headersTimeoutMs: [100, MAX_TIMEOUT_MS],
  requestTimeoutMs: [100, MAX_TIMEOUT_MS],
  keepAliveTimeoutMs: [100, MAX_TIMEOUT_MS],
  idleTimeoutMs: [100, MAX_TIMEOUT_MS],
  maxInflightBytes: [1024, Number.MAX_SAFE_INTEGER],
  maxConnectionInflightBytes: [1024, Number.MAX_SAFE_INTEGER],
  maxDecodedBytes: [1024, Number.MAX_SAFE_INTEGER],
  maxRequestElements: [1, 1_000_000_000],
};

/**
 * The limits with defaults filled in, checked: every value a whole number in its range, and the header
 * deadline within the request deadline (as Node's own HTTP server requires). Throws InvalidArgumentError
 * naming the limit and the value; `names` maps a limit to what the user typed (a flag, say).
 */
export function resolveRpcLimits(
  limits: RpcServerLimits = {},
  names: Partial<Record<keyof RpcServerLimits, string>> = {},
): ResolvedRpcLimits {
  const resolved: ResolvedRpcLimits = { ...DEFAULT_RPC_LIMITS };
  for (const key of Object.keys(RPC_LIMIT_RANGES) as (keyof RpcServerLimits)[]) {
    const value = limits[key];
    if (value === undefined) continue;
    const [min, max] = RPC_LIMIT_RANGES[key];
    const name = names[key] ?? key;
    if (!Number.isInteger(value))
      throw new InvalidArgumentError(`${name} must be a whole number, got ${value}`);
    if (value < min || value > max) {
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${value}`);
    }
    resolved[key] = value;
  }
  if (resolved.headersTimeoutMs > resolved.requestTimeoutMs) {
    const headers = names.headersTimeoutMs ?? "headersTimeoutMs";
    const request = names.requestTimeoutMs ?? "requestTimeoutMs";
    throw new InvalidArgumentError(
      `${headers} is ${resolved.headersTimeoutMs} ms, more than ${request} (${resolved.requestTimeoutMs} ms): ` +
        "a request's headers are part of the request",
    );
  }
  return resolved;
}
