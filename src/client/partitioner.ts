import { hash64Parts } from "../ring/hash.js";

const TWO_POW_32 = 4294967296;
const decoder = new TextDecoder();

/**
 * The partition of a keyed message: XXH64 (seed 0, the ring's hash) of the key's UTF-8 text, modulo the
 * partition count. Stable across processes, versions and languages, so the same key always lands in the
 * same partition (and keeps its order) while the partition count stays the same. Keys that are not valid
 * UTF-8 are hashed with invalid sequences replaced by U+FFFD (still deterministic).
 */
export function partitionForKey(key: Uint8Array | string, partitions: number): number {
  const { hi, lo } = hash64Parts(typeof key === "string" ? key : decoder.decode(key));
  // (hi * 2^32 + lo) mod n without leaving exact double arithmetic: every term stays below n².
  return ((hi % partitions) * (TWO_POW_32 % partitions) + (lo % partitions)) % partitions;
}

/** How a producer places messages that have neither a key nor a partition. */
export type KeylessPartitioning = "sticky" | "round-robin";

/**
 * What the sticky partitioner needs to know of a partition: whether the batch it is building is still
 * open (records queued, not yet taken by a request, below the batch limits), and whether it can send.
 */
export interface PartitionView {
  batchOpen(partition: number): boolean;
  available(partition: number): boolean;
}

/**
 * Where one producer's keyless messages to one topic go. Round-robin puts consecutive messages in
 * different partitions, so over many partitions every batch holds a record or two, and the brokers'
 * cost is per partition batch. Sticky (Kafka's default since KIP-480) keeps adding to one partition
 * until its batch leaves (taken by a request) or is full, then moves to the next partition in turn:
 * batches as full as with one partition, and over time the same even spread. The rotation starts at a
 * random partition, so producers starting together do not all fill the same one first.
 */
export class KeylessPartitioner {
  #current = -1;
  #rotation: number;

  constructor(
    private readonly mode: KeylessPartitioning,
    start: number = Math.floor(Math.random() * 2 ** 31),
  ) {
    this.#rotation = start;
  }

  /** The partition of the next keyless message, of `partitions`. */
  choose(partitions: number, view: PartitionView): number {
    if (this.mode === "round-robin") return this.#rotation++ % partitions;
    const current = this.#current;
    if (current >= 0 && current < partitions && view.batchOpen(current)) return current;
    // The next partition in turn that can send; if none can, the next one anyway (it waits for a leader).
    let next = this.#rotation++ % partitions;
    for (let tried = 1; tried < partitions && !view.available(next); tried++) {
      next = this.#rotation++ % partitions;
    }
    this.#current = next;
    return next;
  }
}
