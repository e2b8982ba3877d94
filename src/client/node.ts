import type http2 from "node:http2";
import { hostname } from "node:os";
import type { Transport } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  createNodeHttpClient,
  type Http2SessionManager,
} from "@connectrpc/connect-node";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-grpc";
import { Admin as BaseAdmin, type AdminOptions } from "./admin.js";
import { Consumer as BaseConsumer, type ConsumerOptions } from "./consumer.js";
import { withEncodedRequests } from "./encoded-requests.js";
import { leanStreamTransport, leanTransport } from "./lean-transport.js";
import { GrpcUnaryClient } from "./grpc-unary-client.js";
import { WideWindowSessionManager } from "./http2-window.js";
import { Producer as BaseProducer, type ProducerOptions } from "./producer.js";
import { baseUrlOf, type ClientTransport } from "./transport.js";

export * from "./common.js";
export { MemberReplacedError, PartitionNotOwnedError } from "./errors.js";
export type { ConsumerGroupStats, RunOptions, StartFrom } from "./consumer.js";
export type { AssignedPartition, TopicPartition } from "./topic-partition.js";

export interface NodeTransportOptions {
  /** Dial brokers (host:port addresses) over TLS (default false). Sentinel URLs carry their own scheme. */
  tls?: boolean;
  /** TLS settings of every HTTP/2 session (ca, cert, key...), e.g. a private CA. */
  tlsOptions?: http2.SecureClientSessionOptions;
  /**
   * Ping a connection that carried nothing for this long (ms, default 5000); one that does not answer
   * within pingTimeoutMs fails every stream on it: how a frozen broker is noticed.
   */
  pingIntervalMs?: number;
  /** Default 5000 ms. */
  pingTimeoutMs?: number;
  /** Close a connection idle this long (ms, default 60000). */
  idleConnectionTimeoutMs?: number;
  /**
   * Let brokers gzip/brotli their responses (default false). Fetched batches and ack batches are large
   * enough for the server to compress them, which on a LAN costs far more CPU than it saves (consume
   * throughput ×0.1–0.6 in docs/benchmarks.md); turn it on for slow links.
   */
  brokerCompression?: boolean;
  /**
   * Send the SDK's sentinel reads (GetBrokers, GetClusterStatus, ListTopics…) with the lean unary gRPC
   * client (src/client/grpc-unary-client.ts) instead of connect-node's (default true; a quarter to half
   * of its client CPU per call, docs/benchmarks.md). Streams and other calls use Connect either way.
   */
  leanSentinelReads?: boolean;
  /**
   * Send the broker streams (SendBatches, FetchMessages…) with the lean stream client
   * (src/client/grpc-stream-client.ts) instead of connect-node's client pipeline (default true; about
   * a tenth less client CPU per message, docs/benchmarks.md). Ignored with `brokerCompression`.
   */
  leanBrokerStreams?: boolean;
}

/**
 * gRPC over HTTP/2 to sentinels and brokers, one connection per peer (multiplexing every call and the
 * SendMessage streams), closed by close().
 */
export function createNodeTransport(options: NodeTransportOptions = {}): ClientTransport {
  const managers = new Map<string, Http2SessionManager>();
  const transports = new Map<string, Transport>();
  const limits = validateReadWriteMaxBytes(undefined, undefined, undefined);
  const retired = new Set<Http2SessionManager>();
  const get = (baseUrl: string, compression: boolean): Transport => {
    let transport = transports.get(baseUrl);
    if (!transport) {
      const manager = new WideWindowSessionManager(
        baseUrl,
        {
          pingIntervalMs: options.pingIntervalMs ?? 5_000,
          pingTimeoutMs: options.pingTimeoutMs ?? 5_000,
          idleConnectionTimeoutMs: options.idleConnectionTimeoutMs ?? 60_000,
        },
        options.tlsOptions,
      );
      // What connect-node's createGrpcTransport builds, with an HTTP client that sends produce requests
      // the producer encoded itself (encoded-requests.ts).
      transport = createTransport({
        baseUrl,
        httpClient: withEncodedRequests(
          createNodeHttpClient({ httpVersion: "2", sessionProvider: () => manager }),
        ),
        useBinaryFormat: true,
        interceptors: [],
        sendCompression: null,
        acceptCompression: compression ? [compressionGzip, compressionBrotli] : [],
        ...limits,
      });
      if (!compression && options.leanBrokerStreams !== false) {
        transport = leanStreamTransport(transport, manager, limits.readMaxBytes);
      }
      managers.set(baseUrl, manager);
      transports.set(baseUrl, transport);
    }
    return transport;
  };
  const unaryClients = new Map<string, GrpcUnaryClient>();
  const sentinel = (baseUrl: string): Transport => {
    const connect = get(baseUrl, true);
    if (options.leanSentinelReads === false) return connect;
    let unary = unaryClients.get(baseUrl);
    if (!unary) {
      unary = new GrpcUnaryClient(baseUrl, {
        tlsOptions: options.tlsOptions,
        idleConnectionTimeoutMs: options.idleConnectionTimeoutMs,
      });
      unaryClients.set(baseUrl, unary);
    }
    return leanTransport(connect, unary);
  };
  const scheme = options.tls ? "https" : "http";
  return {
    produceMode: "stream",
    encodesRequests: true,
    sentinel: (url) => sentinel(baseUrlOf(url, scheme)),
    broker: (address) => get(baseUrlOf(address, scheme), options.brokerCompression ?? false),
    forget(target) {
      // The next call dials a new connection; calls still running on the old one are left alone (a
      // healthy stream of another partition must not be cut): it closes by itself once idle or dead.
      const baseUrl = baseUrlOf(target, scheme);
      const manager = managers.get(baseUrl);
      if (manager) retired.add(manager);
      for (const old of retired) {
        if (old.state() === "closed" || old.state() === "error") {
          old.abort();
          retired.delete(old);
        }
      }
      managers.delete(baseUrl);
      transports.delete(baseUrl);
      // Its calls in flight finish (or meet their deadlines); the next one dials anew.
      unaryClients.get(baseUrl)?.close();
      unaryClients.delete(baseUrl);
    },
    close() {
      for (const unary of unaryClients.values()) unary.close();
      unaryClients.clear();
      for (const manager of [...managers.values(), ...retired]) manager.abort();
      managers.clear();
      retired.clear();
      transports.clear();
    },
  };
}

/** Either a transport you own, or options for the one the client creates (and closes). */
export interface NodeTransportChoice {
  /** Share one transport between clients; the client then does not close it. */
  transport?: ClientTransport;
  /** Options of the transport the client creates when `transport` is not given. */
  nodeTransport?: NodeTransportOptions;
}

export type NodeProducerOptions = Omit<ProducerOptions, "transport" | "ownsTransport"> & NodeTransportChoice;
export type NodeConsumerOptions = Omit<ConsumerOptions, "transport" | "ownsTransport"> & NodeTransportChoice;
export type NodeAdminOptions = Omit<AdminOptions, "transport" | "ownsTransport"> & NodeTransportChoice;

function withTransport<T extends NodeTransportChoice>(
  options: T,
): Omit<T, "nodeTransport" | "transport"> & { transport: ClientTransport; ownsTransport: boolean } {
  const { nodeTransport, transport, ...rest } = options;
  return transport
    ? { ...rest, transport, ownsTransport: false }
    : { ...rest, transport: createNodeTransport(nodeTransport), ownsTransport: true };
}

/** A Producer over gRPC/HTTP/2 (see src/client/producer.ts). */
export class Producer extends BaseProducer {
  constructor(options: NodeProducerOptions) {
    super(withTransport(options));
  }
}

/** A Consumer over gRPC/HTTP/2 (see src/client/consumer.ts). */
export class Consumer extends BaseConsumer {
  constructor(options: NodeConsumerOptions) {
    super(withTransport({ ...options, clientId: options.clientId ?? `${hostname()}/${process.pid}` }));
  }
}

/** An Admin client over gRPC/HTTP/2 (see src/client/admin.ts). */
export class Admin extends BaseAdmin {
  constructor(options: NodeAdminOptions) {
    super(withTransport(options));
  }
}

export function createProducer(options: NodeProducerOptions): Producer {
  return new Producer(options);
}

export function createConsumer(options: NodeConsumerOptions): Consumer {
  return new Consumer(options);
}

export function createAdmin(options: NodeAdminOptions): Admin {
  return new Admin(options);
}
