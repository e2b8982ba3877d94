/**
 * Time for fences and timeouts. A monotonic clock (`performance.now()`): the wall clock can step (NTP,
 * an operator, a VM resumed), and a fence measured with `Date.now()` would then stretch or shrink by the
 * step. Tests inject their own to drive time.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; never goes backwards. */
  now(): number;
}

export const monotonicClock: Clock = { now: () => performance.now() };
