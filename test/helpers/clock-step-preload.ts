/**
 * Preload (`node --import`) for processes whose wall clock a test steps: each SIGUSR2 moves `Date.now()`
 * by GOULETTE_TEST_CLOCK_STEP_MS (default one hour back), as NTP or an operator stepping the clock would.
 * The monotonic clock (`performance.now()`) is untouched, as on a real machine.
 */
const stepMs = Number(process.env.GOULETTE_TEST_CLOCK_STEP_MS ?? -3_600_000);
const wallNow = Date.now.bind(Date);
let offsetMs = 0;
Date.now = () => wallNow() + offsetMs;
process.on("SIGUSR2", () => {
  offsetMs += stepMs;
});

/** The path to give `--import` (this file, compiled). */
export const CLOCK_STEP_PRELOAD = new URL(import.meta.url).pathname;
