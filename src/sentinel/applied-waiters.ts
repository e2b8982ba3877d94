import { UnavailableError } from "../errors.js";

/** Callers waiting until the state has applied some operation id (or a deadline passed). */
export class AppliedWaiters {
  #waiters: { id: number; resolve: () => void }[] = [];

  /** Resolves once `notify` reports `id` applied; rejects with UnavailableError after `timeoutMs`. */
  wait(id: number, timeoutMs: number, appliedId: () => number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new UnavailableError(
            `not caught up to operation ${id} after ${timeoutMs} ms (applied ${appliedId()})`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        id,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Resolves every waiter for `applied` or an earlier id. */
  notify(applied: number): void {
    if (this.#waiters.length === 0) return;
    const due = this.#waiters.filter((w) => w.id <= applied);
    this.#waiters = this.#waiters.filter((w) => w.id > applied);
    for (const waiter of due) waiter.resolve();
  }

  /** Resolves every waiter (on stop: nobody waits for a plane that no longer applies anything). */
  releaseAll(): void {
    const all = this.#waiters;
    this.#waiters = [];
    for (const waiter of all) waiter.resolve();
  }
}
