import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { Admin as BaseAdmin, type AdminOptions } from "./admin.js";
import { Consumer as BaseConsumer, type ConsumerOptions } from "./consumer.js";
import { Producer as BaseProducer, type ProducerOptions } from "./producer.js";
import { baseUrlOf, type ClientTransport } from "./transport.js";

export * from "./common.js";
export { MemberReplacedError, PartitionNotOwnedError } from "./errors.js";
export type { ConsumerGroupStats, RunOptions, StartFrom } from "./consumer.js";
export type { AssignedPartition, TopicPartition } from "./topic-partition.js";

export interface WebTransportOptions {
  /**
   * The base URL the page calls for a sentinel of the `sentinels` list (default: the URL itself). A page
   * served from another origin than the sentinels maps them to a same-origin proxy path here.
   */
  sentinelUrl?: (url: string) => string;
  /**
   * The base URL the page calls for a broker at host:port, as the sentinels name it (default
   * `http://host:port`; or a proxy path such as `${location.origin}/broker/${address}`).
   */
  brokerUrl?: (address: string) => string;
  /** Wire protocol: "connect" (default) or "grpc-web". Both run over HTTP/1.1 fetch. */
  protocol?: "connect" | "grpc-web";
  /** Another fetch implementation (tests, service workers). */
  fetch?: typeof globalThis.fetch;
}

/**
 * Connect (binary) or gRPC-web over fetch: unary calls and server streams only, so produce uses the
 * unary ProduceBatches RPC (one call per broker, a batch per partition; unary Produce against older
 * brokers) instead of the SendBatches/SendMessage streams.
 */
export function createWebTransport(options: WebTransportOptions = {}): ClientTransport {
  const transports = new Map<string, Transport>();
  const get = (baseUrl: string): Transport => {
    let transport = transports.get(baseUrl);
    if (!transport) {
      const common = { baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) };
      transport =
        options.protocol === "grpc-web"
          ? createGrpcWebTransport(common)
          : createConnectTransport({ ...common, useBinaryFormat: true });
      transports.set(baseUrl, transport);
    }
    return transport;
  };
  return {
    produceMode: "unary",
    sentinel: (url) => get(options.sentinelUrl ? options.sentinelUrl(url) : baseUrlOf(url)),
    broker: (address) => get(options.brokerUrl ? options.brokerUrl(address) : baseUrlOf(address)),
    // fetch keeps no connection of ours to drop; the browser pools and retries them.
    forget: () => undefined,
    close: () => transports.clear(),
  };
}

/** Either a transport you own, or options for the one the client creates. */
export interface WebTransportChoice {
  transport?: ClientTransport;
  webTransport?: WebTransportOptions;
}

export type WebProducerOptions = Omit<ProducerOptions, "transport" | "ownsTransport"> & WebTransportChoice;
export type WebConsumerOptions = Omit<ConsumerOptions, "transport" | "ownsTransport"> & WebTransportChoice;
export type WebAdminOptions = Omit<AdminOptions, "transport" | "ownsTransport"> & WebTransportChoice;

function withTransport<T extends WebTransportChoice>(
  options: T,
): Omit<T, "webTransport" | "transport"> & { transport: ClientTransport; ownsTransport: boolean } {
  const { webTransport, transport, ...rest } = options;
  return transport
    ? { ...rest, transport, ownsTransport: false }
    : { ...rest, transport: createWebTransport(webTransport), ownsTransport: true };
}

/** A Producer over Connect/gRPC-web (see src/client/producer.ts). */
export class Producer extends BaseProducer {
  constructor(options: WebProducerOptions) {
    super(withTransport(options));
  }
}

/** A Consumer over Connect/gRPC-web (see src/client/consumer.ts). */
export class Consumer extends BaseConsumer {
  constructor(options: WebConsumerOptions) {
    super(withTransport({ ...options, clientId: options.clientId ?? "browser" }));
  }
}

/** An Admin client over Connect/gRPC-web (see src/client/admin.ts). */
export class Admin extends BaseAdmin {
  constructor(options: WebAdminOptions) {
    super(withTransport(options));
  }
}

export function createProducer(options: WebProducerOptions): Producer {
  return new Producer(options);
}

export function createConsumer(options: WebConsumerOptions): Consumer {
  return new Consumer(options);
}

export function createAdmin(options: WebAdminOptions): Admin {
  return new Admin(options);
}
