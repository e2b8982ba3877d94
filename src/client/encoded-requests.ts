import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { EncodedEnvelopes, substituteEnvelopes } from "../common/encoded-envelopes.js";

/**
 * Produce requests the SDK encoded itself (src/client/produce-encoding.ts, the envelope swap of
 * src/common/encoded-envelopes.ts): a stream that pre-encodes registers a queue and names it in a request
 * header; the transport's HTTP client (withEncodedRequests) takes the header off before the request
 * leaves and swaps each placeholder in the request body for the next queued envelope (the lean stream
 * client does the same through takeEncodedRequests). Only transports built with withEncodedRequests say
 * so (ClientTransport.encodesRequests): on any other, the header would reach the broker and placeholders
 * would arrive as empty requests.
 */
const HEADER = "goulette-encoded-requests";

const queues = new Map<string, EncodedEnvelopes>();
let streams = 0;

/** The queue of one stream's pre-encoded requests, and the header that names it. */
export interface EncodedRequestStream {
  readonly queue: EncodedEnvelopes;
  readonly header: Readonly<Record<string, string>>;
  /** Forgets the queue (the stream is over). */
  close(): void;
}

export function openEncodedRequests(): EncodedRequestStream {
  const id = String(++streams);
  const queue = new EncodedEnvelopes();
  queues.set(id, queue);
  return { queue, header: { [HEADER]: id }, close: () => queues.delete(id) };
}

/** `client` with the placeholders of streams opened by openEncodedRequests swapped for their envelopes. */
export function withEncodedRequests(client: UniversalClientFn): UniversalClientFn {
  return (request) => {
    const id = request.header.get(HEADER);
    if (id === null) return client(request);
    request.header.delete(HEADER);
    const queue = queues.get(id);
    if (queue === undefined || request.body === undefined) return client(request);
    return client({ ...request, body: substituteEnvelopes(request.body, queue) });
  };
}

/**
 * For clients that send streams themselves (lean-transport.ts): the headers without the one naming a
 * queue, and that queue (undefined when the call pre-encodes nothing).
 */
export function takeEncodedRequests(headers: Readonly<Record<string, string>>): {
  headers: Record<string, string>;
  queue: EncodedEnvelopes | undefined;
} {
  const { [HEADER]: id, ...rest } = headers;
  return { headers: rest, queue: id === undefined ? undefined : queues.get(id) };
}
