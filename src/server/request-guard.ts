import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { errorMessage, toConnectError } from "../errors.js";
import { callConnection, type HeaderCheck } from "./call-head.js";
import { decodedSize, type DecodeLimits } from "./decode-budget.js";
import { ByteQueue } from "../common/byte-queue.js";
import { trackDecoded, type DecodedMessages } from "./decoded-messages.js";
import { requestLedger, type RequestLedger } from "./inflight-budget.js";

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

/** What the guard enforces, besides well-formed messages. */
export interface RequestGuardOptions {
  /** Largest request message, in bytes on the wire (and after decompression). */
  readMaxBytes: number;
  /** Bounds on the decoded message (repeated elements, estimated heap). */
  decode: DecodeLimits;
  /** Credentials, checked from the headers before any body byte is read. */
  authenticate?: HeaderCheck | undefined;
}

/**
 * Admits each request in two steps, so that what a caller sends costs no more than its budget:
 *
 * 1. Authentication, from the call's head (method, headers, connection) alone: a call refused here is
 *    answered without a byte of its body being read (the options' HeaderCheck).
 * 2. Decoding, bounded: every body byte kept is charged to the in-flight budget of the process and of
 *    the connection (the RequestLedger the RPC server puts in the context values), and each binary
 *    message is walked on the wire (decode-budget.ts) before it is decoded, so one whose decoded form
 *    would pass the element count or the memory estimate is refused before it is built.
 *
 * Decoding here, before Connect does, also turns a message that does not decode (random bytes,
 * truncated fields, wrong wire types, invalid UTF-8 in a string) into InvalidArgument; Connect's own
 * binary parser reports these as Internal ("parse binary: …"), which would tell the client the server
 * is broken when the request is. Envelope flags are checked for every format, since Connect reads an
 * unknown flag as "compressed" and fails with Internal too; JSON messages are left to Connect, which
 * answers InvalidArgument. Messages are checked as they arrive, so streams keep streaming; what this
 * guard does not handle (oversized envelopes, unknown encodings, content types that do not fit the
 * method) is passed through for Connect to refuse with its own, correct, error.
 *
 * Decoding is not done twice: Connect is handed an empty placeholder for each message decoded here,
 * and the handOverDecoded interceptor (decoded-messages.ts), which must be installed first on the same
 * router, gives the handler the message decoded here instead. A 1 KiB produce batch cost ~6 µs of 17 per
 * message with both decodes (docs/benchmarks.md).
 */
export function guardRequestDecoding(
  handler: UniversalHandler,
  options: RequestGuardOptions,
): UniversalHandler {
  const { readMaxBytes } = options;
  const input = handler.method.input;
  const guarded = async (req: UniversalServerRequest) => {
    // Step 1: who is calling, from the headers only.
    const refused = await authenticate(options.authenticate, handler, req);
    if (refused) return handler(refusing(req, refused));
    // Step 2: the body, within budget.
    const ledger = requestLedger(req.contextValues);
    const framing = framingOf(req.header.get("content-type"), handler.method.methodKind === "unary");
    // Connect reads a GET's message from the query string, never from the body.
    if (req.method !== "POST" || !isByteStream(req.body)) return handler(req);
    if (!framing) return handler({ ...req, body: metered(req.body, ledger) });
    const limits: Limits = { readMaxBytes, decode: options.decode, ledger };
    const encoding = req.header.get(framing.encodingHeader) ?? "identity";
    if (framing.framing === "whole") {
      // Declared too large: Connect refuses it with ResourceExhausted before reading the body.
      if (Number(req.header.get("content-length") ?? 0) > readMaxBytes) return handler(req);
      if (encoding !== "identity") {
        // Rare (compressed Connect unary): validated here, decoded again by Connect.
        return handler({ ...req, body: checkWhole(req.body, input, encoding, limits) });
      }
      let decoded: Awaited<ReturnType<typeof decodeWhole>>;
      try {
        decoded = await decodeWhole(req.body, input, limits);
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
      return handler({ ...req, body: checkEnvelopes(req.body, undefined, encoding, limits) });
    const contextValues = req.contextValues ?? createContextValues();
    const decoded = trackDecoded(contextValues);
    return handler({
      ...req,
      contextValues,
      body: checkEnvelopes(req.body, input, encoding, limits, decoded),
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

interface Limits {
  readMaxBytes: number;
  decode: DecodeLimits;
  ledger: RequestLedger | undefined;
}

/** The check's refusal as a ConnectError, or undefined when the call may go on. */
async function authenticate(
  check: HeaderCheck | undefined,
  handler: UniversalHandler,
  req: UniversalServerRequest,
): Promise<ConnectError | undefined> {
  if (!check) return undefined;
  const contextValues = req.contextValues ?? createContextValues();
  try {
    await check({
      service: handler.service,
      method: handler.method,
      header: req.header,
      connection: callConnection(contextValues),
      contextValues,
    });
    return undefined;
  } catch (err) {
    return toConnectError(err);
  }
}

/**
 * The request with a body whose first read fails with `err`: Connect answers with that error without
 * reading anything (for streams, when the handler first reads). Its announced length is dropped, or
 * Connect would answer a large one with ResourceExhausted instead.
 */
function refusing(req: UniversalServerRequest, err: ConnectError): UniversalServerRequest {
  const header = new Headers(req.header);
  header.delete("content-length");
  return { ...req, header, body: failing(err) };
}

/** Passes the body on as it is, charging each chunk to the ledger (bodies Connect decodes itself). */
async function* metered(
  body: AsyncIterable<Uint8Array>,
  ledger: RequestLedger | undefined,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    ledger?.charge(chunk.byteLength);
    yield chunk;
  }
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
  limits: Limits,
): Promise<
  { message: Message; body?: undefined } | { message?: undefined; body: AsyncIterable<Uint8Array> }
> {
  const read = await readWhole(body, limits);
  if (!read.complete) return { body: prepend(read.chunks, read.rest) };
  const { chunks } = read;
  const bytes = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  return { message: decodeChecked(schema, bytes, limits) };
}

/**
 * Reads a unary body to its end, or until it exceeds `readMaxBytes` (complete false: the chunks read so
 * far and the unread rest, to hand on as they came). Each chunk is charged to the ledger as it is kept.
 */
async function readWhole(
  body: AsyncIterable<Uint8Array>,
  { readMaxBytes, ledger }: Limits,
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
    ledger?.charge(next.value.byteLength);
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
  limits: Limits,
): AsyncGenerator<Uint8Array> {
  const read = await readWhole(body, limits);
  if (!read.complete) {
    // Too large: Connect answers ResourceExhausted; hand it everything as it is.
    yield* prepend(read.chunks, read.rest);
    return;
  }
  const bytes = Buffer.concat(read.chunks);
  const plain = await decompress(bytes, encoding, limits.readMaxBytes);
  if (plain) decodeChecked(schema, plain, limits);
  yield bytes;
}

/**
 * gRPC, gRPC-web and Connect streaming: 5-byte envelope headers (flags, big-endian length), then data.
 * The flags are checked for every format; the message itself when `schema` is given (binary). With
 * `decoded`, each message decoded here goes there and Connect gets a placeholder envelope instead.
 * What a message holds is charged to the ledger from its first byte read until Connect asks for the
 * next one (by then the handler has it).
 */
async function* checkEnvelopes(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage | undefined,
  encoding: string,
  limits: Limits,
  decoded?: DecodedMessages,
): AsyncGenerator<Uint8Array> {
  const { readMaxBytes, ledger } = limits;
  const it = body[Symbol.asyncIterator]();
  const queue = new ByteQueue();
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    ledger?.charge(next.value.byteLength);
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
      let held = envelope.length;
      if (schema) {
        const before = ledger?.held ?? 0;
        const plain = flags & 0x01 ? await decompress(data, encoding, readMaxBytes) : data;
        // Decompressed bytes are held as long as the message (its bytes fields are views onto them).
        if (plain && plain !== data) ledger?.charge(plain.length);
        const message = plain ? decodeChecked(schema, plain, limits) : undefined;
        held += (ledger?.held ?? 0) - before;
        if (decoded) {
          decoded.push(message);
          if (message) {
            // An envelope with flags 0 and no data: Connect decodes an empty message in its place.
            yield new Uint8Array(5);
            ledger?.release(held);
            continue;
          }
        }
      }
      yield envelope;
      ledger?.release(held);
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

/**
 * Decodes one message, within the limits (also the gRPC fast path's decode, grpc-fast-path.ts): its decoded size is estimated on the wire first (refused
 * over the limits) and charged to the ledger.
 */
export function decodeChecked(
  schema: DescMessage,
  bytes: Uint8Array,
  limits: Pick<Limits, "decode" | "ledger">,
): Message {
  limits.ledger?.charge(decodedSize(schema, bytes, limits.decode));
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
