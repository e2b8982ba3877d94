import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RequestLedger } from "./inflight-budget.js";

export { envelope } from "../common/grpc-frame.js";

// The gRPC fast path's framing (grpc-fast-path.ts): one length-prefixed message in, one out, with the
// errors the Connect path gives for the same bytes (Connect's own, or the request guard's).

/**
 * Reads the one length-prefixed message of a unary request, charging each chunk to the ledger and
 * checking the envelope as soon as its 5-byte header is in (length against readMaxBytes, flags), with
 * Connect's and the request guard's errors. undefined when the stream closed before its end.
 */
export function readUnaryMessage(
  stream: http2.ServerHttp2Stream,
  readMaxBytes: number,
  ledger: RequestLedger,
): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let checked = false;
    const stop = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
    };
    const fail = (err: unknown) => {
      stop();
      // Nothing more is read: the answer goes out and the stream is reset once it is sent.
      stream.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      try {
        ledger.charge(chunk.length);
      } catch (err) {
        fail(err);
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
      if (!checked && size >= 5) {
        checked = true;
        const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
        const problem = envelopeProblem(head, readMaxBytes);
        if (problem) fail(problem);
      }
    };
    const onEnd = () => {
      stop();
      const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      try {
        resolve(singleMessage(all, readMaxBytes));
      } catch (err) {
        reject(err);
      }
    };
    const onClose = () => {
      stop();
      resolve(undefined);
    };
    // A request without a body (END_STREAM on its headers) may have ended before this listens.
    if (stream.readableEnded) {
      onEnd();
      return;
    }
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onClose);
  });
}

/** What is wrong with an envelope's 5-byte header, if anything (only identity encoding comes here). */
export function envelopeProblem(head: Buffer, readMaxBytes: number): ConnectError | undefined {
  const flags = head[0] as number;
  const length = head.readUInt32BE(1);
  if (length > readMaxBytes) {
    return new ConnectError(
      `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
      Code.ResourceExhausted,
    );
  }
  if ((flags & ~0x01) !== 0) {
    return new ConnectError(
      `request envelope has flags 0x${flags.toString(16)}; a request message has 0 or 1 (compressed)`,
      Code.InvalidArgument,
    );
  }
  if (flags === 0x01) {
    return new ConnectError(
      "request message is flagged compressed but the request names no encoding",
      Code.InvalidArgument,
    );
  }
  return undefined;
}

/** The message of a complete unary body: exactly one envelope, or Connect's protocol errors. */
function singleMessage(body: Buffer, readMaxBytes: number): Uint8Array {
  if (body.length === 0) {
    throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  }
  const incomplete = new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (body.length < 5) throw incomplete;
  const end = 5 + body.readUInt32BE(1);
  if (body.length < end) throw incomplete;
  if (body.length === end) return body.subarray(5, end);
  // A second envelope: checked as the first was, then refused as Connect refuses it.
  const second = body.subarray(end);
  if (second.length >= 5) {
    const problem = envelopeProblem(second, readMaxBytes);
    if (problem) throw problem;
  }
  if (second.length < 5 || second.length < 5 + second.readUInt32BE(1)) throw incomplete;
  throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
}
