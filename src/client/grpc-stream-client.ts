import http2 from "node:http2";
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type DescMethodClientStreaming,
  type DescMethodServerStreaming,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelope } from "../common/grpc-frame.js";
import { drainedOrClosed } from "../common/stream-drain.js";
import { ByteQueue } from "../common/byte-queue.js";
import type { EncodedEnvelopes } from "../common/encoded-envelopes.js";
import { networkError, resetError, responseError } from "./grpc-unary-status.js";

/** What a stream needs of an HTTP/2 connection: connect-node's Http2SessionManager. */
export interface StreamSessions {
  request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: http2.ClientSessionRequestOptions,
  ): Promise<http2.ClientHttp2Stream>;
  /** Tells the keep-alive logic the connection is alive. */
  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void;
}

/** A streaming method of any kind (server, client or bidi streaming): each is one HTTP/2 stream. */
export type StreamingMethod<I extends DescMessage, O extends DescMessage> =
  DescMethodBiDiStreaming<I, O> | DescMethodServerStreaming<I, O> | DescMethodClientStreaming<I, O>;

export interface StreamCallOptions {
  /** Request headers (authorization…). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Aborting cancels the call (the stream is reset; the iteration fails with Canceled). */
  signal: AbortSignal;
  /** Largest response message accepted, in bytes (default 64 MiB). */
  readMaxBytes?: number;
  /**
   * Requests the caller encoded itself (src/common/encoded-envelopes.ts): each placeholder request is
   * sent as the next queued envelope, as connect-node's client does with encoded-requests.ts.
   */
  encoded?: EncodedEnvelopes | undefined;
  /** Filled in as the answer arrives: its headers, then its trailers (for callers that read them). */
  metadata?: StreamMetadata;
  /**
   * Decodes one response message (default: protobuf-es's fromBinary, unknown fields dropped); a hand
   * decoder of a hot response (fetch-decoding.ts) must give what fromBinary gives. What it throws fails
   * the call as a parse error.
   */
  decode?: ((bytes: Uint8Array) => unknown) | undefined;
}

export interface StreamMetadata {
  header?: http2.IncomingHttpHeaders;
  trailer?: http2.IncomingHttpHeaders;
}

const { NGHTTP2_CANCEL } = http2.constants;
const DEFAULT_READ_MAX_BYTES = 64 * 1024 * 1024;
/** Names the client in the server's logs and lets tests tell which client sent a call. */
export const STREAM_USER_AGENT = "goulette-grpc-stream/1";

/**
 * A streaming gRPC call over node:http2 (a server-streaming one is given a single request), without
 * connect-node's client pipeline (async-iterable transforms, and a zero-filled copy of every response
 * message before it is decoded): requests are encoded and written as `requests` yields them (waiting
 * when flow control says so), responses decoded straight from the received chunks (their bytes fields
 * are views onto them), and the call's end is the ConnectError Connect's gRPC client gives for the same
 * answer (grpc-unary-status.ts), so callers handle both clients alike. Uncompressed only: it asks for
 * no compression and refuses compressed messages. The connection is the session manager's (keep-alive
 * pings, idle close, reconnects).
 */
export async function* grpcStream<I extends DescMessage, O extends DescMessage>(
  sessions: StreamSessions,
  method: StreamingMethod<I, O>,
  requests: AsyncIterable<MessageShape<I> | MessageInitShape<I>>,
  options: StreamCallOptions,
): AsyncGenerator<MessageShape<O>> {
  const { signal } = options;
  const readMaxBytes = options.readMaxBytes ?? DEFAULT_READ_MAX_BYTES;
  if (signal.aborted) throw cancelled(signal.reason);
  const path = `/${method.parent.typeName}/${method.name}`;
  const stream = await sessions
    .request(
      "POST",
      path,
      {
        ...options.headers,
        "content-type": "application/grpc+proto",
        te: "trailers",
        "user-agent": STREAM_USER_AGENT,
      },
      {},
    )
    .catch((err: unknown) => {
      throw networkError(err);
    });
  let header: http2.IncomingHttpHeaders | undefined;
  let trailer: http2.IncomingHttpHeaders | undefined;
  let failure: unknown;
  const metadata = options.metadata;
  stream.on("response", (h) => {
    header = h;
    if (metadata) metadata.header = h;
  });
  stream.on("trailers", (t) => {
    trailer = t;
    if (metadata) metadata.trailer = t;
  });
  stream.on("error", (err) => (failure ??= err));
  const onAbort = () => {
    if (!stream.closed) stream.close(NGHTTP2_CANCEL);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  void writeRequests(stream, method.input, requests, options.encoded).catch((err: unknown) => {
    failure ??= err;
    onAbort();
  });
  const queue = new ByteQueue();
  try {
    for await (const chunk of stream.iterator({ destroyOnReturn: true }) as AsyncIterable<Buffer>) {
      sessions.notifyResponseByteRead(stream);
      // Not a gRPC answer (an HTTP error page, a proxy's): its status says what happened, not its body.
      if (header !== undefined && !isGrpcResponse(header)) break;
      queue.push(chunk);
      while (queue.size >= 5) {
        const head = queue.peek(5);
        const length = head.readUInt32BE(1);
        if (head[0] !== 0) {
          throw new ConnectError(
            `response envelope has flags 0x${(head[0] as number).toString(16)}; an uncompressed message (0) was expected`,
            Code.Internal,
          );
        }
        if (length > readMaxBytes) {
          throw new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
            Code.ResourceExhausted,
          );
        }
        if (queue.size < 5 + length) break;
        const whole = queue.take(5 + length);
        yield decode(method.output, whole.subarray(5), options.decode);
      }
    }
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    failure ??= err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!stream.closed) stream.close(NGHTTP2_CANCEL);
  }
  if (signal.aborted) throw cancelled(signal.reason);
  const ended = endError(header, trailer, failure, stream.rstCode);
  if (ended) throw ended;
  if (queue.size > 0) throw new ConnectError("protocol error: incomplete envelope", Code.Internal);
}

/** Encodes and writes each request as it comes; half-closes the stream after the last. */
async function writeRequests<I extends DescMessage>(
  stream: http2.ClientHttp2Stream,
  schema: I,
  requests: AsyncIterable<MessageShape<I> | MessageInitShape<I>>,
  encoded: EncodedEnvelopes | undefined,
): Promise<void> {
  for await (const request of requests) {
    if (stream.closed || stream.destroyed) return;
    const message = isMessage(request, schema) ? request : create(schema, request);
    let bytes: Uint8Array = envelope(toBinary(schema, message));
    if (encoded) bytes = encoded.substitute(bytes);
    if (!stream.write(bytes)) await drainedOrClosed(stream);
  }
  if (!stream.closed && !stream.destroyed) stream.end();
}

function decode<O extends DescMessage>(
  schema: O,
  bytes: Uint8Array,
  custom: ((bytes: Uint8Array) => unknown) | undefined,
): MessageShape<O> {
  try {
    return custom
      ? (custom(bytes) as MessageShape<O>)
      : fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw new ConnectError(`parse binary: ${String(err)}`, Code.Internal, undefined, undefined, err);
  }
}

/** How the call ended, as Connect's gRPC client reports it; undefined for a clean end. */
function endError(
  header: http2.IncomingHttpHeaders | undefined,
  trailer: http2.IncomingHttpHeaders | undefined,
  failure: unknown,
  rstCode: number | undefined,
): ConnectError | undefined {
  if (header === undefined) {
    // Reset by the peer before it answered (Node's stream error only names the code).
    const reset = failure === undefined || errorCode(failure) === "ERR_HTTP2_STREAM_ERROR";
    return reset ? resetError(rstCode ?? 0) : networkError(failure);
  }
  const error = responseError(header, trailer);
  // Cut before its trailers: the network failure, not the missing status, is what happened.
  if (error && failure !== undefined && trailer === undefined) return networkError(failure);
  return error;
}

function isGrpcResponse(header: http2.IncomingHttpHeaders): boolean {
  return (
    Number(header[":status"]) === 200 &&
    /^application\/grpc(?:\+proto)?(?:;|$)/i.test(header["content-type"] ?? "")
  );
}

function errorCode(err: unknown): unknown {
  return err instanceof Error ? (err as { code?: unknown }).code : undefined;
}

function cancelled(reason: unknown): ConnectError {
  return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, reason);
}
