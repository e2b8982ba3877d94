import { createHashRing, type HashRing } from "../ring/hash-ring.js";

/** Rebuilds the hash ring only when ring membership changes (membership changes are rare, reads are not). */
export class RingCache {
  #members = "";
  #ring: HashRing;

  constructor(private readonly virtualNodes: number) {
    this.#ring = createHashRing({ virtualNodes });
  }

  get(members: readonly string[]): HashRing {
    const key = members.join("\u0000");
    if (key !== this.#members) {
      this.#ring = createHashRing({ virtualNodes: this.virtualNodes, brokers: members });
      this.#members = key;
    }
    return this.#ring;
  }
}
