import type { IncomingHttpHeaders } from "node:http";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { EncodedEnvelopes, substituteEnvelopes } from "../common/encoded-envelopes.js";

/**
 * Responses a streaming handler encoded itself (src/common/encoded-envelopes.ts): the handler pushes
 * each response's envelope and yields an empty placeholder, which the response body swaps for it.
 */
export type EncodedResponses = EncodedEnvelopes;

const encodedKey = createContextKey<EncodedEnvelopes | undefined>(undefined, {
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
  const encoded = new EncodedEnvelopes();
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
  return { ...response, body: substituteEnvelopes(body, encoded) };
}
