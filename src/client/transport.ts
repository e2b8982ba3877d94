import type { Transport } from "@connectrpc/connect";

/**
 * How the SDK reaches sentinels and brokers. The Producer, Consumer and Admin never create connections
 * themselves: an entry point injects one of these (src/client/node.ts: gRPC over HTTP/2;
 * src/client/web.ts: Connect or gRPC-web over fetch), so the same client code runs in Node and in
 * browsers.
 */
export interface ClientTransport {
  /** A transport to the sentinel at `url` (as given in the client's `sentinels` list). */
  sentinel(url: string): Transport;
  /** A transport to the broker at `address` (host:port, as the sentinels report it). */
  broker(address: string): Transport;
  /**
   * How produce requests reach a broker. "stream": one long-lived SendMessage stream per broker (needs
   * full-duplex HTTP/2). "unary": one Produce call per batch (HTTP/1.1 clients such as browsers).
   */
  readonly produceMode: "stream" | "unary";
  /**
   * Broker transports send stream requests the producer encoded itself (src/client/encoded-requests.ts:
   * placeholders swapped for queued envelopes). Absent or false: every request goes through Connect.
   */
  readonly encodesRequests?: boolean;
  /** Drops the connection to a sentinel URL or broker address that failed, so the next call dials anew. */
  forget(target: string): void;
  /** Closes every connection. */
  close(): void;
}

/** `host:port` or a URL → a base URL. */
export function baseUrlOf(address: string, scheme: "http" | "https" = "http"): string {
  return /^https?:\/\//.test(address) ? address.replace(/\/+$/, "") : `${scheme}://${address}`;
}
