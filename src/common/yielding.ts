import { setImmediate as yieldToEventLoop } from "node:timers/promises";

/** Work of one turn of the event loop at most (ms) before a bulk loop yields to timers and I/O. */
export const SLICE_MS = 10;

/**
 * Runs `fn` over `items`, at most `concurrency` at once, yielding to the event loop whenever a slice of
 * SLICE_MS has been used. Work that resolves in microtasks only (applying a role to an open partition)
 * would otherwise run thousands of items in one turn and hold back everything else the process serves:
 * its heartbeats, its replication, its clients (docs/architecture.md, "Overload"). Not for work whose
 * order across callers matters: a later caller's items may run between this one's.
 */
export async function forEachYielding<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let sliceStart = Date.now();
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index] as T, index);
      if (Date.now() - sliceStart >= SLICE_MS) {
        await yieldToEventLoop();
        sliceStart = Date.now();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
