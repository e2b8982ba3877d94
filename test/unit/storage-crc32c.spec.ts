import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import {
  CRC32C_IMPLEMENTATION,
  NATIVE_MIN_BYTES,
  crc32c,
  crc32cNative,
  crc32cPortable,
} from "../../src/storage/crc32c.js";

/** The textbook bit-at-a-time CRC32C, to check the table-driven one against. */
function slowCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe("crc32c", () => {
  it("matches the published check values (RFC 3720 B.4 and the '123456789' check)", () => {
    assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("agrees with the bit-at-a-time definition on random data of every length up to 100", () => {
    for (let n = 0; n <= 100; n++) {
      const data = randomBytes(n);
      assert.equal(crc32c(data), slowCrc32c(data), `length ${n}`);
    }
  });

  it("checksums a sub-range and continues across pieces", () => {
    const data = randomBytes(1000);
    assert.equal(crc32c(data, 100, 700), slowCrc32c(data.subarray(100, 700)));
    const whole = crc32c(data);
    assert.equal(crc32c(data, 333, 1000, crc32c(data, 0, 333)), whole);
  });

  it("agrees with the definition on long inputs at every alignment and across the word-loop threshold", () => {
    const backing = randomBytes(70_000);
    for (const length of [255, 256, 257, 271, 1024, 4099, 65_536]) {
      for (let align = 0; align < 8; align++) {
        const data = backing.subarray(align, align + length);
        assert.equal(crc32c(data), slowCrc32c(data), `length ${length}, byte offset ${align}`);
        // A range inside the view and a continuation from a short piece into a long one.
        assert.equal(crc32c(data, 3, length - 2), slowCrc32c(data.subarray(3, length - 2)));
        assert.equal(crc32c(data, 7, length, crc32c(data, 0, 7)), slowCrc32c(data));
      }
    }
  });

  it("sees a single flipped bit", () => {
    const data = randomBytes(4096);
    const before = crc32c(data);
    data[2049] = (data[2049] as number) ^ 0x10;
    assert.notEqual(crc32c(data), before);
  });

  it("uses the native implementation where its prebuilt package exists (Linux x64 here)", () => {
    if (process.platform !== "linux" || process.arch !== "x64") return;
    assert.equal(CRC32C_IMPLEMENTATION, "native");
  });

  it("native and portable agree around the crossover, on sub-ranges and across continuations", (t) => {
    if (crc32cNative === undefined) return t.skip("@node-rs/crc32 is not installed for this platform");
    const backing = randomBytes(70_000);
    for (const length of [NATIVE_MIN_BYTES - 1, NATIVE_MIN_BYTES, NATIVE_MIN_BYTES + 1, 4099, 65_536]) {
      for (const align of [0, 1, 5]) {
        const data = backing.subarray(align, align + length);
        const portable = crc32cPortable(data);
        assert.equal(crc32cNative(data) >>> 0, portable, `length ${length}, byte offset ${align}`);
        assert.equal(crc32c(data), portable);
        assert.equal(crc32c(data, 9, length - 4), crc32cPortable(data, 9, length - 4));
        // A short piece (portable) continued by a long one (native), and the other way round.
        assert.equal(crc32c(data, 9, length, crc32c(data, 0, 9)), portable);
        assert.equal(crc32c(data, length - 9, length, crc32c(data, 0, length - 9)), portable);
      }
    }
  });
});
