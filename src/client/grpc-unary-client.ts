import http2 from "node:http2";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelope, unaryResponseMessage } from "../common/grpc-frame.js";
import { networkError, resetError, responseError } from "./grpc-unary-status.js";

export interface GrpcUnaryClientOptions {
  /** TLS settings of the session (https base URLs). */
  tlsOptions?: http2.SecureClientSessionOptions | undefined;
  /** Close the connection once it carried nothing for this long (ms, default 60000). */
  idleConnectionTimeoutMs?: number | undefined;
  /** Largest response message accepted, in bytes (default 64 MiB). */
  readMaxBytes?: number | undefined;
}

export interface GrpcUnaryCallOptions {
  /** Deadline of the call (ms): sent as grpc-timeout, and the call fails with DeadlineExceeded after it. */
  timeoutMs?: number | undefined;
  /** Request headers (authorization…); the same object call after call is merged once. */
  headers?: Readonly<Record<string, string>> | undefined;
  signal?: AbortSignal | undefined;
}

export interface GrpcUnaryResult<O extends DescMessage> {
  message: MessageShape<O>;
  header: http2.IncomingHttpHeaders;
  trailer: http2.IncomingHttpHeaders;
}

const { NGHTTP2_CANCEL } = http2.constants;
const DEFAULT_READ_MAX_BYTES = 64 * 1024 * 1024;
/** gRPC's grpc-timeout takes at most 8 digits. */
const MAX_TIMEOUT_MS = 99_999_999;
const USER_AGENT = "goulette-grpc-unary/1";

/** The request headers of one (method, caller headers, deadline): computed once, reused by every call. */
interface HeadCacheEntry {
  headers: Readonly<Record<string, string>> | undefined;
  timeoutMs: number | undefined;
  head: http2.OutgoingHttpHeaders;
}

/**
 * Unary gRPC calls over one node:http2 session, without connect-node's per-call machinery (async
 * iterables, linked abort controllers, Headers objects, an error built for every deadline signal):
 * request headers precomputed per method and caller, the protobuf codec called directly, one timer per
 * call for its deadline. Errors are the ConnectErrors Connect's gRPC client gives for the same answers
 * (grpc-unary-status.ts), so callers handle both clients alike. Streams and browsers stay on Connect
 * (lean-transport.ts chooses).
 *
 * The session is dialled on the first call, replaced when it closes, errs or receives GOAWAY, and
 * closed after idleConnectionTimeoutMs without traffic. A peer that stopped answering is noticed by the
 * calls' deadlines (the SDK then moves on and forgets the connection), not by pings: unary calls always
 * carry one.
 */
export class GrpcUnaryClient {
  readonly baseUrl: string;
  readonly #authority: string;
  readonly #options: GrpcUnaryClientOptions;
  readonly #readMaxBytes: number;
  readonly #heads = new Map<DescMethodUnary, HeadCacheEntry>();
  #session: http2.ClientHttp2Session | undefined;
  #closed = false;

  constructor(baseUrl: string, options: GrpcUnaryClientOptions = {}) {
    this.baseUrl = baseUrl;
    this.#authority = new URL(baseUrl).host;
    this.#options = options;
    this.#readMaxBytes = options.readMaxBytes ?? DEFAULT_READ_MAX_BYTES;
  }

  call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: GrpcUnaryCallOptions = {},
  ): Promise<GrpcUnaryResult<O>> {
    return new Promise((resolve, reject) => {
      const { signal, timeoutMs } = options;
      if (signal?.aborted) {
        reject(cancelled(signal.reason));
        return;
      }
      let body: Buffer;
      let stream: http2.ClientHttp2Stream;
      try {
        body = envelope(toBinary(method.input, create(method.input, input)));
        stream = this.#connect().request(this.#head(method, options.headers, timeoutMs));
      } catch (err) {
        reject(networkError(err));
        return;
      }
      let done = false;
      let header: http2.IncomingHttpHeaders | undefined;
      let trailer: http2.IncomingHttpHeaders | undefined;
      let failure: unknown;
      const chunks: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      const settle = (error: ConnectError | undefined, result?: GrpcUnaryResult<O>) => {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(result as GrpcUnaryResult<O>);
      };
      const abandon = (error: ConnectError) => {
        settle(error);
        if (!stream.closed) stream.close(NGHTTP2_CANCEL);
      };
      const onAbort = () => abandon(cancelled(signal?.reason));
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(
          () => abandon(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          timeoutMs,
        );
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      stream.on("response", (h) => (header = h));
      stream.on("trailers", (t) => (trailer = t));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (err) => (failure = err));
      stream.on("close", () => {
        if (done) return;
        if (header === undefined) {
          // Reset by the peer (Node's stream error only names the code): gRPC's mapping of the code.
          const reset = failure === undefined || errorCode(failure) === "ERR_HTTP2_STREAM_ERROR";
          settle(reset ? resetError(stream.rstCode ?? 0) : networkError(failure));
          return;
        }
        try {
          const error = responseError(header, trailer);
          // Cut before its trailers: the network failure, not the missing status, is what happened.
          if (error && failure !== undefined && trailer === undefined) throw networkError(failure);
          if (error) throw error;
          const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          const bytes = unaryResponseMessage(all, this.#readMaxBytes);
          if (bytes === undefined) {
            throw new ConnectError(
              "protocol error: missing output message for unary method",
              Code.Unimplemented,
            );
          }
          settle(undefined, { message: fromBinary(method.output, bytes), header, trailer: trailer ?? {} });
        } catch (err) {
          settle(
            err instanceof ConnectError
              ? err
              : new ConnectError(String(err), Code.Internal, undefined, undefined, err),
          );
        }
      });
      stream.end(body);
    });
  }

  /** Closes the connection; calls in flight finish, later ones fail. */
  close(): void {
    this.#closed = true;
    this.#session?.close();
    this.#session = undefined;
  }

  /** Drops the connection at once (calls in flight fail); the next call dials a new one. */
  reset(): void {
    this.#session?.destroy();
    this.#session = undefined;
  }

  #connect(): http2.ClientHttp2Session {
    if (this.#closed) throw new ConnectError(`the client of ${this.baseUrl} is closed`, Code.Unavailable);
    const current = this.#session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(this.baseUrl, this.#options.tlsOptions ?? {});
    const forget = () => {
      if (this.#session === session) this.#session = undefined;
    };
    // Errors reach the calls through their streams; the session only has to be replaced.
    session.on("error", forget);
    session.on("close", forget);
    session.on("goaway", forget);
    session.setTimeout(this.#options.idleConnectionTimeoutMs ?? 60_000, () => {
      forget();
      session.close();
    });
    this.#session = session;
    return session;
  }

  #head(
    method: DescMethodUnary,
    headers: Readonly<Record<string, string>> | undefined,
    timeoutMs: number | undefined,
  ): http2.OutgoingHttpHeaders {
    const cached = this.#heads.get(method);
    if (cached && cached.headers === headers && cached.timeoutMs === timeoutMs) return cached.head;
    const head: http2.OutgoingHttpHeaders = {
      ...headers,
      ":method": "POST",
      ":path": `/${method.parent.typeName}/${method.name}`,
      ":authority": this.#authority,
      "content-type": "application/grpc+proto",
      te: "trailers",
      "user-agent": USER_AGENT,
    };
    if (timeoutMs !== undefined && timeoutMs > 0) {
      head["grpc-timeout"] = `${Math.min(Math.ceil(timeoutMs), MAX_TIMEOUT_MS)}m`;
    }
    // Node copies the object it is given: the same one serves every call.
    this.#heads.set(method, { headers, timeoutMs, head });
    return head;
  }
}

function errorCode(err: unknown): unknown {
  return err instanceof Error ? (err as { code?: unknown }).code : undefined;
}

function cancelled(reason: unknown): ConnectError {
  return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, reason);
}
