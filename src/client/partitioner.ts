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
