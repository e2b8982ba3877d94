import type http2 from "node:http2";
import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { WideWindowSessionManager } from "../client/http2-window.js";
import { clientTlsOptions, type ClientTlsOptions } from "./tls.js";

export interface TransportPoolOptions {
  /** Close an HTTP/2 connection idle for this long (ms). */
  idleConnectionTimeoutMs?: number;
  /** CA to trust and client certificate to present on https connections (mutual TLS). */
  tls?: ClientTlsOptions;
  /**
   * Scheme for bare `host:port` addresses given to get() (broker addresses are host:port): "https" in a
   * cluster with TLS on. Default: "https" when `tls` is set, else "http".
   */
  defaultScheme?: "http" | "https";
  /**
   * Receive with wide HTTP/2 flow-control windows (4 MiB per stream, 16 MiB per connection) instead of
   * HTTP/2's 64 KiB: for streams that bring bulk data to this node (a follower's replication answers,
   * up to 1 MiB per partition), which otherwise wait for a WINDOW_UPDATE round trip every 64 KiB.
   */
  wideWindows?: boolean;
}

/**
 * gRPC transports to other nodes, one HTTP/2 connection per URL, all closed by close() so a stopped
 * component leaves no socket behind.
 */
export class TransportPool {
  readonly #managers = new Map<string, Http2SessionManager>();
  readonly #transports = new Map<string, Transport>();
  readonly #nodeOptions: http2.SecureClientSessionOptions;
  /** The scheme bare host:port addresses get. */
  readonly scheme: "http" | "https";

  constructor(private readonly options: TransportPoolOptions = {}) {
    // Certificate files are read once: a component restarted after a renewal picks up the new ones.
    this.#nodeOptions = options.tls ? clientTlsOptions(options.tls) : {};
    this.scheme = options.defaultScheme ?? (options.tls ? "https" : "http");
  }

  /** The transport to a base URL, or to a bare host:port (which gets this pool's scheme). */
  get(baseUrlOrAddress: string): Transport {
    const baseUrl = toBaseUrl(baseUrlOrAddress, this.scheme);
    let transport = this.#transports.get(baseUrl);
    if (!transport) {
      transport = createGrpcTransport({
        baseUrl,
        sessionManager: this.#manager(baseUrl),
        // connect-node accepts gzip and brotli unless told otherwise, and servers compress answers of
        // 64 KiB and more: replication answers were gzipped by the leader and inflated by the follower
        // (8 % and 15 % of their CPU under acks=all load, docs/benchmarks.md). Traffic between the
        // cluster's own nodes stays uncompressed; compressing records is the producer's choice.
        acceptCompression: [],
      });
      this.#transports.set(baseUrl, transport);
    }
    return transport;
  }

  /**
   * The HTTP/2 connection to the same node, for calls made without connect-node's client
   * (src/client/grpc-stream-client.ts): one connection per URL whichever way it is used.
   */
  sessions(baseUrlOrAddress: string): Http2SessionManager {
    return this.#manager(toBaseUrl(baseUrlOrAddress, this.scheme));
  }

  #manager(baseUrl: string): Http2SessionManager {
    let manager = this.#managers.get(baseUrl);
    if (!manager) {
      const Manager = this.options.wideWindows ? WideWindowSessionManager : Http2SessionManager;
      manager = new Manager(
        baseUrl,
        { idleConnectionTimeoutMs: this.options.idleConnectionTimeoutMs ?? 60_000 },
        this.#nodeOptions,
      );
      this.#managers.set(baseUrl, manager);
    }
    return manager;
  }

  close(): void {
    for (const manager of this.#managers.values()) manager.abort();
    this.#managers.clear();
    this.#transports.clear();
  }
}

/** `host:port` or a URL → a base URL. */
export function toBaseUrl(address: string, scheme: "http" | "https" = "http"): string {
  return /^https?:\/\//.test(address) ? address : `${scheme}://${address}`;
}
