import { performance } from "node:perf_hooks";
import { summariseLatencies, type LatencySummary } from "./stats.js";

export interface SequentialOptions {
  /** Unmeasured calls first. */
  warmupOps: number;
  /** The measured phase stops at this duration or this many calls, whichever comes first. */
  durationMs: number;
  maxOps: number;
}

export interface SequentialResult extends LatencySummary {
  ops: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  /** Successful calls per second. */
  opsPerSecond: number;
}

/** Calls `op(i)` one after another (each waits for the previous), timing each call. */
export async function runSequential(
  op: (i: number) => Promise<unknown>,
  options: SequentialOptions,
): Promise<SequentialResult> {
  let i = 0;
  for (let w = 0; w < options.warmupOps; w++) await op(i++);
  const latencies = new Float64Array(options.maxOps);
  let errors = 0;
  let firstError: string | undefined;
  let n = 0;
  const begin = performance.now();
  const deadline = begin + options.durationMs;
  while (n < options.maxOps && performance.now() < deadline) {
    const t0 = performance.now();
    try {
      await op(i++);
    } catch (err) {
      errors++;
      firstError ??= err instanceof Error ? err.message : String(err);
    }
    latencies[n++] = performance.now() - t0;
  }
  const elapsedMs = performance.now() - begin;
  return {
    ...summariseLatencies(latencies.subarray(0, n)),
    ops: n,
    errors,
    elapsedMs,
    opsPerSecond: ((n - errors) * 1000) / elapsedMs,
    ...(firstError ? { firstError } : {}),
  };
}
