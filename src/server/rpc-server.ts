/**
 * The one RPC port of a sentinel or broker: Connect, gRPC and gRPC-web over h2c, TLS (ALPN) or
 * HTTP/1.1, behind the request guard (call-head.ts, request-guard.ts), with the gRPC fast path
 * (grpc-fast-path.ts), CORS and the plain HTTP endpoints. A little over ~400 lines: start-up is one
 * sequence (listener, protocol dispatch by preface, guard, router, idle closing) kept readable in order.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextValues,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { UniversalHandler, UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { DescMethod } from "@bufbuild/protobuf";
import { listenError } from "../common/port-check.js";
import type { Logger } from "../observability/logger.js";
import { callConnectionOf, setCallConnection, setCallReset, type HeaderCheck } from "./call-head.js";
import { createCorsHandler, type CorsPolicy } from "./cors.js";
import type { DecodeLimits } from "./decode-budget.js";
import { handOverDecoded } from "./decoded-messages.js";
import { trackEncoded, withEncodedBody } from "./encoded-responses.js";
import { GrpcFastPath, routeFastStreams, servedFast, type FastMethod } from "./grpc-fast-path.js";
import { peerCertificateKey, peerCertificateOf } from "./identity.js";
import { InflightBudget, setRequestLedger } from "./inflight-budget.js";
import { resolveRpcLimits, type ResolvedRpcLimits, type RpcServerLimits } from "./limits.js";
import { guardRequestDecoding } from "./request-guard.js";
import { serverTlsOptions, type TlsFiles } from "./tls.js";

export type { TlsFiles } from "./tls.js";
export type { RpcServerLimits } from "./limits.js";
export type { CorsPolicy } from "./cors.js";
export type { CallHead, HeaderCheck } from "./call-head.js";

export interface RpcServerOptions {
  /** host:port to listen on; port 0 picks a free one. */
  address: string;
  routes: (router: ConnectRouter) => void;
  interceptors?: Interceptor[];
  /** Plain HTTP handler for everything that is not an RPC (/healthz, /readyz, /metrics). */
  fallback: (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => void;
  /**
   * Largest request message accepted, in bytes (default 4 MiB); larger ones get ResourceExhausted.
   * limits.maxRequestBytes, when set, wins over this.
   */
  readMaxBytes?: number;
  /** Serve over TLS (both HTTP/2 via ALPN and HTTP/1.1); with caFile, mutual TLS. */
  tls?: TlsFiles;
  limits?: RpcServerLimits;
  /** CORS on the RPC routes for these browser origins (off when absent or the list is empty). */
  cors?: CorsPolicy;
  /**
   * Credentials, checked from each call's headers and connection before any byte of its body is read
   * (see request-guard.ts); interceptors run only once the body is decoded.
   */
  authenticate?: HeaderCheck;
  /**
   * Methods (unary, server- or bidi-streaming) served on the gRPC fast path (grpc-fast-path.ts) when
   * called in binary gRPC over HTTP/2: same checks, interceptors and handler, without connect-node's
   * per-call plumbing. Other protocols, and calls the fast path does not take, go through Connect.
   */
  fastMethods?: readonly DescMethod[];
  logger: Logger;
}

export interface RpcServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Receive windows of the server's HTTP/2 connections. HTTP/2's defaults (64 KiB per stream and per
 * connection) make a client stop after every 64 KiB it sends and wait for a WINDOW_UPDATE, which needs
 * this process's event loop to be scheduled: a 256 KiB produce request waited for four such round
 * trips, and every stream of the connection shared one 64 KiB window. What a client may have sent
 * unread stays bounded per connection (below Node's 10 MB maxSessionMemory).
 */
export const SERVER_STREAM_WINDOW_BYTES = 1024 * 1024;
export const SERVER_CONNECTION_WINDOW_BYTES = 8 * 1024 * 1024;

type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * One port for every client: gRPC over HTTP/2 (cleartext h2c, or TLS with ALPN), and Connect and
 * gRPC-web over HTTP/1.1 (browsers, curl). In cleartext the first bytes of each connection decide:
 * the HTTP/2 preface goes to the HTTP/2 server, anything else to the HTTP/1.1 server.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const limits = resolveRpcLimits(definedOnly(options.limits ?? {}));
  const readMaxBytes = limits.maxRequestBytes ?? options.readMaxBytes ?? 4 * 1024 * 1024;
  const { handler, fastPath } = createHandler(
    options,
    admissionOf(options.limits ?? {}, limits, readMaxBytes),
  );
  const [host, portText] = splitHostPort(options.address);
  const sockets = new Set<net.Socket>();
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  const h2Settings: http2.ServerOptions = {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      initialWindowSize: SERVER_STREAM_WINDOW_BYTES,
    },
  };
  const onSession = (session: http2.ServerHttp2Session) => {
    h2Sessions.add(session);
    // The connection window has no SETTINGS entry: a WINDOW_UPDATE raises it once per connection.
    session.setLocalWindowSize(SERVER_CONNECTION_WINDOW_BYTES);
    session.on("close", () => h2Sessions.delete(session));
    // A client breaking the protocol (e.g. more streams than advertised) loses its connection (GOAWAY).
    session.on("error", (err: Error) =>
      options.logger.debug({ err: err }, "HTTP/2 connection closed on a protocol error"),
    );
    closeWhenIdle(session, limits.headersTimeoutMs, limits.idleTimeoutMs);
  };
  // Node only enforces headersTimeout and requestTimeout on HTTP/1.1 servers that track their
  // connections, which starts with 'listening'.
  const http1Timeouts = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  };

  let outer: net.Server;
  let h1: http.Server | undefined;
  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        ...serverTlsOptions(options.tls),
        ...h2Settings,
        allowHTTP1: true,
        handshakeTimeout: limits.headersTimeoutMs,
      },
      handler,
    );
    Object.assign(secure, http1Timeouts);
    if (fastPath) routeFastStreams(secure, fastPath);
    secure.on("session", onSession);
    // A failed handshake (no client certificate, untrusted one) is the client's problem, not ours.
    secure.on("tlsClientError", (err: Error) => options.logger.debug({ err: err }, "TLS handshake failed"));
    outer = secure;
  } else {
    const h2 = http2.createServer(h2Settings, handler);
    if (fastPath) routeFastStreams(h2, fastPath);
    h2.on("session", onSession);
    const plain = http.createServer(handler);
    Object.assign(plain, http1Timeouts);
    plain.emit("listening");
    h1 = plain;
    outer = net.createServer((socket) => dispatchByPreface(socket, h2, plain, limits.headersTimeoutMs));
  }
  outer.maxConnections = limits.maxConnections;
  outer.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    // A taken or forbidden port is one readable line (ListenError), not a raw errno object.
    const failed = (err: NodeJS.ErrnoException) => {
      const need = { host, port: Number(portText), remedy: "stop that process or listen elsewhere" };
      reject(err.code ? listenError(need, err) : err);
    };
    outer.once("error", failed);
    outer.listen(Number(portText), host, () => {
      outer.off("error", failed);
      resolve();
    });
  });
  const bound = outer.address() as net.AddressInfo;
  options.logger.info(
    {
      address: `${host}:${bound.port}`,
      tls: Boolean(options.tls),
      mutualTls: Boolean(options.tls?.caFile),
      corsAllowedOrigins: options.cors?.allowedOrigins.length ? options.cors.allowedOrigins : undefined,
    },
    "serving gRPC (HTTP/2), Connect and gRPC-web (HTTP/1.1) on one port",
  );
  return {
    port: bound.port,
    host,
    async close() {
      await new Promise<void>((resolve) => {
        outer.close(() => resolve());
        h1?.close();
        for (const session of h2Sessions) session.close();
        // Give in-flight requests a moment, then cut what is left (long polls, idle keep-alives).
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 500).unref();
      });
    },
  };
}

/** What a request may cost: its size, decoded and on the wire, and the in-flight budgets. */
interface Admission {
  readMaxBytes: number;
  decode: DecodeLimits;
  budget: InflightBudget;
}

/**
 * The budgets: those left to their defaults grow to fit the request size (one largest request, read
 * and decoded, fits a connection's budget; two fit the process's); those set are taken as they are.
 */
function admissionOf(asked: RpcServerLimits, limits: ResolvedRpcLimits, readMaxBytes: number): Admission {
  const maxDecodedBytes = limits.maxDecodedBytes ?? 2 * readMaxBytes;
  const oneRequest = readMaxBytes + maxDecodedBytes;
  return {
    readMaxBytes,
    decode: { maxDecodedBytes, maxElements: limits.maxRequestElements },
    budget: new InflightBudget({
      processBytes: asked.maxInflightBytes ?? Math.max(limits.maxInflightBytes, 2 * oneRequest),
      connectionBytes:
        asked.maxConnectionInflightBytes ?? Math.max(limits.maxConnectionInflightBytes, oneRequest),
    }),
  };
}

/**
 * Routes RPCs to Connect's handlers, each behind the request guard, and everything else to the
 * fallback. Same as connectNodeAdapter, plus the guard (and its handOverDecoded interceptor, which
 * only this router pairs with it), the per-request ledger of the in-flight budget, and strict UTF-8
 * for JSON.
 */
function createHandler(
  options: RpcServerOptions,
  admission: Admission,
): { handler: NodeHandler; fastPath: GrpcFastPath | undefined } {
  const { readMaxBytes } = admission;
  const jsonOptions = {
    ignoreUnknownFields: false,
    // Connect's JSON decoding replaces invalid UTF-8 with U+FFFD; a request that is not UTF-8 is refused.
    textDecoder: new TextDecoder("utf-8", { fatal: true }),
  };
  const router = createConnectRouter({
    // First, so that every interceptor sees the message the guard decoded (not Connect's placeholder).
    interceptors: [handOverDecoded, ...(options.interceptors ?? [])],
    readMaxBytes,
    jsonOptions,
    // Goulette reads no unknown fields, and keeping them costs an object per field: a 4 MiB request of
    // one-byte fields took seconds of CPU and hundreds of MB (found by the fuzz, seed 987654321).
    binaryOptions: { readUnknownFields: false },
    acceptCompression: [compressionGzip, compressionBrotli],
    // gzip per message made pulling 1 KiB messages ~7× slower (docs/benchmarks.md); on the networks
    // Goulette runs on only large messages are worth compressing.
    compressMinBytes: 64 * 1024,
  });
  const fastPath = options.fastMethods?.length
    ? new GrpcFastPath({
        readMaxBytes,
        decode: admission.decode,
        budget: admission.budget,
        authenticate: options.authenticate,
        mutualTls: Boolean(options.tls?.caFile),
        logger: options.logger,
      })
    : undefined;
  const fast = new Set(options.fastMethods ?? []);
  options.routes(
    keepHandOver(router, (method, impl, interceptors) => {
      if (!fast.has(method) || !servedFast(method)) return;
      fastPath?.register({ method, impl, interceptors: interceptors ?? options.interceptors ?? [] });
    }),
  );
  const paths = new Map<string, UniversalHandler>();
  const guard = { readMaxBytes, decode: admission.decode, authenticate: options.authenticate };
  for (const h of router.handlers) paths.set(h.requestPath, guardRequestDecoding(h, guard));
  const cors = createCorsHandler(options.cors);
  const serve: NodeHandler = (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (!handler) {
      options.fallback(req, res);
      return;
    }
    // A preflight is answered here; an RPC from an allowed origin gets its CORS headers now.
    if (cors?.(req, res)) return;
    if ("stream" in req) {
      // Answered before the request was read to its end (an error mid-upload): reset the stream, as
      // gRPC servers do, or a client still sending waits on flow control forever, holding a stream slot.
      // Node's compatibility layer always asks for trailers once the response body is done.
      req.stream.once("wantTrailers", () =>
        setImmediate(() => {
          if (!req.complete && !req.stream.closed) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }),
      );
    } else {
      res.once("finish", () => discardUnreadBody(req, readMaxBytes));
    }
    const contextValues = createContextValues();
    // Under mutual TLS the caller's verified certificate identifies it (identity.ts), read only if asked.
    if (options.tls?.caFile) contextValues.set(peerCertificateKey, peerCertificateOf(req.socket));
    // Per connection: an HTTP/2 session carries many calls; an HTTP/1.1 socket one at a time.
    const ledger = admission.budget.ledger(("stream" in req ? req.stream.session : undefined) ?? req.socket);
    res.once("close", () => ledger.close());
    setRequestLedger(contextValues, ledger);
    setCallConnection(contextValues, callConnectionOf(req.socket));
    setCallReset(contextValues, () => {
      if ("stream" in req) req.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      else req.socket.destroy();
    });
    const encoded = trackEncoded(contextValues, req.headers);
    handler(universalRequestFromNodeRequest(req, res, undefined, contextValues))
      .then((uRes) => universalResponseToNodeResponse(withEncodedBody(uRes, encoded), res))
      .catch((reason: unknown) => {
        // Aborted: the client went away mid-response; nothing to answer.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.warn(
          { method: handler.method.name, err: reason },
          "could not complete an RPC response",
        );
      });
  };
  return { handler: serve, fastPath };
}

/** A method's implementation as routed, with the interceptors given for it (undefined: the router's). */
type RoutedMethod = (
  method: DescMethod,
  impl: FastMethod["impl"],
  interceptors: readonly Interceptor[] | undefined,
) => void;

/**
 * Per-service (or per-method) interceptors replace the router's: handOverDecoded goes first in those
 * too, or their handlers would get the guard's empty placeholders instead of the requests. Each
 * method's implementation is also reported to `routed` (the fast path serves some of them).
 */
function keepHandOver(router: ConnectRouter, routed: RoutedMethod): ConnectRouter {
  const withHandOver = (o?: Partial<UniversalHandlerOptions>) =>
    o?.interceptors ? { ...o, interceptors: [handOverDecoded, ...o.interceptors] } : o;
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, o) {
      router.service(service, implementation, withHandOver(o));
      const methods = implementation as Record<string, FastMethod["impl"] | undefined>;
      for (const method of service.methods) {
        const fn = methods[method.localName];
        if (typeof fn === "function") routed(method, fn.bind(implementation), o?.interceptors);
      }
      return this;
    },
    rpc(method, impl, o) {
      router.rpc(method, impl, withHandOver(o));
      routed(method, impl as FastMethod["impl"], o?.interceptors);
      return this;
    },
  };
  return wrapped;
}

/**
 * HTTP/1.1: a response sent before the request body was read to its end (an error in the first of two
 * messages, an envelope over the size limit) leaves the rest of the body unread. Node parses the next
 * request of a keep-alive connection only once the body is consumed, so the client's next call on that
 * connection would never be answered. The rest is read and dropped, up to maxBytes; a client sending
 * more than that loses the connection.
 */
function discardUnreadBody(req: http.IncomingMessage, maxBytes: number): void {
  if (req.complete || req.destroyed) return;
  let left = maxBytes;
  const discard = () => {
    for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
      left -= chunk.length;
      if (left < 0) {
        req.off("readable", discard);
        req.socket.destroy();
        return;
      }
    }
  };
  req.on("readable", discard);
  req.once("end", () => req.off("readable", discard));
  discard();
}

/**
 * Cleartext: waits for enough bytes to tell the HTTP/2 preface from an HTTP/1.1 request line (both may
 * arrive a byte at a time), then hands the socket over. A connection that says nothing in time is closed.
 */
function dispatchByPreface(
  socket: net.Socket,
  h2: http2.Http2Server,
  h1: http.Server,
  timeoutMs: number,
): void {
  let head = Buffer.alloc(0);
  // A deadline, not an idle timeout: a client dribbling a byte at a time must not reset it.
  const deadline = setTimeout(() => socket.destroy(), timeoutMs);
  deadline.unref();
  const onError = () => socket.destroy();
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      head = Buffer.concat([head, chunk]);
    }
    const n = Math.min(head.length, HTTP2_PREFACE.length);
    const http2Prefix = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
    if (head.length === 0 || (http2Prefix && head.length < HTTP2_PREFACE.length)) return;
    socket.off("readable", onReadable);
    socket.off("error", onError);
    clearTimeout(deadline);
    socket.unshift(head);
    (http2Prefix ? h2 : h1).emit("connection", socket);
  };
  socket.once("close", () => clearTimeout(deadline));
  socket.on("error", onError);
  socket.on("readable", onReadable);
}

/**
 * Closes an HTTP/2 connection that opens no stream within firstStreamMs (a slow or silent client), or
 * that has had no stream open for idleMs since (GOAWAY, then a hard close).
 */
function closeWhenIdle(session: http2.ServerHttp2Session, firstStreamMs: number, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(() => {
      session.close();
      setTimeout(() => session.destroy(), 1_000).unref();
    }, ms);
    timer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed && !session.destroyed) arm(idleMs);
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm(firstStreamMs);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function splitHostPort(address: string): [string, string] {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!match) throw new Error(`listen address '${address}' is not host:port`);
  return [match[1] ?? (match[2] || "0.0.0.0"), match[3] as string];
}
