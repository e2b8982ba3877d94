import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { errorMessage } from "../errors.js";

const gunzipAsync = promisify(gunzip);
const brotliAsync = promisify(brotliDecompress);

/** How request messages are framed, by content type; undefined for unary JSON and anything unknown. */
interface Framing {
  framing: "envelopes" | "whole";
  /** Binary messages are decoded here; JSON ones are left to Connect (which answers InvalidArgument). */
  binary: boolean;
  encodingHeader: string;
}

/** framingOf per (unary, content type): a handful of distinct values, parsed on every request otherwise. */
const framings = new Map<string, Framing | undefined>();

function framingOf(contentType: string | null, unary: boolean): Framing | undefined {
  const key = `${unary ? "u" : "s"}${contentType ?? ""}`;
  if (framings.has(key)) return framings.get(key);
  const framing = parseFraming(contentType, unary);
  if (framings.size < 64) framings.set(key, framing); // bounded: clients choose the header
  return framing;
}

function parseFraming(contentType: string | null, unary: boolean): Framing | undefined {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const match = /^application\/(grpc|grpc-web|connect)(?:\+(proto|json))?$/.exec(type);
  // Connect uses envelopes for streaming methods only; a mismatch is Connect's to refuse (415).
  const connect = match?.[1] === "connect";
  if (match && !(connect && (match[2] === undefined || unary))) {
    return {
      framing: "envelopes",
      binary: match[2] !== "json",
      encodingHeader: match[1] === "connect" ? "connect-content-encoding" : "grpc-encoding",
    };
  }
  if (type === "application/proto" && unary) {
    return { framing: "whole", binary: true, encodingHeader: "content-encoding" };
  }
  return undefined;
}

/**
 * Decodes every binary request message before Connect does, so that one that does not decode (random
 * bytes, truncated fields, wrong wire types, invalid UTF-8 in a string) is answered InvalidArgument.
 * Connect's own binary parser reports these as Internal ("parse binary: …"), which would tell the
 * client the server is broken when the request is. Envelope flags are checked for every format, since
 * Connect reads an unknown flag as "compressed" and fails with Internal too; JSON messages are left to
 * Connect, which answers InvalidArgument. Messages are checked as they arrive, so streams keep
 * streaming; what this guard does not handle (oversized envelopes, unknown encodings, content types
 * that do not fit the method) is passed through for Connect to refuse with its own, correct, error.
 */
export function guardRequestDecoding(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  const input = handler.method.input;
  const guarded = async (req: UniversalServerRequest) => {
    const framing = framingOf(req.header.get("content-type"), handler.method.methodKind === "unary");
    if (!framing || !isByteStream(req.body)) return handler(req);
    const encoding = req.header.get(framing.encodingHeader) ?? "identity";
    const body =
      framing.framing === "whole"
        ? checkWhole(req.body, input, encoding, readMaxBytes)
        : checkEnvelopes(req.body, framing.binary ? input : undefined, encoding, readMaxBytes);
    return handler({ ...req, body });
  };
  return Object.assign(guarded, {
    protocolNames: handler.protocolNames,
    supportedContentType: handler.supportedContentType,
    allowedMethods: handler.allowedMethods,
    requestPath: handler.requestPath,
    service: handler.service,
    method: handler.method,
  });
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Connect unary: the body is one message. */
async function* checkWhole(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage,
  encoding: string,
  readMaxBytes: number,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > readMaxBytes) {
      // Too large: Connect answers ResourceExhausted; hand it everything as it is.
      yield* chunks;
      yield* rest(it);
      return;
    }
  }
  const bytes = Buffer.concat(chunks);
  const plain = await decompress(bytes, encoding, readMaxBytes);
  if (plain) check(schema, plain);
  yield bytes;
}

/**
 * gRPC, gRPC-web and Connect streaming: 5-byte envelope headers (flags, big-endian length), then data.
 * The flags are checked for every format; the message itself when `schema` is given (binary).
 */
async function* checkEnvelopes(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage | undefined,
  encoding: string,
  readMaxBytes: number,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  const queue = new ByteQueue();
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    queue.push(next.value);
    for (;;) {
      if (queue.size < 5) break;
      const header = queue.peek(5);
      const flags = header[0] as number;
      const length = header.readUInt32BE(1);
      if (length > readMaxBytes) {
        // Too large: Connect refuses it with ResourceExhausted before reading it.
        yield queue.take(queue.size);
        yield* rest(it);
        return;
      }
      // Connect would read any other flag as "compressed" or ignore it, and then report Internal.
      if ((flags & ~0x01) !== 0) {
        throw new ConnectError(
          `request envelope has flags 0x${flags.toString(16)}; a request message has 0 or 1 (compressed)`,
          Code.InvalidArgument,
        );
      }
      if (flags === 0x01 && encoding === "identity") {
        throw new ConnectError(
          "request message is flagged compressed but the request names no encoding",
          Code.InvalidArgument,
        );
      }
      if (queue.size < 5 + length) break;
      const envelope = queue.take(5 + length);
      const data = envelope.subarray(5);
      if (schema) {
        const plain = flags & 0x01 ? await decompress(data, encoding, readMaxBytes) : data;
        if (plain) check(schema, plain);
      }
      yield envelope;
    }
  }
  // A truncated envelope: Connect reports the short read.
  if (queue.size > 0) yield queue.take(queue.size);
}

async function* rest(it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield next.value;
  }
}

function check(schema: DescMessage, bytes: Uint8Array): void {
  try {
    // Only validates: unknown fields are skipped, not kept (see createHandler in rpc-server.ts).
    fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw new ConnectError(
      `malformed ${schema.typeName} message: ${errorMessage(err)}`,
      Code.InvalidArgument,
    );
  }
}

/** The decompressed bytes, or undefined for an encoding this guard does not know (Connect refuses it). */
async function decompress(
  bytes: Uint8Array,
  encoding: string,
  readMaxBytes: number,
): Promise<Uint8Array | undefined> {
  const inflate = encoding === "gzip" ? gunzipAsync : encoding === "br" ? brotliAsync : undefined;
  if (encoding === "identity") return bytes;
  if (!inflate) return undefined;
  try {
    return await inflate(bytes, { maxOutputLength: readMaxBytes });
  } catch (err) {
    if ((err as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ConnectError(
        `request message is larger than ${readMaxBytes} bytes after decompression`,
        Code.ResourceExhausted,
      );
    }
    throw new ConnectError(`request message does not decompress (${encoding})`, Code.InvalidArgument);
  }
}

/** Chunks in arrival order; concatenates only what is taken, so a large message costs one copy. */
class ByteQueue {
  #chunks: Buffer[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.size += chunk.byteLength;
  }

  peek(n: number): Buffer {
    const first = this.#chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.#chunks).subarray(0, n);
  }

  take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    const taken = all.subarray(0, n);
    const left = all.subarray(n);
    this.#chunks = left.length > 0 ? [left] : [];
    this.size = left.length;
    return taken;
  }
}
