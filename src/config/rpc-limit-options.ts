import { InvalidArgumentError } from "../errors.js";
import {
  DEFAULT_RPC_LIMITS,
  RPC_LIMIT_RANGES,
  resolveRpcLimits,
  type RpcServerLimits,
} from "../server/limits.js";
import { envName, option, type OptionValues } from "./options.js";

const range = (key: keyof RpcServerLimits) => {
  const [min, max] = RPC_LIMIT_RANGES[key];
  return { min, max, integer: true };
};

/**
 * The RPC server's bounds, shared by `goulette sentinel` and `goulette broker` (spread into their
 * schemas): flags --rpc-*, env GOULETTE_RPC_*, YAML rpc-* keys. Defaults are the server's own.
 */
export const rpcLimitOptions = {
  "rpc-max-request-bytes": option({
    kind: "number",
    description:
      "Largest request message in bytes, after decompression (0: sentinel 4 MiB; broker the larger of " +
      "16 MiB and 4 × (max-message-bytes + 64 KiB))",
    default: 0,
    ...range("maxRequestBytes"),
    min: 0,
  }),
  "rpc-max-connections": option({
    kind: "number",
    description: "Most client connections open at once; further ones are closed as they arrive",
    default: DEFAULT_RPC_LIMITS.maxConnections,
    ...range("maxConnections"),
  }),
  "rpc-max-concurrent-streams": option({
    kind: "number",
    description: "Most RPCs in flight on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)",
    default: DEFAULT_RPC_LIMITS.maxConcurrentStreams,
    ...range("maxConcurrentStreams"),
  }),
  "rpc-headers-timeout": option({
    kind: "number",
    description:
      "ms a new connection has to start speaking (TLS handshake, first bytes) and an HTTP/1.1 request to send its headers",
    default: DEFAULT_RPC_LIMITS.headersTimeoutMs,
    ...range("headersTimeoutMs"),
  }),
  "rpc-request-timeout": option({
    kind: "number",
    description: "ms an HTTP/1.1 request has to send its whole body (≥ rpc-headers-timeout)",
    default: DEFAULT_RPC_LIMITS.requestTimeoutMs,
    ...range("requestTimeoutMs"),
  }),
  "rpc-keepalive-timeout": option({
    kind: "number",
    description: "ms an idle HTTP/1.1 keep-alive connection stays open",
    default: DEFAULT_RPC_LIMITS.keepAliveTimeoutMs,
    ...range("keepAliveTimeoutMs"),
  }),
  "rpc-idle-timeout": option({
    kind: "number",
    description: "ms an HTTP/2 connection with no RPC in flight stays open (then GOAWAY)",
    default: DEFAULT_RPC_LIMITS.idleTimeoutMs,
    ...range("idleTimeoutMs"),
  }),
  "rpc-max-inflight-bytes": option({
    kind: "number",
    description:
      "Request bytes held at once by the process, read and decoded; beyond it ResourceExhausted with a " +
      "retry hint (0: 128 MiB, or twice the request size and its decoded size if larger)",
    default: 0,
    ...range("maxInflightBytes"),
    min: 0,
  }),
  "rpc-max-connection-inflight-bytes": option({
    kind: "number",
    description:
      "Request bytes held at once for one connection (0: 48 MiB, or the request size and its decoded size if larger)",
    default: 0,
    ...range("maxConnectionInflightBytes"),
    min: 0,
  }),
  "rpc-max-decoded-bytes": option({
    kind: "number",
    description:
      "Estimated memory one decoded request may take; larger ones get ResourceExhausted before decoding (0: twice the request size)",
    default: 0,
    ...range("maxDecodedBytes"),
    min: 0,
  }),
  "rpc-max-request-elements": option({
    kind: "number",
    description: "Elements of repeated fields in one request; more get InvalidArgument before decoding",
    default: DEFAULT_RPC_LIMITS.maxRequestElements,
    ...range("maxRequestElements"),
  }),
};

export type RpcLimitOptionValues = OptionValues<typeof rpcLimitOptions>;

/** Each limit's flag, for error messages. */
const FLAGS: Record<keyof RpcServerLimits, string> = {
  maxRequestBytes: "--rpc-max-request-bytes",
  maxConnections: "--rpc-max-connections",
  maxConcurrentStreams: "--rpc-max-concurrent-streams",
  headersTimeoutMs: "--rpc-headers-timeout",
  requestTimeoutMs: "--rpc-request-timeout",
  keepAliveTimeoutMs: "--rpc-keepalive-timeout",
  idleTimeoutMs: "--rpc-idle-timeout",
  maxInflightBytes: "--rpc-max-inflight-bytes",
  maxConnectionInflightBytes: "--rpc-max-connection-inflight-bytes",
  maxDecodedBytes: "--rpc-max-decoded-bytes",
  maxRequestElements: "--rpc-max-request-elements",
};

/** The flag and env var of a limit, as error messages name it: "--rpc-x (GOULETTE_RPC_X)". */
function nameOf(key: keyof RpcServerLimits): string {
  const flag = FLAGS[key];
  return `${flag} (${envName(flag.slice(2))})`;
}

/**
 * The RpcServerLimits these options ask for, checked as a whole (the header deadline within the
 * request deadline, and a request size that fits the largest message the process must accept).
 * Throws InvalidArgumentError naming the option.
 */
export function rpcLimitsFromOptions(
  o: RpcLimitOptionValues,
  needs: { minRequestBytes?: number; minRequestBytesReason?: string } = {},
): RpcServerLimits {
  const limits: RpcServerLimits = {
    ...(o.rpcMaxRequestBytes > 0 ? { maxRequestBytes: o.rpcMaxRequestBytes } : {}),
    maxConnections: o.rpcMaxConnections,
    maxConcurrentStreams: o.rpcMaxConcurrentStreams,
    headersTimeoutMs: o.rpcHeadersTimeout,
    requestTimeoutMs: o.rpcRequestTimeout,
    keepAliveTimeoutMs: o.rpcKeepaliveTimeout,
    idleTimeoutMs: o.rpcIdleTimeout,
    ...(o.rpcMaxInflightBytes > 0 ? { maxInflightBytes: o.rpcMaxInflightBytes } : {}),
    ...(o.rpcMaxConnectionInflightBytes > 0
      ? { maxConnectionInflightBytes: o.rpcMaxConnectionInflightBytes }
      : {}),
    ...(o.rpcMaxDecodedBytes > 0 ? { maxDecodedBytes: o.rpcMaxDecodedBytes } : {}),
    maxRequestElements: o.rpcMaxRequestElements,
  };
  const names = Object.fromEntries(
    (Object.keys(FLAGS) as (keyof RpcServerLimits)[]).map((key) => [key, nameOf(key)]),
  );
  resolveRpcLimits(limits, names);
  const min = needs.minRequestBytes;
  if (limits.maxRequestBytes !== undefined && min !== undefined && limits.maxRequestBytes < min) {
    throw new InvalidArgumentError(
      `${nameOf("maxRequestBytes")} is ${limits.maxRequestBytes}, below the ${min} bytes ` +
        `${needs.minRequestBytesReason ?? "this server needs"}`,
    );
  }
  return limits;
}
