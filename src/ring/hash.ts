/**
 * The ring's hash: XXH64 (seed 0) of the key's UTF-8 bytes.
 *
 * This is persisted semantics: every sentinel, today and after any upgrade, must place a vnode or a
 * partition at exactly the same point, or replaying the operation log gives a different cluster.
 * So the function is a published standard (xxHash, XXH64 as specified in the xxHash repository's
 * doc/xxhash_spec.md) with published test vectors, not something home-made, and it must never change.
 *
 * Why XXH64 and not FNV-1a: FNV-1a's avalanche on the final bytes is weak, and that is exactly where
 * vnode keys (`b1#0`, `b1#1`, ...) differ; XXH64 ends in a full avalanche. It is also fast and has
 * independent implementations in every language, should another tool ever need to compute placements.
 *
 * The arithmetic runs on pairs of uint32 (no BigInt): building a ring hashes tens of thousands of
 * keys and BigInt arithmetic is an order of magnitude slower. A position is `hi * 2^32 + lo`;
 * compare `hi` first, then `lo` (see `compareHash`).
 */

/** A 64-bit hash as two unsigned 32-bit halves; the position is `hi * 2^32 + lo`. */
export interface Hash64Parts {
  readonly hi: number;
  readonly lo: number;
}

// XXH64's primes, split into 32-bit halves.
const P1H = 0x9e3779b1;
const P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d;
const P2L = 0x27d4eb4f;
const P3H = 0x165667b1;
const P3L = 0x9e3779f9;
const P4H = 0x85ebca77;
const P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f;
const P5L = 0x165667c5;

// 64-bit helpers on (hi, lo) uint32 pairs, each returning ONE half: returning a pair would allocate
// an object per operation, and these run a few dozen times per key.

/** High half of (aH:aL * bH:bL) mod 2^64. */
function mulHi(aH: number, aL: number, bH: number, bL: number): number {
  // The high 32 bits of aL * bL from 16-bit limbs (every partial product is below 2^32, every sum
  // below 2^34: exact in a double), plus the cross terms, whose own high halves fall off mod 2^64.
  const a1 = aL >>> 16;
  const a0 = aL & 0xffff;
  const b1 = bL >>> 16;
  const b0 = bL & 0xffff;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const high = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  return (high + Math.imul(aH, bL) + Math.imul(aL, bH)) >>> 0;
}

/** Low half of (aH:aL * bH:bL) mod 2^64. */
function mulLo(aL: number, bL: number): number {
  return Math.imul(aL, bL) >>> 0;
}

/** High half of (aH:aL + bH:bL) mod 2^64. */
function addHi(aH: number, aL: number, bH: number, bL: number): number {
  return (aH + bH + (aL + bL > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Low half of (aH:aL + bH:bL) mod 2^64. */
function addLo(aL: number, bL: number): number {
  return (aL + bL) >>> 0;
}

/** High half of aH:aL rotated left by n, 0 < n < 32 (every rotation XXH64 uses). */
function rotlHi(aH: number, aL: number, n: number): number {
  return ((aH << n) | (aL >>> (32 - n))) >>> 0;
}

/** Low half of aH:aL rotated left by n, 0 < n < 32. */
function rotlLo(aH: number, aL: number, n: number): number {
  return ((aL << n) | (aH >>> (32 - n))) >>> 0;
}

function readU32(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) | ((b[i + 1] ?? 0) << 8) | ((b[i + 2] ?? 0) << 16) | ((b[i + 3] ?? 0) << 24)) >>> 0;
}

/**
 * XXH64's four accumulators and the result, [v1H, v1L, ..., v4H, v4L]; the result is [0], [1].
 * Only the ≥ 32-byte path uses the accumulators (`stripeRound`), so they can live outside locals.
 */
const state = new Uint32Array(8);

/** XXH64's round on accumulator i with the 8 bytes at p: v = rotl(v + input * P2, 31) * P1. */
function stripeRound(i: number, bytes: Uint8Array, p: number): void {
  const inL = readU32(bytes, p);
  const inH = readU32(bytes, p + 4);
  const vH = state[2 * i] ?? 0;
  const vL = state[2 * i + 1] ?? 0;
  const mH = mulHi(inH, inL, P2H, P2L);
  const mL = mulLo(inL, P2L);
  const sH = addHi(vH, vL, mH, mL);
  const sL = addLo(vL, mL);
  const rH = rotlHi(sH, sL, 31);
  const rL = rotlLo(sH, sL, 31);
  state[2 * i] = mulHi(rH, rL, P1H, P1L);
  state[2 * i + 1] = mulLo(rL, P1L);
}

/**
 * XXH64's path for inputs of 32 bytes or more: the four accumulators over every whole 32-byte
 * stripe, merged into h → state[0] (hi), state[1] (lo). Ring keys are mostly shorter and skip it.
 */
function longInputHash(bytes: Uint8Array, length: number): void {
  let hH = 0;
  let hL = 0;
  let tH: number;
  let tL: number;

  // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1 (seed 0).
  state[0] = addHi(P1H, P1L, P2H, P2L);
  state[1] = addLo(P1L, P2L);
  state[2] = P2H;
  state[3] = P2L;
  state[4] = 0;
  state[5] = 0;
  state[6] = addHi(~P1H >>> 0, ~P1L >>> 0, 0, 1);
  state[7] = addLo(~P1L >>> 0, 1);
  for (let p = 0; p + 32 <= length; p += 32) {
    stripeRound(0, bytes, p);
    stripeRound(1, bytes, p + 8);
    stripeRound(2, bytes, p + 16);
    stripeRound(3, bytes, p + 24);
  }
  // h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
  const shifts = [1, 7, 12, 18] as const;
  for (let i = 0; i < 4; i++) {
    const vH = state[2 * i] ?? 0;
    const vL = state[2 * i + 1] ?? 0;
    const n = shifts[i] ?? 1;
    tH = rotlHi(vH, vL, n);
    tL = rotlLo(vH, vL, n);
    hH = addHi(hH, hL, tH, tL);
    hL = addLo(hL, tL);
  }
  // Merge each accumulator: h = (h ^ round(0, v)) * P1 + P4.
  for (let i = 0; i < 4; i++) {
    const vH = state[2 * i] ?? 0;
    const vL = state[2 * i + 1] ?? 0;
    const mH = mulHi(vH, vL, P2H, P2L);
    const mL = mulLo(vL, P2L);
    const rH = rotlHi(mH, mL, 31);
    const rL = rotlLo(mH, mL, 31);
    tH = (hH ^ mulHi(rH, rL, P1H, P1L)) >>> 0;
    tL = (hL ^ mulLo(rL, P1L)) >>> 0;
    const xH = mulHi(tH, tL, P1H, P1L);
    const xL = mulLo(tL, P1L);
    hH = addHi(xH, xL, P4H, P4L);
    hL = addLo(xL, P4L);
  }
  state[0] = hH;
  state[1] = hL;
}

/** XXH64 with seed 0 of `bytes[0, length)` → state[0] (hi), state[1] (lo). */
function xxh64(bytes: Uint8Array, length: number): void {
  let p = 0;
  let hH: number;
  let hL: number;
  let tH: number;
  let tL: number;

  if (length >= 32) {
    longInputHash(bytes, length);
    p = length - (length % 32);
    hH = state[0] ?? 0;
    hL = state[1] ?? 0;
  } else {
    hH = P5H;
    hL = P5L;
  }

  // h += length (a string's byte length is far below 2^32).
  hH = addHi(hH, hL, 0, length);
  hL = addLo(hL, length);

  // Each remaining 8-byte lane: h = rotl(h ^ round(0, lane), 27) * P1 + P4.
  for (; p + 8 <= length; p += 8) {
    const inL = readU32(bytes, p);
    const inH = readU32(bytes, p + 4);
    const mH = mulHi(inH, inL, P2H, P2L);
    const mL = mulLo(inL, P2L);
    const rH = rotlHi(mH, mL, 31);
    const rL = rotlLo(mH, mL, 31);
    tH = (hH ^ mulHi(rH, rL, P1H, P1L)) >>> 0;
    tL = (hL ^ mulLo(rL, P1L)) >>> 0;
    const oH = rotlHi(tH, tL, 27);
    const oL = rotlLo(tH, tL, 27);
    const xH = mulHi(oH, oL, P1H, P1L);
    const xL = mulLo(oL, P1L);
    hH = addHi(xH, xL, P4H, P4L);
    hL = addLo(xL, P4L);
  }
  // A remaining 4-byte word: h = rotl(h ^ (word * P1), 23) * P2 + P3.
  if (p + 4 <= length) {
    const w = readU32(bytes, p);
    tH = (hH ^ mulHi(0, w, P1H, P1L)) >>> 0;
    tL = (hL ^ mulLo(w, P1L)) >>> 0;
    const oH = rotlHi(tH, tL, 23);
    const oL = rotlLo(tH, tL, 23);
    const xH = mulHi(oH, oL, P2H, P2L);
    const xL = mulLo(oL, P2L);
    hH = addHi(xH, xL, P3H, P3L);
    hL = addLo(xL, P3L);
    p += 4;
  }
  // Each remaining byte: h = rotl(h ^ (byte * P5), 11) * P1.
  for (; p < length; p += 1) {
    const c = bytes[p] ?? 0;
    tH = (hH ^ mulHi(0, c, P5H, P5L)) >>> 0;
    tL = (hL ^ mulLo(c, P5L)) >>> 0;
    const oH = rotlHi(tH, tL, 11);
    const oL = rotlLo(tH, tL, 11);
    hH = mulHi(oH, oL, P1H, P1L);
    hL = mulLo(oL, P1L);
  }

  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  hL = (hL ^ (hH >>> 1)) >>> 0;
  tH = mulHi(hH, hL, P2H, P2L);
  tL = mulLo(hL, P2L);
  hH = (tH ^ (tH >>> 29)) >>> 0;
  hL = (tL ^ ((tL >>> 29) | (tH << 3))) >>> 0;
  tH = mulHi(hH, hL, P3H, P3L);
  tL = mulLo(hL, P3L);
  state[0] = tH;
  state[1] = (tL ^ tH) >>> 0;
}

// One reusable buffer for the key's UTF-8 bytes: keys are short, and encoding by hand is several
// times faster than TextEncoder.encodeInto for them (a native call per key).
let scratch = new Uint8Array(256);

/** Writes the UTF-8 encoding of `key` into `scratch` (lone surrogates become U+FFFD, as TextEncoder does). */
function encodeUtf8(key: string): number {
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
  if (key.length * 3 > scratch.length) scratch = new Uint8Array(key.length * 3);
  const out = scratch;
  let n = 0;
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >>> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = key.charCodeAt(i + 1);
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          i++;
          out[n++] = 0xf0 | (c >>> 18);
          out[n++] = 0x80 | ((c >>> 12) & 0x3f);
          out[n++] = 0x80 | ((c >>> 6) & 0x3f);
          out[n++] = 0x80 | (c & 0x3f);
          continue;
        }
        c = 0xfffd;
      }
      out[n++] = 0xe0 | (c >>> 12);
      out[n++] = 0x80 | ((c >>> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

function hashInto(key: string): void {
  // Encode first: encoding may replace `scratch` with a bigger buffer.
  const length = encodeUtf8(key);
  xxh64(scratch, length);
}

/**
 * XXH64 (seed 0) of the UTF-8 bytes of `key`, as two uint32 halves. The fast form, used by the ring.
 * Lone surrogates are encoded as U+FFFD, as TextEncoder does (still deterministic).
 */
export function hash64Parts(key: string): Hash64Parts {
  hashInto(key);
  return { hi: state[0] ?? 0, lo: state[1] ?? 0 };
}

/**
 * hash64Parts(`${prefix}${i}`) for i = 0 .. count-1, written to hi[at + i], lo[at + i]. The ring's
 * virtual-node keys, without building and encoding one string per key (that cost as much as hashing).
 */
export function hash64PartsOfNumbered(
  prefix: string,
  count: number,
  hi: Uint32Array,
  lo: Uint32Array,
  at: number,
): void {
  const prefixLength = encodeUtf8(prefix);
  // Room for the decimal digits of any safe integer.
  if (scratch.length < prefixLength + 16) {
    const bigger = new Uint8Array(prefixLength + 16);
    bigger.set(scratch.subarray(0, prefixLength));
    scratch = bigger;
  }
  for (let i = 0; i < count; i++) {
    let digits = 1;
    for (let rest = Math.floor(i / 10); rest > 0; rest = Math.floor(rest / 10)) digits++;
    for (let d = digits - 1, rest = i; d >= 0; d--, rest = Math.floor(rest / 10)) {
      scratch[prefixLength + d] = 0x30 + (rest % 10);
    }
    xxh64(scratch, prefixLength + digits);
    hi[at + i] = state[0] ?? 0;
    lo[at + i] = state[1] ?? 0;
  }
}

/** XXH64 (seed 0) of the UTF-8 bytes of `key`, as an unsigned 64-bit bigint. For display and tests. */
export function hash64(key: string): bigint {
  hashInto(key);
  return (BigInt(state[0] ?? 0) << 32n) | BigInt(state[1] ?? 0);
}

/** Orders two positions on the ring: negative, zero or positive, like a sort comparator. */
export function compareHash(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return aHi !== bHi ? aHi - bHi : aLo - bLo;
}
