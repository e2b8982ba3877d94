import type { IncomingHttpHeaders } from "node:http";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * Response messages a streaming handler encoded itself, as whole envelopes (flags byte, u32 length,
 * protobuf bytes), for the server to send in place of Connect's serialization of each placeholder.
 * Protobuf-es encodes into a buffer that starts at 128 bytes and doubles (copying), moves every
 * sub-message after its length prefix, then copies the result once more, and Connect copies it again
 * into its envelope: for a 1 MiB FetchResponse of stored payloads that is five request-sized copies
 * where one suffices. The handler pushes the envelope, then yields an empty message of its output type
 * (zero bytes on the wire, so an uncompressed 5-byte envelope), which the body replaces with the next
 * queued envelope. Offered only to binary protocols without response compression (the envelopes are
 * sent as they are); handlers without a queue yield real messages.
 */
export class EncodedResponses {
  #queue: Uint8Array[] = [];

  /** The next response, enveloped: the handler yields its placeholder right after. */
  push(envelope: Uint8Array): void {
    this.#queue.push(envelope);
  }

  /** The envelope for a placeholder chunk; any other chunk (errors, end of stream) passes as it is. */
  substitute(chunk: Uint8Array): Uint8Array {
    if (this.#queue.length === 0 || !isEmptyEnvelope(chunk)) return chunk;
    return this.#queue.shift() as Uint8Array;
  }
}

/** The placeholder's envelope: not compressed, zero bytes long. */
function isEmptyEnvelope(chunk: Uint8Array): boolean {
  return (
    chunk.length === 5 &&
    chunk[0] === 0 &&
    chunk[1] === 0 &&
    chunk[2] === 0 &&
    chunk[3] === 0 &&
    chunk[4] === 0
  );
}

const encodedKey = createContextKey<EncodedResponses | undefined>(undefined, {
  description: "response envelopes a streaming handler encoded itself",
});

/** The queue of a request whose protocol takes pre-encoded envelopes; undefined otherwise. */
export function encodedResponsesOf(values: ContextValues): EncodedResponses | undefined {
  return values.get(encodedKey);
}

/** Binary streaming protocols, whose messages all go in the same 5-byte envelope. */
const ENVELOPED_BINARY = new Set([
  "application/grpc",
  "application/grpc+proto",
  "application/grpc-web",
  "application/grpc-web+proto",
  "application/connect+proto",
]);

/** Headers by which a client asks for compressed responses (or compresses its own, which Connect mirrors). */
const COMPRESSION_HEADERS = [
  "grpc-accept-encoding",
  "grpc-encoding",
  "connect-accept-encoding",
  "connect-content-encoding",
];

/**
 * A fresh queue for one request when its content type is an enveloped binary protocol and the client
 * offers no compression (pre-encoded envelopes are sent uncompressed; a client that asked for
 * compression keeps getting it).
 */
export function trackEncoded(
  values: ContextValues,
  headers: IncomingHttpHeaders,
): EncodedResponses | undefined {
  const type = (headers["content-type"] ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
  if (!ENVELOPED_BINARY.has(type)) return undefined;
  for (const name of COMPRESSION_HEADERS) {
    const value = headers[name];
    const offered = Array.isArray(value) ? value.join(",") : (value ?? "");
    if (offered.split(",").some((e) => e.trim() !== "" && e.trim() !== "identity")) return undefined;
  }
  const encoded = new EncodedResponses();
  values.set(encodedKey, encoded);
  return encoded;
}

/** The response, its streamed body with each placeholder envelope swapped for the handler's encoding. */
export function withEncodedBody(
  response: UniversalServerResponse,
  encoded: EncodedResponses | undefined,
): UniversalServerResponse {
  const body = response.body;
  if (encoded === undefined || body === undefined || body instanceof Uint8Array) return response;
  return { ...response, body: substituteEncoded(body, encoded) };
}

async function* substituteEncoded(
  body: AsyncIterable<Uint8Array>,
  encoded: EncodedResponses,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) yield encoded.substitute(chunk);
}
