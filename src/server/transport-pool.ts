import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

export interface TransportPoolOptions {
  /** Close an HTTP/2 connection idle for this long (ms). */
  idleConnectionTimeoutMs?: number;
}

/**
 * gRPC transports to other nodes, one HTTP/2 connection per URL, all closed by close() so a stopped
 * component leaves no socket behind.
 */
export class TransportPool {
  readonly #managers = new Map<string, Http2SessionManager>();
  readonly #transports = new Map<string, Transport>();

  constructor(private readonly options: TransportPoolOptions = {}) {}

  get(baseUrl: string): Transport {
    let transport = this.#transports.get(baseUrl);
    if (!transport) {
      const manager = new Http2SessionManager(baseUrl, {
        idleConnectionTimeoutMs: this.options.idleConnectionTimeoutMs ?? 60_000,
      });
      transport = createGrpcTransport({ baseUrl, sessionManager: manager });
      this.#managers.set(baseUrl, manager);
      this.#transports.set(baseUrl, transport);
    }
    return transport;
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
