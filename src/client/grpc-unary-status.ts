import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { webHeadersOf } from "../common/http2-headers.js";

// How a unary gRPC call over node:http2 ended, as the ConnectError Connect's gRPC client would give for
// it: the SDK maps those to its typed errors (client/errors.ts toClientError) and fails over on them
// (sentinel-pool.ts), whichever client made the call. Pure: no I/O.

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY } =
  http2.constants;

/**
 * The error a finished response carries, if any: an HTTP status other than 200 (gRPC's mapping), a
 * content type that is not gRPC, or a grpc-status other than 0 in the headers (a trailers-only answer)
 * or the trailers, with grpc-message and every other header and trailer as the error's metadata (the
 * retry hints of GouletteError.wireMetadata). A response with no grpc-status at all is an error too.
 */
export function responseError(
  headers: http2.IncomingHttpHeaders,
  trailers: http2.IncomingHttpHeaders | undefined,
): ConnectError | undefined {
  // A number at run time, typed as a header value.
  const status = Number(headers[":status"] ?? 0);
  if (status !== 200) {
    return new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), webHeadersOf(headers));
  }
  const contentType = headers["content-type"] ?? "";
  if (!/^application\/grpc(?:\+proto)?(?:;|$)/i.test(contentType)) {
    return new ConnectError(`unsupported content type ${contentType}`, Code.Unknown);
  }
  // Trailers-only: the status is in the headers and there are no trailers.
  if (headers["grpc-status"] !== undefined || headers["grpc-status-details-bin"] !== undefined) {
    return headers["grpc-status"] === "0" && headers["grpc-status-details-bin"] === undefined
      ? undefined
      : findTrailerError(webHeadersOf(headers));
  }
  if (trailers === undefined) {
    return new ConnectError("protocol error: missing trailers", Code.Internal);
  }
  if (trailers["grpc-status"] === "0" && trailers["grpc-status-details-bin"] === undefined) return undefined;
  if (trailers["grpc-status"] === undefined && trailers["grpc-status-details-bin"] === undefined) {
    return new ConnectError("protocol error: missing status", Code.Internal);
  }
  const metadata = webHeadersOf(headers);
  webHeadersOf(trailers).forEach((value, key) => metadata.set(key, value));
  return findTrailerError(metadata);
}

/** A stream reset by the peer before it answered, as gRPC maps HTTP/2 error codes. */
export function resetError(rstCode: number): ConnectError {
  const message = `http/2 stream closed with error code 0x${rstCode.toString(16)}`;
  switch (rstCode) {
    case NGHTTP2_REFUSED_STREAM:
      return new ConnectError(message, Code.Unavailable);
    case NGHTTP2_CANCEL:
      return new ConnectError(message, Code.Canceled);
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(message, Code.ResourceExhausted);
    case NGHTTP2_INADEQUATE_SECURITY:
      return new ConnectError(message, Code.PermissionDenied);
    default:
      return new ConnectError(message, Code.Internal);
  }
}

/**
 * A call that failed in the network (refused, reset, a session that died): Aborted when the connection
 * was cut under the call, as Connect's Node client says; Unavailable otherwise (the peer could not be
 * reached). The Node error stays the cause (client/errors.ts isConnectionFailure looks for it).
 */
export function networkError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const codes = errorCodes(err);
  const cut = codes.some((c) => c === "ECONNRESET" || c === "ERR_STREAM_DESTROYED" || c === "EPIPE");
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(message, cut ? Code.Aborted : Code.Unavailable, undefined, undefined, err);
}

/** The `code` of an error and of its causes. */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}
