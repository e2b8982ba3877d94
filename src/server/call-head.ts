import type net from "node:net";
import type tls from "node:tls";
import type { PeerCertificate } from "node:tls";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createContextKey, type ContextValues } from "@connectrpc/connect";

/** The connection a call arrived on, as far as authentication needs it. */
export interface CallConnection {
  readonly remoteAddress: string | undefined;
  /** The client certificate under mutual TLS (undefined in cleartext or without one). */
  peerCertificate(): PeerCertificate | undefined;
}

/**
 * What is known of a call before any byte of its body is read: the method, the headers, the
 * connection. Credentials are checked from this alone, so that a caller without them costs the server
 * its headers and nothing more (see HeaderCheck).
 */
export interface CallHead {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly header: Headers;
  readonly connection: CallConnection | undefined;
  /** The call's context values: a check may leave what it found there (an identity) for the handler. */
  readonly contextValues: ContextValues;
}

/**
 * Refuses a call from its head alone by throwing (a ConnectError, or a GouletteError with its code);
 * runs before the request guard reads the body. May be async (a revocation list, say), but must not
 * read the body.
 */
export type HeaderCheck = (head: CallHead) => void | Promise<void>;

const connectionKey = createContextKey<CallConnection | undefined>(undefined, {
  description: "the connection a call arrived on",
});

/** The connection of a request's socket (TLS or not). */
export function callConnectionOf(socket: net.Socket | undefined): CallConnection {
  const s = socket as (net.Socket & Partial<Pick<tls.TLSSocket, "getPeerCertificate">>) | undefined;
  return {
    remoteAddress: s?.remoteAddress,
    peerCertificate() {
      const certificate = s?.getPeerCertificate?.();
      return certificate && Object.keys(certificate).length > 0 ? certificate : undefined;
    },
  };
}

/** Records the call's connection in its context values (done by the RPC server per request). */
export function setCallConnection(values: ContextValues, connection: CallConnection): void {
  values.set(connectionKey, connection);
}

export function callConnection(values: ContextValues | undefined): CallConnection | undefined {
  return values?.get(connectionKey);
}

const resetKey = createContextKey<(() => void) | undefined>(undefined, {
  description: "ends a call at once, whatever its response holds",
});

/** Records how to end the call at once (done by the RPC server per request). */
export function setCallReset(values: ContextValues, reset: () => void): void {
  values.set(resetKey, reset);
}

/**
 * Ends the call now, without its queued response: HTTP/2 RST_STREAM with ENHANCE_YOUR_CALM, which
 * Connect and gRPC clients report as ResourceExhausted; on HTTP/1.1 the connection is closed. For a
 * client that does not read what it asked for: an error response would wait behind the unread ones.
 */
export function resetCall(values: ContextValues): void {
  values.get(resetKey)?.();
}
