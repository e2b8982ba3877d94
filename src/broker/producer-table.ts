/** Offset of a record whose append has not resolved yet. */
export const PENDING = -1;
/** The message id is older than what the table remembers for this producer. */
export const FORGOTTEN = -2;

/**
 * A message id as a key of the table: a number while the id is exact as one (every id below 2^53, which
 * is every id a producer counting from 1 will use), the bigint beyond. Up to 2^31 a number is no heap
 * object: the table holds a window of ids per producer, long-lived, and bigint keys were one more object
 * per record for the young GCs to copy.
 */
type IdKey = number | bigint;
const MAX_EXACT_ID = BigInt(Number.MAX_SAFE_INTEGER);

function keyOf(messageId: bigint): IdKey {
  return messageId <= MAX_EXACT_ID ? Number(messageId) : messageId;
}

interface ProducerState {
  /** message id → offset (or PENDING), in insertion order so the oldest is evicted first. */
  ids: Map<IdKey, number>;
  /** Largest id evicted from `ids`: anything at or below it that is not in `ids` was seen before. */
  evictedMax: IdKey;
  /** Largest id stored (appended, or seen while rebuilding); -1 before the first. */
  lastStored: bigint;
  /** Reservations (appends in flight). */
  pending: number;
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
    const offset = state.ids.get(keyOf(messageId));
    if (offset !== undefined) return offset;
    return messageId <= state.evictedMax ? FORGOTTEN : undefined;
  }

  /**
   * lookup() then, when the message is new, reserve() — one call on the produce hot path. Returns what
   * lookup() returns; undefined means it is new and now reserved.
   */
  claim(producerId: string, messageId: bigint): number | undefined {
    const state = this.#producers.get(producerId);
    const key = keyOf(messageId);
    if (state !== undefined) {
      const offset = state.ids.get(key);
      if (offset !== undefined) return offset;
      if (messageId <= state.evictedMax) return FORGOTTEN;
    }
    this.#set(producerId, messageId, PENDING, key);
    return undefined;
  }

  /**
   * The order rule of idempotent producers: may a record whose predecessor (the producer's message just
   * before it on this partition, skipping those it gave up on) is `previousId` be appended now? "yes"
   * when it names none (0: the first message, or a client without the check), when the producer is
   * unknown here (its records are older than the rebuilt window, or it was forgotten: today's
   * behaviour), when a message at or after the predecessor is stored, or when the predecessor's append is
   * in flight (appends land in call order). Otherwise "wait" while another append of this producer is in
   * flight, else "refuse": storing the record now would put it before an earlier one.
   */
  follows(producerId: string, previousId: bigint): "yes" | "wait" | "refuse" {
    if (previousId === 0n) return "yes";
    const state = this.#producers.get(producerId);
    if (state === undefined || previousId <= state.lastStored) return "yes";
    if (state.ids.get(keyOf(previousId)) === PENDING) return "yes";
    return state.pending > 0 ? "wait" : "refuse";
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
    const key = keyOf(messageId);
    if (state?.ids.get(key) === PENDING) {
      state.ids.delete(key);
      state.pending--;
    }
  }

  clear(): void {
    this.#producers.clear();
  }

  #set(producerId: string, messageId: bigint, offset: number, key = keyOf(messageId)): void {
    let state = this.#producers.get(producerId);
    if (state === undefined) {
      state = { ids: new Map(), evictedMax: -1, lastStored: -1n, pending: 0 };
      if (this.#producers.size >= this.options.maxProducers) {
        const oldest = this.#producers.keys().next();
        if (!oldest.done) this.#producers.delete(oldest.value);
      }
      this.#producers.set(producerId, state);
    }
    const before = state.ids.get(key);
    const known = before !== undefined;
    if (before === PENDING) state.pending--;
    if (offset === PENDING) state.pending++;
    else if (messageId > state.lastStored) state.lastStored = messageId;
    // Updating a reservation keeps its place in the eviction order.
    state.ids.set(key, offset);
    if (!known && state.ids.size > this.options.windowSize) {
      const oldest = state.ids.keys().next();
      if (!oldest.done) {
        if (state.ids.get(oldest.value) === PENDING) state.pending--;
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
