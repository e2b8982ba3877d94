import http2 from "node:http2";
import {
  create,
  isMessage,
  toBinary,
  type DescMethod,
  type DescMethodUnary,
  type Message,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { toConnectError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import {
  callConnection,
  callConnectionOf,
  setCallConnection,
  setCallReset,
  type HeaderCheck,
} from "./call-head.js";
import type { DecodeLimits } from "./decode-budget.js";
import { peerCertificateKey, peerCertificateOf } from "./identity.js";
import { setRequestLedger, type InflightBudget } from "./inflight-budget.js";
import { envelope, readUnaryMessage } from "./grpc-envelope.js";
import {
  copyHeaders,
  endResponse,
  invokeStream,
  readRequestMessages,
  writeStreamResponse,
  type FastStreamMethod,
} from "./grpc-fast-stream.js";
import { trackEncoded } from "./encoded-responses.js";
import { decodeChecked } from "./request-guard.js";
import { webHeadersOf } from "../common/http2-headers.js";

/** A method's implementation, as the router was given it, with the interceptors it runs behind. */
export interface FastMethod {
  readonly method: DescMethod;
  readonly impl: (input: never, context: HandlerContext) => unknown;
  readonly interceptors: readonly Interceptor[];
}

/** Method kinds the fast path serves (a client-streaming call goes through Connect). */
export function servedFast(method: DescMethod): boolean {
  return method.methodKind !== "client_streaming";
}

export interface GrpcFastPathOptions {
  /** Largest request message on the wire, in bytes (ResourceExhausted above it). */
  readMaxBytes: number;
  /** Bounds on the decoded message (decode-budget.ts). */
  decode: DecodeLimits;
  /** The in-flight budget every request's bytes are charged to. */
  budget: InflightBudget;
  /** Credentials, checked from the headers before any body byte is kept. */
  authenticate?: HeaderCheck | undefined;
  /** Under mutual TLS: the peer certificate is offered to the identity check, as on the Connect path. */
  mutualTls: boolean;
  logger: Logger;
}

const { NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;
const RESPONSE_CONTENT_TYPE = "application/grpc+proto";
/** The context's signal once the call is answered: a reason given, so no DOMException is built per call. */
const CALL_DONE = new ConnectError("the call is over", Code.Canceled);
const CLIENT_GONE = new ConnectError("the client cancelled the call", Code.Canceled);

/**
 * The gRPC fast path: a call of a registered method (unary, server-streaming or bidi-streaming), in
 * binary gRPC over HTTP/2, is served straight from its HTTP/2 stream instead of through connect-node's
 * router, whose per-call plumbing (Node's compatibility request and response objects, async-iterable
 * pipelines, abort controllers whose reason-less aborts build DOMExceptions) cost the sentinel 4–6 ×
 * what a grpc-js server spends per GetBrokers, and a broker a quarter of its CPU per message at low
 * rates (docs/benchmarks.md). Everything else — Connect, gRPC-web, HTTP/1.1, gRPC with a compressed
 * request (or, for a stream, a client that takes compressed responses) or from a browser origin, other
 * methods — goes through Connect as before.
 *
 * What a call goes through is the same as on the Connect path, in the same order, with the same error
 * codes and messages: the grpc-timeout header; the header check (authentication and the method's rule)
 * before any body byte is kept; every byte charged to the in-flight budget of the process and of the
 * connection; each envelope's length against readMaxBytes and its flags; one decode per message,
 * bounded by the decode budget (request-guard.ts's decodeChecked); then the router's interceptors (error
 * translation, metrics, per-message authorization…) around the same handler, with a HandlerContext
 * built as Connect builds it; errors answered as grpc-status / grpc-message trailers by Connect's own
 * setTrailerStatus. Streams: grpc-fast-stream.ts (responses the handler encoded itself are sent as
 * they are, as on the Connect path).
 */
export class GrpcFastPath {
  readonly #methods = new Map<string, FastMethod>();

  constructor(private readonly options: GrpcFastPathOptions) {}

  /** Serves `method` on the fast path (its request path is /package.Service/Method). */
  register(method: FastMethod): void {
    this.#methods.set(`/${method.method.parent.typeName}/${method.method.name}`, method);
  }

  get size(): number {
    return this.#methods.size;
  }

  /**
   * Serves the stream when it is a fast call and returns true; false leaves it untouched for Connect.
   * Decided from the headers alone.
   */
  serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const path = headers[":path"];
    const method = path === undefined ? undefined : this.#methods.get(path);
    if (!method || headers[":method"] !== "POST") return false;
    const contentType = headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    // Browsers cannot speak gRPC over HTTP/2; a call with an Origin keeps the CORS handling it gets there.
    if (headers.origin !== undefined) return false;
    // A stream whose client takes compressed responses keeps getting them (Connect compresses large ones).
    if (method.method.methodKind !== "unary" && acceptsCompression(headers["grpc-accept-encoding"])) {
      return false;
    }
    void this.#serveCall(stream, headers, method);
    return true;
  }

  async #serveCall(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    method: FastMethod,
  ): Promise<void> {
    const { options } = this;
    stream.on("error", (err: Error) => options.logger.debug({ err }, "gRPC stream failed"));
    const session = stream.session;
    const socket = session?.socket;
    const header = webHeadersOf(headers);
    const contextValues = createContextValues();
    // Under mutual TLS the caller's verified certificate identifies it (identity.ts), read only if asked.
    if (options.mutualTls) contextValues.set(peerCertificateKey, peerCertificateOf(socket));
    const ledger = options.budget.ledger(session ?? stream);
    setRequestLedger(contextValues, ledger);
    setCallConnection(contextValues, callConnectionOf(socket));
    setCallReset(contextValues, () => stream.close(NGHTTP2_ENHANCE_YOUR_CALM));
    const requestAbort = new AbortController();
    stream.once("close", () => {
      ledger.close();
      requestAbort.abort(CLIENT_GONE);
    });

    let context: ReturnType<typeof createHandlerContext> | undefined;
    const newContext = (timeoutMs: number | undefined) => {
      const authority = headers[":authority"] ?? headers.host ?? "";
      const scheme = socket && "encrypted" in socket ? "https" : "http";
      return createHandlerContext({
        service: method.method.parent,
        method: method.method,
        protocolName: "grpc",
        requestMethod: "POST",
        timeoutMs,
        requestSignal: requestAbort.signal,
        requestHeader: header,
        url: `${scheme}://${authority}${headers[":path"] ?? ""}`,
        responseHeader: { "content-type": RESPONSE_CONTENT_TYPE },
        responseTrailer: { "grpc-status": "0" },
        contextValues,
      });
    };
    try {
      const timeout = parseTimeout(header.get("grpc-timeout"), Number.MAX_SAFE_INTEGER);
      if (timeout.error) throw timeout.error;
      await this.#authenticate(method, header, contextValues);
      if (method.method.methodKind !== "unary") {
        context = newContext(timeout.timeoutMs);
        const limits = { readMaxBytes: options.readMaxBytes, decode: options.decode, ledger };
        // Before the handler starts: it encodes its responses itself when it finds the queue.
        const encoded = trackEncoded(contextValues, headers);
        const requests = readRequestMessages(stream, method.method.input, limits);
        const response = await invokeStream(method as FastStreamMethod, context, requests);
        await writeStreamResponse(stream, response, context, encoded);
        return;
      }
      const bytes = await readUnaryMessage(stream, options.readMaxBytes, ledger);
      if (bytes === undefined) return; // the client went away: nothing to answer
      const input = decodeChecked(method.method.input, bytes, { decode: options.decode, ledger });
      context = newContext(timeout.timeoutMs);
      const output = await invokeUnary(method, context, input);
      const body = envelope(toBinary(method.method.output, output));
      endResponse(stream, context.responseHeader, body, context.responseTrailer);
    } catch (err) {
      const error =
        err instanceof ConnectError
          ? err
          : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      const responseHeader =
        context?.responseHeader ?? new Headers({ "content-type": RESPONSE_CONTENT_TYPE });
      const trailer = setTrailerStatus(context?.responseTrailer ?? new Headers(), error);
      endResponse(stream, responseHeader, undefined, trailer);
    } finally {
      context?.abort(CALL_DONE);
    }
  }

  /** The header check, as the request guard runs it: its refusal as a ConnectError. */
  async #authenticate(
    method: FastMethod,
    header: Headers,
    contextValues: ReturnType<typeof createContextValues>,
  ) {
    const check = this.options.authenticate;
    if (!check) return;
    try {
      await check({
        service: method.method.parent,
        method: method.method,
        header,
        connection: callConnection(contextValues),
        contextValues,
      });
    } catch (err) {
      throw toConnectError(err);
    }
  }
}

/**
 * Sends every HTTP/2 stream of `server` that `fastPath` takes to it, and every other one to the
 * listeners the server had (Node's compatibility layer, which turns streams into the requests
 * connect-node serves). Call after the request handler is attached.
 */
export function routeFastStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  fastPath: GrpcFastPath,
): void {
  const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
  server.removeAllListeners("stream");
  server.on(
    "stream",
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      if (fastPath.serve(stream, headers)) return;
      for (const listener of compat) listener.call(server, stream, headers, ...rest);
    },
  );
}

function acceptsCompression(accepted: string | string[] | undefined): boolean {
  if (accepted === undefined) return false;
  const names = (Array.isArray(accepted) ? accepted.join(",") : accepted).split(",");
  return names.some((name) => name.trim() !== "" && name.trim() !== "identity");
}

/** The router's interceptors around the handler, as Connect chains them for a unary call. */
async function invokeUnary(method: FastMethod, context: HandlerContext, input: Message): Promise<Message> {
  const handler = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const result = await method.impl(req.message as never, {
      ...context,
      service: req.service,
      requestHeader: req.header,
      signal: req.signal,
      values: req.contextValues,
    });
    return {
      stream: false,
      service: method.method.parent,
      method: method.method as DescMethodUnary,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      // As Connect does: a handler may return the message's init shape rather than the message.
      message: isMessage(result, method.method.output)
        ? result
        : create(method.method.output, result as never),
    };
  };
  let next: (req: UnaryRequest) => Promise<UnaryResponse> = handler;
  for (let i = method.interceptors.length - 1; i >= 0; i--) {
    next = (method.interceptors[i] as Interceptor)(next as never) as typeof next;
  }
  const response = await next({
    stream: false,
    service: method.method.parent,
    method: method.method as DescMethodUnary,
    requestMethod: context.requestMethod,
    url: context.url,
    signal: context.signal,
    header: context.requestHeader,
    contextValues: context.values,
    message: input,
  } as UnaryRequest);
  copyHeaders(response.header, context.responseHeader);
  copyHeaders(response.trailer, context.responseTrailer);
  return response.message;
}
