/**
 * Exponential backoff, the one used everywhere (SDK retries, role pushes, watches, replication,
 * recovery): the ceiling doubles per attempt from `baseMs` up to `maxMs`. "equal" jitter (the default)
 * waits between half the ceiling and the ceiling, so attempt 1 waits about `baseMs` and retries of many
 * parties that failed together spread out; "full" jitter waits anywhere from 0 to the ceiling, which
 * spreads the most (many clients retrying the same overloaded call); "none" waits the ceiling.
 * `floorMs` (e.g. a server's retry hint) is the least it waits. `attempt` counts from 1.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  options: { jitter?: "none" | "equal" | "full"; floorMs?: number; random?: () => number } = {},
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 20)));
  const random = options.random ?? Math.random;
  const jitter = options.jitter ?? "equal";
  const delay =
    jitter === "full"
      ? random() * ceiling
      : jitter === "none"
        ? ceiling
        : ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(options.floorMs ?? 0, delay));
}
