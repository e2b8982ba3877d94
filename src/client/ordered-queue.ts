/**
 * Items queued per key (a partition), handed out so that at most one item per key is being worked on,
 * in arrival order within a key, keys taking turns (pure; what `run(handler, { partitionsConcurrently })`
 * schedules with). take() marks the item's key busy until done(key).
 */
export class OrderedQueue<T> {
  readonly #queues = new Map<string, T[]>();
  /** Keys with items and not busy, oldest first (a Set keeps insertion order). */
  readonly #ready = new Set<string>();
  readonly #busy = new Set<string>();
  #size = 0;

  constructor(private readonly keyOf: (item: T) => string) {}

  /** Items queued (not taken). */
  get size(): number {
    return this.#size;
  }

  /** Keys taken and not done. */
  get busy(): number {
    return this.#busy.size;
  }

  push(item: T): void {
    const key = this.keyOf(item);
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = [];
      this.#queues.set(key, queue);
    }
    queue.push(item);
    this.#size++;
    if (!this.#busy.has(key)) this.#ready.add(key);
  }

  /** The oldest item of the key that waited longest among keys not busy; its key is busy from now on. */
  take(): T | undefined {
    for (const key of this.#ready) {
      this.#ready.delete(key);
      const queue = this.#queues.get(key);
      const item = queue?.shift();
      if (item === undefined) continue;
      if (queue?.length === 0) this.#queues.delete(key);
      this.#size--;
      this.#busy.add(key);
      return item;
    }
    return undefined;
  }

  /** The item taken for `key` is finished: its next item may be taken. */
  done(key: string): void {
    if (!this.#busy.delete(key)) return;
    if (this.#queues.has(key)) this.#ready.add(key);
  }

  /** Removes and returns every queued item of `key` (none is being taken). */
  drain(key: string): T[] {
    const queue = this.#queues.get(key) ?? [];
    this.#queues.delete(key);
    this.#ready.delete(key);
    this.#size -= queue.length;
    return queue;
  }

  /** Keys with queued items. */
  keys(): string[] {
    return [...this.#queues.keys()];
  }
}
