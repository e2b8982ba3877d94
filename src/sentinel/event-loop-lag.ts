/**
 * This process's event-loop lag over a recent window: a timer that should fire every `intervalMs`
 * records how late it fired. The failure detector asks for the largest lag of the last heartbeat TTL:
 * when this sentinel could not run, the heartbeats it should have written or seen may be what was late.
 */
export class EventLoopLag {
  #samples: { at: number; lagMs: number }[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs = 250,
    /** Samples older than this are dropped (ms). */
    private readonly keepMs = 120_000,
  ) {}

  start(): void {
    if (this.#timer) return;
    let expected = performance.now() + this.intervalMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#samples.push({ at: now, lagMs: Math.max(0, now - expected) });
      expected = now + this.intervalMs;
      while ((this.#samples[0]?.at ?? now) < now - this.keepMs) this.#samples.shift();
    }, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The largest lag (ms) recorded in the last `windowMs`, including a tick overdue right now. */
  maxOver(windowMs: number): number {
    const now = performance.now();
    let max = 0;
    for (const sample of this.#samples) if (sample.at >= now - windowMs) max = Math.max(max, sample.lagMs);
    const last = this.#samples[this.#samples.length - 1];
    if (last) max = Math.max(max, now - last.at - this.intervalMs);
    return max;
  }
}
