/**
 * Stream messages a sender encoded itself, as whole envelopes (flags byte, u32 length, protobuf bytes),
 * sent in place of Connect's serialization of each placeholder. Protobuf-es encodes into a buffer that
 * starts at 128 bytes and doubles (copying, and on a fresh page each time), moves every sub-message after
 * its length prefix, then copies the result once more, and Connect copies it again into its envelope:
 * for a message of large payloads that is about five message-sized copies where one suffices. The sender
 * pushes the envelope, then hands Connect an empty message of the same type (zero bytes on the wire, so
 * an uncompressed 5-byte envelope), which the body replaces with the next queued envelope. The server
 * uses it for responses (src/server/encoded-responses.ts), the SDK for produce requests
 * (src/client/encoded-requests.ts). Only for binary protocols without compression: envelopes are sent as
 * they are.
 */
export class EncodedEnvelopes {
  #queue: Uint8Array[] = [];

  /** The next message, enveloped: its placeholder follows right after. */
  push(envelope: Uint8Array): void {
    this.#queue.push(envelope);
  }

  /** The envelope for a placeholder chunk; any other chunk (errors, end of stream) passes as it is. */
  substitute(chunk: Uint8Array): Uint8Array {
    if (this.#queue.length === 0 || !isEmptyEnvelope(chunk)) return chunk;
    return this.#queue.shift() as Uint8Array;
  }
}

/** A stream body with each placeholder envelope swapped for the next queued one, in order. */
export async function* substituteEnvelopes(
  body: AsyncIterable<Uint8Array>,
  encoded: EncodedEnvelopes,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) yield encoded.substitute(chunk);
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
