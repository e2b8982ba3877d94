import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compareHash, hash64, hash64Parts, hash64PartsOfNumbered } from "../../src/ring/hash.js";

/**
 * XXH64 with seed 0, written straight from the specification with BigInt: slow and obvious, an
 * independent check of the uint32-pair implementation.
 */
function referenceXxh64(bytes: Uint8Array): bigint {
  const M = (1n << 64n) - 1n;
  const P1 = 0x9e3779b185ebca87n;
  const P2 = 0xc2b2ae3d27d4eb4fn;
  const P3 = 0x165667b19e3779f9n;
  const P4 = 0x85ebca77c2b2ae63n;
  const P5 = 0x27d4eb2f165667c5n;
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;
  const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & M, 31n) * P1) & M;
  const merge = (acc: bigint, v: bigint) => ((acc ^ round(0n, v)) * P1 + P4) & M;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (P1 + P2) & M;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (0n - P1) & M;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    for (const v of [v1, v2, v3, v4]) h = merge(h, v);
  } else {
    h = P5;
  }
  h = (h + BigInt(len)) & M;
  for (; p + 8 <= len; p += 8) {
    h = (rotl(h ^ round(0n, view.getBigUint64(p, true)), 27n) * P1 + P4) & M;
  }
  if (p + 4 <= len) {
    h = (rotl(h ^ ((BigInt(view.getUint32(p, true)) * P1) & M), 23n) * P2 + P3) & M;
    p += 4;
  }
  for (; p < len; p++) h = (rotl(h ^ ((BigInt(bytes[p] ?? 0) * P5) & M), 11n) * P1) & M;
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  h ^= h >> 32n;
  return h;
}

const utf8 = new TextEncoder();

describe("hash64 (XXH64, seed 0, of the UTF-8 bytes)", () => {
  // GOLDEN VALUES. The hash places every broker and partition on the ring, so it is persisted
  // semantics: all sentinels, before and after any upgrade, must compute exactly these values. If
  // this test fails, the hash changed and existing clusters would move their partitions: fix the
  // code, never these numbers.
  it("matches published XXH64 test vectors", () => {
    const vectors: [string, bigint][] = [
      ["", 0xef46db3751d8e999n],
      ["a", 0xd24ec4f1a98c6e5bn],
      ["abc", 0x44bc2cf5ad770999n],
      ["ABC", 0xe66ae7354fcfee98n],
      ["0123", 0x4c33072b45647dcbn],
      ["01234567", 0xe4ba22a49ad89d3fn],
      ["abcdefghijklmnopqrstuvwxyz12345", 0x467605901b01d6f6n],
      ["0123456789:;<=>?@ABCDEFGHIJKLMNO", 0x96ee2fa935fdd556n],
      ["0123456789:;<=>?@ABCDEFGHIJKLMNOP", 0xa5cdc6940c6fde9en],
    ];
    for (const [input, expected] of vectors) {
      assert.equal(hash64(input), expected, `hash64(${JSON.stringify(input)})`);
      assert.equal(referenceXxh64(utf8.encode(input)), expected, `reference(${JSON.stringify(input)})`);
    }
  });

  it("keeps the golden values of ring keys (computed once; never edit them)", () => {
    const golden: [string, bigint][] = [
      ["broker-1#0", 0x1ed340bba98f3ff2n],
      ["broker-1#149", 0x9ebef3cb5e275d71n],
      ["orders#0", 0xd2cd74923bbca933n],
      ["orders#2", 0xf32c7a21a6352fa2n],
      ["é#日本", 0x4d60e5b3c4303437n],
    ];
    for (const [input, expected] of golden)
      assert.equal(hash64(input), expected, `hash64(${JSON.stringify(input)})`);
  });

  it("agrees with the BigInt reference on every length from 0 to 130 bytes and on non-ASCII text", () => {
    const inputs: string[] = [];
    let s = "";
    for (let i = 0; i <= 130; i++) {
      inputs.push(s);
      s += String.fromCharCode(33 + ((i * 7) % 90));
    }
    inputs.push("é", "日本語のトピック", "emoji 😀 and 𝄞", "mixed é日😀#42", "x".repeat(1000));
    for (const input of inputs) {
      assert.equal(hash64(input), referenceXxh64(utf8.encode(input)), `length ${input.length}`);
    }
  });

  it("encodes lone surrogates as U+FFFD, like TextEncoder", () => {
    for (const input of ["a\ud800b", "\udc00", "x\ud83d", "\udfff end"]) {
      assert.equal(hash64(input), referenceXxh64(utf8.encode(input)), JSON.stringify(input));
    }
  });

  it("is correct when a longer key follows a shorter one (the byte buffer grows)", () => {
    const keys = ["short", "y".repeat(100), "z".repeat(400), "w".repeat(2000), "short"];
    for (const key of keys) assert.equal(hash64(key), referenceXxh64(utf8.encode(key)));
  });

  it("hash64Parts is hash64 split into hi and lo", () => {
    for (const key of ["", "a", "broker-3#17", "y".repeat(77)]) {
      const { hi, lo } = hash64Parts(key);
      assert.equal((BigInt(hi) << 32n) | BigInt(lo), hash64(key));
      assert.ok(hi >= 0 && hi <= 0xffffffff && lo >= 0 && lo <= 0xffffffff);
    }
  });

  it("hash64PartsOfNumbered(prefix) equals hash64Parts(prefix + i) for each i", () => {
    for (const prefix of ["", "b#", "broker-7#", "é日😀#", "p".repeat(29), "q".repeat(300)]) {
      const count = 1005;
      const hi = new Uint32Array(count + 3);
      const lo = new Uint32Array(count + 3);
      hash64PartsOfNumbered(prefix, count, hi, lo, 3);
      for (let i = 0; i < count; i++) {
        const expected = hash64Parts(`${prefix}${i}`);
        assert.equal(hi[i + 3], expected.hi, `${prefix}${i} hi`);
        assert.equal(lo[i + 3], expected.lo, `${prefix}${i} lo`);
      }
      assert.equal(hi[0], 0, "nothing written before `at`");
    }
  });

  it("compareHash orders by hi, then lo", () => {
    assert.ok(compareHash(1, 0, 0, 0xffffffff) > 0);
    assert.ok(compareHash(0, 5, 0, 6) < 0);
    assert.equal(compareHash(7, 7, 7, 7), 0);
    assert.ok(compareHash(0xffffffff, 0, 0x7fffffff, 0) > 0);
  });
});
