import type { EventEmitter } from "node:events";

/**
 * Resolves once a writable stream that refused more (write() returned false) drains, or closes: a
 * writer then goes on, or finds the stream closed. Never rejects (errors close the stream).
 */
export function drainedOrClosed(stream: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}
