import { AbortedError } from "./errors.js";

/**
 * Exponential backoff: the ceiling doubles per attempt from `baseMs` up to `maxMs`. "equal" jitter waits
 * between half the ceiling and the ceiling (attempt 1 waits about `baseMs`); "full" jitter anywhere
 * from 0 to the ceiling, which spreads many clients retrying the same thing (topic metadata after an
 * overloaded answer) the most. `floorMs` (a server's retry hint) is the least it waits.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  options: { jitter?: "equal" | "full"; floorMs?: number } = {},
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 20)));
  const delay =
    options.jitter === "full" ? Math.random() * ceiling : ceiling / 2 + Math.random() * (ceiling / 2);
  return Math.round(Math.max(options.floorMs ?? 0, delay));
}

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
