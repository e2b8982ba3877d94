import type { Message } from "@bufbuild/protobuf";
import { createContextKey, type ContextValues, type Interceptor } from "@connectrpc/connect";

/**
 * The request messages the request guard decoded (and so validated), in arrival order, for the handler.
 * The guard hands Connect an empty placeholder in place of each one it decoded, so that a message is
 * decoded once, not twice; `undefined` marks a message the guard passed through as it was (Connect's
 * own decode is then the one to use).
 */
export class DecodedMessages {
  #queue: (Message | undefined)[] = [];

  push(message: Message | undefined): void {
    this.#queue.push(message);
  }

  /** The guard's decode of the next message, or Connect's (`parsed`) when the guard passed it through. */
  take<T>(parsed: T): T {
    if (this.#queue.length === 0) return parsed;
    return (this.#queue.shift() as T | undefined) ?? parsed;
  }
}

const decodedKey = createContextKey<DecodedMessages | undefined>(undefined, {
  description: "request messages decoded by the request guard",
});

/** A fresh queue for one request, registered in its context values. */
export function trackDecoded(values: ContextValues): DecodedMessages {
  const decoded = new DecodedMessages();
  values.set(decodedKey, decoded);
  return decoded;
}

/**
 * Swaps Connect's decode of each placeholder for the guard's decode of the real message. Must be the
 * first (outermost) interceptor, so that every other interceptor and the handler see the real message;
 * requests the guard did not decode carry no queue and pass untouched.
 */
export const handOverDecoded: Interceptor = (next) => (req) => {
  const decoded = req.contextValues.get(decodedKey);
  if (!decoded) return next(req);
  if (!req.stream) return next({ ...req, message: decoded.take(req.message) });
  return next({ ...req, message: takeEach(req.message, decoded) });
};

async function* takeEach<T>(messages: AsyncIterable<T>, decoded: DecodedMessages): AsyncGenerator<T> {
  for await (const parsed of messages) yield decoded.take(parsed);
}
