import http2 from "node:http2";
import {
  create,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type DescMethodServerStreaming,
  type Message,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { EncodedEnvelopes } from "../common/encoded-envelopes.js";
import { drainedOrClosed } from "../common/stream-drain.js";
import { ByteQueue } from "../common/byte-queue.js";
import type { DecodeLimits } from "./decode-budget.js";
import { envelope, envelopeProblem } from "./grpc-envelope.js";
import type { RequestLedger } from "./inflight-budget.js";
import { decodeChecked } from "./request-guard.js";

// The gRPC fast path's streaming calls (grpc-fast-path.ts): request messages read from the HTTP/2
// stream as they come, the router's interceptors around the handler, response messages written as they
// are produced, with HTTP/2 flow control as the only buffer. What Connect's gRPC handler does for the
// same call (protocol-grpc/handler-factory.js), without its generic pipeline of async-iterable
// transforms over Node's compatibility request and response objects.

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** A server-streaming or bidi-streaming method, as the router was given it. */
export interface FastStreamMethod {
  readonly method: DescMethodServerStreaming | DescMethodBiDiStreaming;
  readonly impl: (input: never, context: HandlerContext) => unknown;
  readonly interceptors: readonly Interceptor[];
}

/** A call's context as Connect builds it (createHandlerContext), which the server can abort. */
type CallContext = ReturnType<typeof createHandlerContext>;

export interface RequestLimits {
  readMaxBytes: number;
  decode: DecodeLimits;
  ledger: RequestLedger;
}

/**
 * The request messages of a streaming call, decoded as they arrive. Each chunk is charged to the ledger
 * when read; a message (its envelope and its decoded size) stays charged until the handler asks for the
 * next one, as on the Connect path (request-guard.ts's checkEnvelopes). Envelope errors are Connect's:
 * too large (ResourceExhausted), unknown or compressed flags (InvalidArgument), cut short at the end.
 * Reading stops without touching the stream when the handler stops asking (the response goes on).
 */
export async function* readRequestMessages(
  stream: http2.ServerHttp2Stream,
  schema: DescMessage,
  limits: RequestLimits,
): AsyncGenerator<Message> {
  const { readMaxBytes, ledger } = limits;
  const queue = new ByteQueue();
  const chunks = stream.iterator({ destroyOnReturn: false }) as AsyncIterableIterator<Buffer>;
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (err) {
      // The client reset the stream or the connection went away mid-call.
      throw new ConnectError("the request stream ended abruptly", Code.Canceled, undefined, undefined, err);
    }
    if (next.done === true) break;
    const chunk = next.value;
    ledger.charge(chunk.length);
    queue.push(chunk);
    while (queue.size >= 5) {
      const head = queue.peek(5);
      const problem = envelopeProblem(head, readMaxBytes);
      if (problem) throw problem;
      const length = head.readUInt32BE(1);
      if (queue.size < 5 + length) break;
      const whole = queue.take(5 + length);
      const before = ledger.held;
      const message = decodeChecked(schema, whole.subarray(5), limits);
      const held = whole.length + ledger.held - before;
      yield message;
      ledger.release(held);
    }
  }
  if (queue.size > 0) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/**
 * The router's interceptors around a streaming handler, as Connect chains them: the handler gets the
 * request messages (a server-streaming one exactly one, with Connect's errors otherwise) and its output
 * is normalised to messages (a handler may yield init shapes).
 */
export async function invokeStream(
  method: FastStreamMethod,
  context: HandlerContext,
  requests: AsyncIterable<Message>,
): Promise<StreamResponse> {
  const desc = method.method;
  const handler = async (req: StreamRequest): Promise<StreamResponse> => {
    const ctx: HandlerContext = {
      ...context,
      service: req.service,
      requestHeader: req.header,
      signal: req.signal,
      values: req.contextValues,
    };
    const input = desc.methodKind === "server_streaming" ? await single(req.message) : req.message;
    const output = method.impl(input as never, ctx) as AsyncIterable<unknown>;
    return {
      stream: true,
      service: desc.parent,
      method: desc,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      message: normalized(output, desc.output),
    } as StreamResponse;
  };
  let next: (req: StreamRequest) => Promise<StreamResponse> = handler;
  for (let i = method.interceptors.length - 1; i >= 0; i--) {
    next = (method.interceptors[i] as Interceptor)(next as never) as typeof next;
  }
  return next({
    stream: true,
    service: desc.parent,
    method: desc,
    requestMethod: context.requestMethod,
    url: context.url,
    signal: context.signal,
    header: context.requestHeader,
    contextValues: context.values,
    message: requests,
  } as StreamRequest);
}

async function single(messages: AsyncIterable<unknown>): Promise<unknown> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) {
    throw new ConnectError(
      "protocol error: missing input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  const second = await it.next();
  if (second.done !== true) {
    throw new ConnectError(
      "protocol error: received extra input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  return first.value;
}

async function* normalized(output: AsyncIterable<unknown>, schema: DescMessage): AsyncGenerator<Message> {
  for await (const value of output) {
    yield isMessage(value, schema) ? value : create(schema, value as never);
  }
}

/**
 * Writes a streaming call's response: headers with the first message (so a handler may still set
 * response headers before it yields), each message enveloped (a placeholder swapped for the envelope
 * the handler encoded itself, encoded-envelopes.ts), then the trailers with the call's status. A write
 * the client's flow control does not take at once is waited for, so a slow reader slows the handler
 * instead of filling memory. Returns once the trailers are handed to HTTP/2 (or the stream is gone).
 */
export async function writeStreamResponse(
  stream: http2.ServerHttp2Stream,
  response: StreamResponse,
  context: CallContext,
  encoded: EncodedEnvelopes | undefined,
): Promise<void> {
  const output = response.method.output;
  copyHeaders(response.header, context.responseHeader);
  let error: unknown;
  try {
    for await (const message of response.message) {
      if (stream.destroyed) break;
      const bytes = envelope(toBinary(output, message));
      if (!writeMessage(stream, context, encoded ? encoded.substitute(bytes) : bytes)) {
        await drainedOrClosed(stream);
      }
    }
    copyHeaders(response.trailer, context.responseTrailer);
  } catch (err) {
    error = err;
  }
  finish(stream, context, error);
}

/** Starts the response (headers) if needed and writes one chunk; false when flow control is full. */
function writeMessage(stream: http2.ServerHttp2Stream, context: HandlerContext, bytes: Uint8Array): boolean {
  startResponse(stream, context.responseHeader);
  return stream.write(bytes);
}

function startResponse(stream: http2.ServerHttp2Stream, header: Headers): void {
  if (stream.headersSent || stream.destroyed) return;
  const outgoing: http2.OutgoingHttpHeaders = { ":status": 200 };
  header.forEach((value, key) => (outgoing[key] = value));
  stream.respond(outgoing, { waitForTrailers: true });
}

/** The end of a streaming response: its status in the trailers (an error as Connect reports it). */
function finish(stream: http2.ServerHttp2Stream, context: CallContext, error: unknown): void {
  if (error !== undefined) {
    const connectError =
      error instanceof ConnectError
        ? error
        : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
    context.abort(connectError);
    setTrailerStatus(context.responseTrailer, connectError);
  }
  endResponse(stream, context.responseHeader, undefined, context.responseTrailer);
}

/**
 * Headers (unless sent already), the last bytes (if any), trailers. Answered before the request was
 * read to its end (an error mid-upload): the stream is reset with NO_ERROR once the trailers are out,
 * as gRPC servers do, or a client still sending would wait on flow control forever, holding a stream
 * slot.
 */
export function endResponse(
  stream: http2.ServerHttp2Stream,
  header: Headers,
  body: Uint8Array | undefined,
  trailer: Headers,
): void {
  if (stream.destroyed || stream.closed) return;
  try {
    startResponse(stream, header);
    stream.once("wantTrailers", () => {
      const trailers: http2.OutgoingHttpHeaders = {};
      trailer.forEach((value, key) => (trailers[key] = value));
      try {
        stream.sendTrailers(trailers);
      } catch {
        // Closed meanwhile, or a header value Node refuses: the client sees a reset, not a hang.
        if (!stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (!stream.readableEnded) setImmediate(() => stream.closed || stream.close(NGHTTP2_NO_ERROR));
    });
    stream.end(body);
  } catch {
    if (!stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
  }
}

/** Headers an interceptor returned, into the call's own (as Connect copies them). */
export function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}
