import { AbortedError } from "./errors.js";

export { backoffDelay } from "../common/backoff.js";

/** The wait a server asked for with an overload refusal (OverloadedError), if any. */
export function retryHintMs(err: unknown): number | undefined {
  const hint = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof hint === "number" && Number.isFinite(hint) ? hint : undefined;
}

/** Resolves after `ms`, or rejects with AbortedError when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Lets a timer not hold a Node process open (no-op in browsers, whose timers have no unref). */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  const maybe = timer as unknown as { unref?: () => void };
  maybe.unref?.();
}
