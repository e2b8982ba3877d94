import { AbortedError } from "./errors.js";

/**
 * A bounded FIFO between the pull streams and the application: put() waits while it is full, which stops
 * reading the streams (HTTP/2 flow control then stops the broker), so a slow application holds at most
 * `capacity` unprocessed messages in memory.
 */
export class MessageBuffer<T> {
  #items: T[] = [];
  #head = 0;
  #putWaiters: Array<() => void> = [];
  #takeWaiters: Array<() => void> = [];
  #failure: { error: unknown } | undefined;
  #closed = false;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Adds an item once there is room; rejects with AbortedError when `signal` fires first. */
  async put(item: T, signal?: AbortSignal): Promise<void> {
    while (this.size >= this.capacity && !this.#closed) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      await waitFor(this.#putWaiters, signal);
    }
    if (this.#closed) return;
    this.#items.push(item);
    wakeAll(this.#takeWaiters);
  }

  /**
   * The next item; undefined after `timeoutMs` without one or once closed and empty. Throws the error
   * given to fail() once the items before it are taken, or AbortedError when `signal` fires.
   */
  async take(signal?: AbortSignal, timeoutMs?: number): Promise<T | undefined> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (this.#head < this.#items.length) {
        const item = this.#items[this.#head] as T;
        this.#head++;
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        wakeAll(this.#putWaiters);
        return item;
      }
      if (this.#failure) throw this.#failure.error;
      if (this.#closed) return undefined;
      if (signal?.aborted) throw new AbortedError(signal.reason);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await waitFor(this.#takeWaiters, signal, left === Infinity ? undefined : left);
    }
  }

  /** take() throws `error` once the items already buffered are taken. */
  fail(error: unknown): void {
    if (this.#failure || this.#closed) return;
    this.#failure = { error };
    wakeAll(this.#takeWaiters);
    wakeAll(this.#putWaiters);
  }

  /** No more items: take() returns undefined once empty; put() drops its item. */
  close(): void {
    this.#closed = true;
    wakeAll(this.#takeWaiters);
    wakeAll(this.#putWaiters);
  }
}

function wakeAll(waiters: Array<() => void>): void {
  for (const wake of waiters.splice(0)) wake();
}

/** Resolves on the next wake-up of `waiters`, on abort, or after `timeoutMs` (never rejects). */
function waitFor(waiters: Array<() => void>, signal?: AbortSignal, timeoutMs?: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", giveUp);
      resolve();
    };
    const giveUp = () => {
      const i = waiters.indexOf(done);
      if (i !== -1) waiters.splice(i, 1);
      done();
    };
    if (timeoutMs !== undefined) timer = setTimeout(giveUp, timeoutMs);
    signal?.addEventListener("abort", giveUp, { once: true });
    waiters.push(done);
  });
}
