/**
 * A level-free wake-up: waiters sleep until the next notify() (or a timeout, or an abort) and then
 * re-check their own condition. Used for long-polling readers and replication sessions.
 */
export class Signal {
  #waiters: Array<() => void> = [];
  /** Lasting listeners (a replication session watching many partitions with one wake-up of its own). */
  readonly #listeners = new Set<() => void>();

  notify(): void {
    for (const listener of this.#listeners) listener();
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Calls `listener` on every notify() until the returned function is called. */
  subscribe(listener: () => void): () => void {
    const own = () => listener();
    this.#listeners.add(own);
    return () => this.#listeners.delete(own);
  }

  /** Resolves on the next notify(), after `timeoutMs`, or when `abort` fires (never rejects). */
  wait(timeoutMs: number, abort?: AbortSignal): Promise<void> {
    if (abort?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        abort?.removeEventListener("abort", giveUp);
        resolve();
      };
      const giveUp = () => {
        const i = this.#waiters.indexOf(done);
        if (i !== -1) this.#waiters.splice(i, 1);
        done();
      };
      const timer = setTimeout(giveUp, timeoutMs);
      abort?.addEventListener("abort", giveUp, { once: true });
      this.#waiters.push(done);
    });
  }
}
