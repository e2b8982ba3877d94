import type { DescMethod } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { takeEncodedRequests } from "./encoded-requests.js";
import { decodeFetchResponse } from "./fetch-decoding.js";
import { grpcStream, type StreamMetadata, type StreamSessions } from "./grpc-stream-client.js";
import type { GrpcUnaryClient } from "./grpc-unary-client.js";
import { webHeadersOf } from "../common/http2-headers.js";

/**
 * The sentinel reads the SDK makes, sent by the lean unary client (GetBrokers above all: every producer
 * and consumer asks it for each topic, and again after every leader change). Sentinels serve any of
 * them over plain gRPC; GetBrokers on their own fast path (src/server/grpc-fast-path.ts).
 */
export const SENTINEL_LEAN_READS: ReadonlySet<DescMethod> = new Set<DescMethod>([
  SentinelService.method.getBrokers,
  SentinelService.method.getClusterStatus,
  SentinelService.method.listTopics,
  SentinelService.method.getRing,
  SentinelService.method.listAcls,
  SentinelService.method.listGroups,
  SentinelService.method.describeGroup,
]);

/**
 * A Transport that sends the unary calls of `methods` with `unary` (one HTTP/2 session, no connect-node
 * machinery) and everything else — streams, other methods, calls with context values, which only
 * Connect's interceptors read — through `fallback`, the Connect transport to the same peer.
 */
export function leanTransport(
  fallback: Transport,
  unary: GrpcUnaryClient,
  methods: ReadonlySet<DescMethod> = SENTINEL_LEAN_READS,
): Transport {
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      if (!methods.has(method) || contextValues !== undefined || !isRecord(header)) {
        return fallback.unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const result = await unary.call(method, input, { signal, timeoutMs, headers: header });
      return {
        stream: false,
        service: method.parent,
        method,
        message: result.message,
        // Few callers read them: built on demand.
        get header() {
          return webHeadersOf(result.header);
        },
        get trailer() {
          return webHeadersOf(result.trailer);
        },
      };
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      fallback.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

/** Responses the lean stream client decodes by hand: the records a consumer reads. */
const HAND_DECODED = new Map<DescMethod, (bytes: Uint8Array) => unknown>([
  [BrokerService.method.fetchMessages, decodeFetchResponse],
]);

/**
 * A Transport that sends streaming calls with the lean stream client (src/client/grpc-stream-client.ts:
 * requests written as they come, answers decoded straight from the received chunks) over `sessions`,
 * the HTTP/2 connection `fallback` uses too. Unary calls, and streams with a deadline or context values
 * (which only Connect's interceptors read), go through `fallback`. Pre-encoded produce requests
 * (encoded-requests.ts) are sent as they are; fetched records are decoded by fetch-decoding.ts.
 * Uncompressed only: give it a peer that answers without compression (the broker transport unless
 * `brokerCompression` is on).
 */
export function leanStreamTransport(
  fallback: Transport,
  sessions: StreamSessions,
  readMaxBytes: number,
): Transport {
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      fallback.unary(method, signal, timeoutMs, header, input, contextValues),
    stream(method, signal, timeoutMs, header, input, contextValues) {
      if (timeoutMs !== undefined || contextValues !== undefined || !isRecord(header)) {
        return fallback.stream(method, signal, timeoutMs, header, input, contextValues);
      }
      const { headers, queue } = takeEncodedRequests(header ?? {});
      const metadata: StreamMetadata = {};
      const message = grpcStream(sessions, method, input, {
        signal: signal ?? new AbortController().signal,
        headers,
        encoded: queue,
        readMaxBytes,
        metadata,
        decode: HAND_DECODED.get(method),
      });
      return Promise.resolve({
        stream: true as const,
        service: method.parent,
        method,
        message,
        // Read by callers that ask for them (onHeader, onTrailer): once the answer is in.
        get header() {
          return webHeadersOf(metadata.header ?? {});
        },
        get trailer() {
          return webHeadersOf(metadata.trailer ?? {});
        },
      });
    },
  };
}

type HeaderInit = Parameters<Transport["unary"]>[3];

function isRecord(header: HeaderInit): header is Record<string, string> | undefined {
  return header === undefined || (!(header instanceof Headers) && !Array.isArray(header));
}
