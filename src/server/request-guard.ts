import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { errorMessage } from "../errors.js";
import { trackDecoded, type DecodedMessages } from "./decoded-messages.js";

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

const EMPTY = new Uint8Array(0);

/**
 * Decodes every binary request message before Connect does, so that one that does not decode (random
 * bytes, truncated fields, wrong wire types, invalid UTF-8 in a string) is answered InvalidArgument.
 * Connect's own binary parser reports these as Internal ("parse binary: …"), which would tell the
 * client the server is broken when the request is. Envelope flags are checked for every format, since
 * Connect reads an unknown flag as "compressed" and fails with Internal too; JSON messages are left to
 * Connect, which answers InvalidArgument. Messages are checked as they arrive, so streams keep
 * streaming; what this guard does not handle (oversized envelopes, unknown encodings, content types
 * that do not fit the method) is passed through for Connect to refuse with its own, correct, error.
 *
 * Decoding is not done twice: Connect is handed an empty placeholder for each message decoded here,
 * and the handOverDecoded interceptor (decoded-messages.ts), which must be installed first on the same
 * router, gives the handler the message decoded here instead. A 1 KiB produce batch cost ~6 µs of 17 per
 * message with both decodes (docs/benchmarks.md).
 */
export function guardRequestDecoding(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  const input = handler.method.input;
  const guarded = async (req: UniversalServerRequest) => {
    const framing = framingOf(req.header.get("content-type"), handler.method.methodKind === "unary");
    // Connect reads a GET's message from the query string, never from the body.
    if (!framing || req.method !== "POST" || !isByteStream(req.body)) return handler(req);
    const encoding = req.header.get(framing.encodingHeader) ?? "identity";
    if (framing.framing === "whole") {
      // Declared too large: Connect refuses it with ResourceExhausted before reading the body.
      if (Number(req.header.get("content-length") ?? 0) > readMaxBytes) return handler(req);
      if (encoding !== "identity") {
        // Rare (compressed Connect unary): validated here, decoded again by Connect.
        return handler({ ...req, body: checkWhole(req.body, input, encoding, readMaxBytes) });
      }
      let decoded: Awaited<ReturnType<typeof decodeWhole>>;
      try {
        decoded = await decodeWhole(req.body, input, readMaxBytes);
      } catch (err) {
        // Connect turns what its body read throws into the error response.
        return handler({ ...req, body: failing(err) });
      }
      if (decoded.message === undefined) return handler({ ...req, body: decoded.body });
      const contextValues = req.contextValues ?? createContextValues();
      trackDecoded(contextValues).push(decoded.message);
      // The body no longer has the length the client announced.
      const header = new Headers(req.header);
      header.delete("content-length");
      return handler({ ...req, header, contextValues, body: once(EMPTY) });
    }
    if (!framing.binary)
      return handler({ ...req, body: checkEnvelopes(req.body, undefined, encoding, readMaxBytes) });
    const contextValues = req.contextValues ?? createContextValues();
    const decoded = trackDecoded(contextValues);
    return handler({
      ...req,
      contextValues,
      body: checkEnvelopes(req.body, input, encoding, readMaxBytes, decoded),
    });
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

/**
 * Connect unary, identity encoding: reads the body and decodes it. Too large a body is handed back as
 * it was read (message undefined), for Connect to refuse with ResourceExhausted.
 */
async function decodeWhole(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage,
  readMaxBytes: number,
): Promise<
  { message: Message; body?: undefined } | { message?: undefined; body: AsyncIterable<Uint8Array> }
> {
  const read = await readWhole(body, readMaxBytes);
  if (!read.complete) return { body: prepend(read.chunks, read.rest) };
  const { chunks } = read;
  const bytes = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  return { message: check(schema, bytes) };
}

/**
 * Reads a unary body to its end, or until it exceeds `readMaxBytes` (complete false: the chunks read so
 * far and the unread rest, to hand on as they came).
 */
async function readWhole(
  body: AsyncIterable<Uint8Array>,
  readMaxBytes: number,
): Promise<
  | { complete: true; chunks: Uint8Array[] }
  | { complete: false; chunks: Uint8Array[]; rest: AsyncIterator<Uint8Array> }
> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { complete: true, chunks };
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > readMaxBytes) return { complete: false, chunks, rest: it };
  }
}

async function* prepend(chunks: Uint8Array[], it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
  yield* rest(it);
}

// eslint-disable-next-line require-yield -- a body whose read fails
async function* failing(err: unknown): AsyncGenerator<Uint8Array> {
  throw err;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Connect unary, compressed: the body is one message, validated and passed on as it came. */
async function* checkWhole(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage,
  encoding: string,
  readMaxBytes: number,
): AsyncGenerator<Uint8Array> {
  const read = await readWhole(body, readMaxBytes);
  if (!read.complete) {
    // Too large: Connect answers ResourceExhausted; hand it everything as it is.
    yield* prepend(read.chunks, read.rest);
    return;
  }
  const bytes = Buffer.concat(read.chunks);
  const plain = await decompress(bytes, encoding, readMaxBytes);
  if (plain) check(schema, plain);
  yield bytes;
}

/**
 * gRPC, gRPC-web and Connect streaming: 5-byte envelope headers (flags, big-endian length), then data.
 * The flags are checked for every format; the message itself when `schema` is given (binary). With
 * `decoded`, each message decoded here goes there and Connect gets a placeholder envelope instead.
 */
async function* checkEnvelopes(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage | undefined,
  encoding: string,
  readMaxBytes: number,
  decoded?: DecodedMessages,
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
        const message = plain ? check(schema, plain) : undefined;
        if (decoded) {
          decoded.push(message);
          if (message) {
            // An envelope with flags 0 and no data: Connect decodes an empty message in its place.
            yield new Uint8Array(5);
            continue;
          }
        }
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

function check(schema: DescMessage, bytes: Uint8Array): Message {
  try {
    // Unknown fields are skipped, not kept, as Connect is told to (see createHandler in rpc-server.ts).
    return fromBinary(schema, bytes, { readUnknownFields: false });
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
