import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  /** Give up after this many milliseconds. */
  timeoutMs?: number;
  /** Poll period in milliseconds. */
  intervalMs?: number;
  /** Said in the timeout error. */
  what?: string;
}

/**
 * Polls `probe` until it returns a value other than undefined/false, or throws on the deadline with the
 * last error seen. This is the synchronisation primitive of the tests: a deadline, never a bare sleep.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? `: last error: ${lastError.message}` : "";
      throw new Error(
        `timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${options.what ?? "condition"}${reason}`,
      );
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/**
 * A promise's outcome so far, without waiting for a pending one: "resolved", its rejection, or "pending"
 * when it has not settled by the next turn of the event loop (pure state machines settle synchronously).
 */
export async function outcomeNow(promise: Promise<unknown>): Promise<unknown> {
  const pending = Symbol("pending");
  const result = await Promise.race([
    promise.then(
      () => "resolved",
      (err: unknown) => err,
    ),
    new Promise((resolve) => setImmediate(() => resolve(pending))),
  ]);
  return result === pending ? "pending" : result;
}
