/**
 * The last answer built per key, reused while what it was built from is unchanged. GetBrokers answers
 * are read far more often than the cluster state changes, and building one (a message per broker and per
 * partition) showed in the read path's profile. An entry is valid for one state version (the applied
 * operation id: every change to brokers or topics is an applied operation); what changes outside the log
 * (the brokers' last heartbeats) is checked by the caller's `fresh` on every hit.
 */
export class AnswerCache<V> {
  readonly #entries = new Map<string, Entry<V>>();

  /** At most `maxEntries` keys are kept; the oldest written goes first. */
  constructor(private readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError("maxEntries must be ≥ 1");
  }

  /** The value cached for `key` if it was built at `version` and `fresh` accepts it; else undefined. */
  get(key: string, version: number, fresh: (value: V) => boolean = () => true): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry || entry.version !== version || !fresh(entry.value)) return undefined;
    return entry.value;
  }

  set(key: string, version: number, value: V): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { version, value });
  }

  get size(): number {
    return this.#entries.size;
  }
}

interface Entry<V> {
  version: number;
  value: V;
}
