/** Offset of a record whose append has not resolved yet. */
export const PENDING = -1;
/** The message id is older than what the table remembers for this producer. */
export const FORGOTTEN = -2;

interface ProducerState {
  /** message id → offset (or PENDING), in insertion order so the oldest is evicted first. */
  ids: Map<bigint, number>;
  /** Largest id evicted from `ids`: anything at or below it that is not in `ids` was seen before. */
  evictedMax: bigint;
}

export interface ProducerTableOptions {
  /** Message ids remembered per producer (the retry window). */
  windowSize: number;
  /** Producers remembered; the least recently active is forgotten first. */
  maxProducers: number;
}

/**
 * Idempotent produce: per producer id, the recent message ids and the offsets they got, so that a retry
 * is acknowledged with the original offset instead of being appended again. The partition leader
 * rebuilds it from the log tail when it starts leading (records store producer id and message id), so it
 * survives leadership changes. Scope: the last `windowSize` ids per producer.
 */
export class ProducerTable {
  readonly #producers = new Map<string, ProducerState>();

  constructor(private readonly options: ProducerTableOptions) {}

  get size(): number {
    return this.#producers.size;
  }

  /**
   * The offset a message was appended at, PENDING while its append is in flight, FORGOTTEN when it is
   * older than the window (it was appended, but the offset is no longer known), or undefined when new.
   */
  lookup(producerId: string, messageId: bigint): number | undefined {
    const state = this.#producers.get(producerId);
    if (state === undefined) return undefined;
    const offset = state.ids.get(messageId);
    if (offset !== undefined) return offset;
    return messageId <= state.evictedMax ? FORGOTTEN : undefined;
  }

  /**
   * lookup() then, when the message is new, reserve() — one call on the produce hot path. Returns what
   * lookup() returns; undefined means it is new and now reserved.
   */
  claim(producerId: string, messageId: bigint): number | undefined {
    const state = this.#producers.get(producerId);
    if (state !== undefined) {
      const offset = state.ids.get(messageId);
      if (offset !== undefined) return offset;
      if (messageId <= state.evictedMax) return FORGOTTEN;
    }
    this.#set(producerId, messageId, PENDING);
    return undefined;
  }

  /** Marks a message as being appended (a retry arriving meanwhile waits for it). */
  reserve(producerId: string, messageId: bigint): void {
    this.#set(producerId, messageId, PENDING);
  }

  /** Records where a message landed (leader append resolved, or a record seen while rebuilding). */
  record(producerId: string, messageId: bigint, offset: number): void {
    this.#set(producerId, messageId, offset);
  }

  /** Forgets a reservation whose append failed, so that a retry appends it. */
  release(producerId: string, messageId: bigint): void {
    const state = this.#producers.get(producerId);
    if (state?.ids.get(messageId) === PENDING) state.ids.delete(messageId);
  }

  clear(): void {
    this.#producers.clear();
  }

  #set(producerId: string, messageId: bigint, offset: number): void {
    let state = this.#producers.get(producerId);
    if (state === undefined) {
      state = { ids: new Map(), evictedMax: -1n };
      if (this.#producers.size >= this.options.maxProducers) {
        const oldest = this.#producers.keys().next();
        if (!oldest.done) this.#producers.delete(oldest.value);
      }
      this.#producers.set(producerId, state);
    }
    const known = state.ids.has(messageId);
    // Updating a reservation keeps its place in the eviction order.
    state.ids.set(messageId, offset);
    if (!known && state.ids.size > this.options.windowSize) {
      const oldest = state.ids.keys().next();
      if (!oldest.done) {
        state.ids.delete(oldest.value);
        if (oldest.value > state.evictedMax) state.evictedMax = oldest.value;
      }
    }
  }

  /** Marks a producer as recently active (once per request), so the LRU bound forgets idle ones first. */
  touch(producerId: string): void {
    const state = this.#producers.get(producerId);
    if (state === undefined) return;
    this.#producers.delete(producerId);
    this.#producers.set(producerId, state);
  }
}
