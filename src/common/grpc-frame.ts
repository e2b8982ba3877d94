import { Code, ConnectError } from "@connectrpc/connect";

// gRPC's length-prefixed message framing, shared by the server's fast path (src/server/grpc-envelope.ts)
// and the SDK's unary client (src/client/grpc-unary-client.ts).

/** Bytes of an envelope's header: one flags byte, a big-endian 32-bit length. */
export const ENVELOPE_HEADER_BYTES = 5;

/** One gRPC message: flags 0 (uncompressed), big-endian length, the bytes. */
export function envelope(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + data.length);
  out[0] = 0;
  out.writeUInt32BE(data.length, 1);
  out.set(data, ENVELOPE_HEADER_BYTES);
  return out;
}

/**
 * The message of a unary response body (undefined when the body is empty: the status says why), with
 * the errors Connect's gRPC client gives for the same bytes: a compressed message (none was asked for),
 * a truncated envelope, a second message, a message over `readMaxBytes`.
 */
export function unaryResponseMessage(body: Buffer, readMaxBytes: number): Uint8Array | undefined {
  if (body.length === 0) return undefined;
  if (body.length < ENVELOPE_HEADER_BYTES) {
    throw new ConnectError("protocol error: incomplete envelope", Code.Internal);
  }
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (length > readMaxBytes) {
    throw new ConnectError(
      `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
      Code.ResourceExhausted,
    );
  }
  if (flags !== 0) {
    throw new ConnectError(
      `response envelope has flags 0x${flags.toString(16)}; an uncompressed message (0) was expected`,
      Code.Internal,
    );
  }
  const end = ENVELOPE_HEADER_BYTES + length;
  if (body.length < end) throw new ConnectError("protocol error: incomplete envelope", Code.Internal);
  if (body.length > end) {
    throw new ConnectError(
      "protocol error: received extra output message for unary method",
      Code.Unimplemented,
    );
  }
  return body.subarray(ENVELOPE_HEADER_BYTES, end);
}
