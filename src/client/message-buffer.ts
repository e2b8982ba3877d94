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

  /** Adds an item if there is room now (true), without waiting; false when full. */
  tryPut(item: T): boolean {
    if (this.#closed) return true;
    if (this.size >= this.capacity) return false;
    this.#items.push(item);
    if (this.#takeWaiters.length > 0) wakeAll(this.#takeWaiters);
    return true;
  }

  /**
   * Up to `max` items available now, without waiting ([] when none). Throws the error given to fail()
   * when it is empty and failed.
   */
  takeAvailable(max: number): T[] {
    const available = this.size;
    if (available === 0) {
      if (this.#failure) throw this.#failure.error;
      return [];
    }
    const n = Math.min(max, available);
    const items = this.#items.slice(this.#head, this.#head + n);
    this.#head += n;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    if (this.#putWaiters.length > 0) wakeAll(this.#putWaiters);
    return items;
  }

  /** Resolves once an item is available, the buffer closed or failed, `timeoutMs` passed or `signal` fired. */
  async whenAvailable(signal?: AbortSignal, timeoutMs?: number): Promise<void> {
    if (this.size > 0 || this.#failure || this.#closed) return;
    if (signal?.aborted) throw new AbortedError(signal.reason);
    await waitFor(this.#takeWaiters, signal, timeoutMs);
    if (signal?.aborted && this.size === 0) throw new AbortedError(signal.reason);
  }

  /** Removes the buffered items `drop` selects (a stopped partition's); returns how many. */
  remove(drop: (item: T) => boolean): number {
    const kept = this.#items.slice(this.#head).filter((item) => !drop(item));
    const removed = this.size - kept.length;
    this.#items = kept;
    this.#head = 0;
    if (removed > 0 && this.#putWaiters.length > 0) wakeAll(this.#putWaiters);
    return removed;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
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

  /** takeAvailable() throws `error` once the items already buffered are taken. */
  fail(error: unknown): void {
    if (this.#failure || this.#closed) return;
    this.#failure = { error };
    wakeAll(this.#takeWaiters);
    wakeAll(this.#putWaiters);
  }

  /** No more items: whenAvailable() returns at once; put() drops its item. */
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
