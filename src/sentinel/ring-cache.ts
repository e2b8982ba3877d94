import { createHashRing, type HashRing } from "../ring/hash-ring.js";

/**
 * Rebuilds the hash ring only when ring membership or its virtual-node count changes (both are rare,
 * reads are not).
 */
export class RingCache {
  #key = "";
  #ring: HashRing | undefined;

  get(members: readonly string[], virtualNodes: number): HashRing {
    const key = `${virtualNodes}\u0001${members.join("\u0000")}`;
    if (!this.#ring || key !== this.#key) {
      this.#ring = createHashRing({ virtualNodes, brokers: members });
      this.#key = key;
    }
    return this.#ring;
  }
}
