/** The tests' polling and port helpers (one copy for tests and benchmarks), plus a bound for one step. */
export { freePort } from "../../test/helpers/ports.js";
export { waitFor, type WaitOptions } from "../../test/helpers/wait.js";

/** Rejects with a clear message when `promise` takes longer than `ms` (every bench step is bounded). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
