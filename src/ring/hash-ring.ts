import { InvalidArgumentError } from "../errors.js";
import { compareHash, hash64Parts, hash64PartsOfNumbered } from "./hash.js";

/** Virtual nodes per broker when the options do not say (docs/architecture.md). */
export const DEFAULT_VIRTUAL_NODES = 150;

/** Upper bound on virtual nodes per broker: far above any useful value, low enough to catch typos. */
export const MAX_VIRTUAL_NODES = 10_000;

export interface HashRingOptions {
  /**
   * Points per broker on the ring; more points give a smoother balance and a bigger ring.
   * Default 150. Like the hash itself this is persisted semantics: every sentinel must use the
   * same value, or they place partitions differently.
   */
  virtualNodes?: number;
  /** Brokers to start with. Order and duplicates do not matter. Default none. */
  brokers?: Iterable<string>;
}

/** One virtual node, for inspection (admin tools, tests). */
export interface RingPoint {
  /** Position on the ring: hash64(`${brokerId}#${vnode}`). */
  readonly position: bigint;
  readonly brokerId: string;
  /** Index of this virtual node among its broker's, 0 ≤ vnode < virtualNodes. */
  readonly vnode: number;
}

/**
 * An immutable consistent-hash ring. The ring is a function of its broker SET and its
 * virtual-node count only: the same brokers added in any order, or in one go, give an identical ring
 * and identical picks. Every sentinel rebuilds it by replaying the operation log and must agree.
 */
export interface HashRing {
  /** Virtual nodes per broker. */
  readonly virtualNodes: number;
  /** Number of brokers. */
  readonly size: number;
  /** Number of points on the ring (size × virtualNodes). */
  readonly virtualNodeCount: number;
  /** The brokers, sorted by UTF-16 code units (locale-independent). */
  brokers(): string[];
  has(brokerId: string): boolean;
  /** A ring with this broker added; this ring when it is already there. */
  withBroker(brokerId: string): HashRing;
  /** A ring with this broker removed; this ring when it is not there. */
  withoutBroker(brokerId: string): HashRing;
  /**
   * The first `count` DISTINCT brokers clockwise from hash64(key) (the first point at or after it,
   * wrapping round) that pass `accept`; fewer when not enough do. `accept` is called at most once
   * per broker, in ring order; skipping a broker never changes the order of the others, so a
   * replacement for a down broker is always the next one along.
   */
  pick(key: string, count: number, accept?: (brokerId: string) => boolean): string[];
  /** Every point, in ring order. Allocates; for inspection, not for hot paths. */
  points(): RingPoint[];
}

/** Creates a ring, optionally with brokers already on it. */
export function createHashRing(options: HashRingOptions = {}): HashRing {
  const virtualNodes = options.virtualNodes ?? DEFAULT_VIRTUAL_NODES;
  if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > MAX_VIRTUAL_NODES) {
    throw new InvalidArgumentError(
      `virtual nodes per broker must be an integer in [1, ${MAX_VIRTUAL_NODES}], got ${virtualNodes}`,
    );
  }
  const brokers = new Set<string>();
  for (const id of options.brokers ?? []) brokers.add(checkBrokerId(id));
  return buildRing(virtualNodes, [...brokers].sort());
}

function checkBrokerId(brokerId: string): string {
  if (typeof brokerId !== "string" || brokerId.length === 0) {
    throw new InvalidArgumentError(`broker id must be a non-empty string, got ${JSON.stringify(brokerId)}`);
  }
  return brokerId;
}

/**
 * The ring's points, sorted by a total order: position (hi, then lo), then broker id (UTF-16 code
 * units, never localeCompare, which depends on the machine), then vnode index. Ties on a 64-bit
 * position are astronomically rare but must still resolve the same way everywhere.
 */
interface Points {
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly owner: readonly string[];
  readonly vnode: Uint32Array;
}

function comparePoints(
  aHi: number,
  aLo: number,
  aOwner: string,
  aVnode: number,
  bHi: number,
  bLo: number,
  bOwner: string,
  bVnode: number,
): number {
  const byPosition = compareHash(aHi, aLo, bHi, bLo);
  if (byPosition !== 0) return byPosition;
  if (aOwner !== bOwner) return aOwner < bOwner ? -1 : 1;
  return aVnode - bVnode;
}

/**
 * The permutation that sorts positions (hi, lo) ascending, stable: an LSD radix sort, 8 passes of
 * one byte. A comparator sort of 45,000 points (300 brokers) costs more than hashing them.
 */
function radixOrder(hi: Uint32Array, lo: Uint32Array): Uint32Array {
  const n = hi.length;
  let src = new Uint32Array(n);
  let dst = new Uint32Array(n);
  for (let i = 0; i < n; i++) src[i] = i;
  const offsets = new Uint32Array(256);
  for (let pass = 0; pass < 8; pass++) {
    const words = pass < 4 ? lo : hi;
    const shift = (pass % 4) * 8;
    offsets.fill(0);
    for (let i = 0; i < n; i++) {
      const digit = ((words[i] ?? 0) >>> shift) & 0xff;
      offsets[digit] = (offsets[digit] ?? 0) + 1;
    }
    let sum = 0;
    for (let d = 0; d < 256; d++) {
      const c = offsets[d] ?? 0;
      offsets[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const j = src[i] ?? 0;
      const digit = ((words[j] ?? 0) >>> shift) & 0xff;
      const at = offsets[digit] ?? 0;
      dst[at] = j;
      offsets[digit] = at + 1;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/** The points of the given brokers, sorted. */
function pointsOf(sortedBrokers: readonly string[], virtualNodes: number): Points {
  const n = sortedBrokers.length * virtualNodes;
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  // Virtual node v of broker b sits at hash64(`${b}#${v}`).
  sortedBrokers.forEach((id, b) => hash64PartsOfNumbered(`${id}#`, virtualNodes, hi, lo, b * virtualNodes));
  // Generated in (broker, vnode) order and sorted stably, so on equal positions the index, which is
  // that order, breaks the tie.
  const order = radixOrder(hi, lo);
  const sorted = {
    hi: new Uint32Array(n),
    lo: new Uint32Array(n),
    owner: new Array<string>(n),
    vnode: new Uint32Array(n),
  };
  for (let i = 0; i < n; i++) {
    const j = order[i] ?? 0;
    sorted.hi[i] = hi[j] ?? 0;
    sorted.lo[i] = lo[j] ?? 0;
    sorted.owner[i] = sortedBrokers[Math.floor(j / virtualNodes)] ?? "";
    sorted.vnode[i] = j % virtualNodes;
  }
  return sorted;
}

/** Merges two sorted point sets into one (linear, for adding a broker to a big ring). */
function mergePoints(a: Points, b: Points): Points {
  const n = a.hi.length + b.hi.length;
  const out = {
    hi: new Uint32Array(n),
    lo: new Uint32Array(n),
    owner: new Array<string>(n),
    vnode: new Uint32Array(n),
  };
  let i = 0;
  let j = 0;
  for (let k = 0; k < n; k++) {
    const takeA =
      j >= b.hi.length ||
      (i < a.hi.length &&
        comparePoints(
          a.hi[i] ?? 0,
          a.lo[i] ?? 0,
          a.owner[i] ?? "",
          a.vnode[i] ?? 0,
          b.hi[j] ?? 0,
          b.lo[j] ?? 0,
          b.owner[j] ?? "",
          b.vnode[j] ?? 0,
        ) < 0);
    const src = takeA ? a : b;
    const s = takeA ? i++ : j++;
    out.hi[k] = src.hi[s] ?? 0;
    out.lo[k] = src.lo[s] ?? 0;
    out.owner[k] = src.owner[s] ?? "";
    out.vnode[k] = src.vnode[s] ?? 0;
  }
  return out;
}

/** The points without one broker's (linear). */
function removeOwner(p: Points, brokerId: string, virtualNodes: number): Points {
  const n = p.hi.length - virtualNodes;
  const out = {
    hi: new Uint32Array(n),
    lo: new Uint32Array(n),
    owner: new Array<string>(n),
    vnode: new Uint32Array(n),
  };
  let k = 0;
  for (let i = 0; i < p.hi.length; i++) {
    if (p.owner[i] === brokerId) continue;
    out.hi[k] = p.hi[i] ?? 0;
    out.lo[k] = p.lo[i] ?? 0;
    out.owner[k] = p.owner[i] ?? "";
    out.vnode[k] = p.vnode[i] ?? 0;
    k++;
  }
  return out;
}

function buildRing(virtualNodes: number, sortedBrokers: string[]): HashRing {
  return new Ring(virtualNodes, sortedBrokers, pointsOf(sortedBrokers, virtualNodes));
}

class Ring implements HashRing {
  readonly #sortedBrokers: readonly string[];
  readonly #brokerSet: ReadonlySet<string>;
  /** Every virtual node, sorted by position. */
  readonly #points: Points;

  constructor(
    readonly virtualNodes: number,
    sortedBrokers: readonly string[],
    points: Points,
  ) {
    this.#sortedBrokers = sortedBrokers;
    this.#brokerSet = new Set(sortedBrokers);
    this.#points = points;
  }

  get size(): number {
    return this.#sortedBrokers.length;
  }

  get virtualNodeCount(): number {
    return this.#points.hi.length;
  }

  brokers(): string[] {
    return [...this.#sortedBrokers];
  }

  has(brokerId: string): boolean {
    return this.#brokerSet.has(brokerId);
  }

  withBroker(brokerId: string): HashRing {
    checkBrokerId(brokerId);
    if (this.#brokerSet.has(brokerId)) return this;
    const brokers = [...this.#sortedBrokers, brokerId].sort();
    return new Ring(
      this.virtualNodes,
      brokers,
      mergePoints(this.#points, pointsOf([brokerId], this.virtualNodes)),
    );
  }

  withoutBroker(brokerId: string): HashRing {
    if (!this.#brokerSet.has(brokerId)) return this;
    const brokers = this.#sortedBrokers.filter((id) => id !== brokerId);
    return new Ring(this.virtualNodes, brokers, removeOwner(this.#points, brokerId, this.virtualNodes));
  }

  pick(key: string, count: number, accept?: (brokerId: string) => boolean): string[] {
    if (!Number.isInteger(count) || count < 0) {
      throw new InvalidArgumentError(`replica count must be a non-negative integer, got ${count}`);
    }
    const n = this.#points.hi.length;
    const picked: string[] = [];
    if (count === 0 || n === 0) return picked;

    const start = this.#firstAtOrAfter(hash64Parts(key));
    const seen = new Set<string>();
    for (let step = 0; step < n; step++) {
      const i = start + step < n ? start + step : start + step - n;
      const owner = this.#points.owner[i] ?? "";
      if (seen.has(owner)) continue;
      seen.add(owner);
      if (accept === undefined || accept(owner)) {
        picked.push(owner);
        if (picked.length === count) break;
      }
      if (seen.size === this.#sortedBrokers.length) break;
    }
    return picked;
  }

  points(): RingPoint[] {
    const out: RingPoint[] = [];
    for (let i = 0; i < this.#points.hi.length; i++) {
      out.push({
        position: (BigInt(this.#points.hi[i] ?? 0) << 32n) | BigInt(this.#points.lo[i] ?? 0),
        brokerId: this.#points.owner[i] ?? "",
        vnode: this.#points.vnode[i] ?? 0,
      });
    }
    return out;
  }

  /** Index of the first point whose position is ≥ h, or 0 when h is past the last (wrap round). */
  #firstAtOrAfter(h: { hi: number; lo: number }): number {
    const { hi, lo } = this.#points;
    let left = 0;
    let right = hi.length;
    while (left < right) {
      const mid = (left + right) >>> 1;
      const mh = hi[mid] ?? 0;
      if (mh < h.hi || (mh === h.hi && (lo[mid] ?? 0) < h.lo)) left = mid + 1;
      else right = mid;
    }
    return left === hi.length ? 0 : left;
  }
}
