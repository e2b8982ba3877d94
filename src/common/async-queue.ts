/**
 * An unbounded async iterable fed by push(): the glue between callback-style producers and the
 * `AsyncIterable`s that Connect streams read and write. One consumer.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #ended = false;
  #failure: { error: unknown } | undefined;

  get size(): number {
    return this.#items.length - this.#head;
  }

  /** fail() was called. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  push(item: T): void {
    if (this.#ended) return;
    this.#items.push(item);
    this.#notify();
  }

  /** No more items: the iterator finishes once the queued ones are taken. */
  end(): void {
    this.#ended = true;
    this.#notify();
  }

  /** The iterator throws `error` once the queued items are taken. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#failure = { error };
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const item = this.#items[this.#head] as T;
        this.#head++;
        // Compact now and then so a long-lived queue does not keep every item it ever held.
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        yield item;
        continue;
      }
      if (this.#failure) throw this.#failure.error;
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
