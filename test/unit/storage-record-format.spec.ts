import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { crc32c } from "../../src/storage/crc32c.js";
import {
  FrameError,
  MIN_FRAME_BYTES,
  decodeFrame,
  encodeFrame,
  frameSize,
  frameSizeAt,
  verifyFrame,
  type AppendRecord,
} from "../../src/storage/record-format.js";

function encode(record: AppendRecord, offset: number, timestamp: number): Buffer {
  const size = frameSize(record);
  assert.equal(typeof size, "number");
  const buf = Buffer.alloc(size as number);
  assert.equal(encodeFrame(buf, 0, record, offset, timestamp), size);
  return buf;
}

describe("record frame format", () => {
  it("round-trips every field, including unicode, empty and extreme values", () => {
    const record: AppendRecord = {
      payload: Buffer.from("héllo wörld ✓"),
      key: Buffer.from([0, 1, 2, 255]),
      headers: [
        { key: "trace-id", value: Buffer.from("abc") },
        { key: "ключ", value: new Uint8Array(0) },
      ],
      producerId: "producer-🚀",
      messageId: (1n << 64n) - 1n,
    };
    const offset = 2 ** 40 + 17;
    const timestamp = 1_700_000_000_123;
    const buf = encode(record, offset, timestamp);
    verifyFrame(buf, 0, buf.length);
    const decoded = decodeFrame(buf, 0, buf.length);
    assert.equal(decoded.offset, offset);
    assert.equal(decoded.timestamp, timestamp);
    assert.equal(decoded.messageId, (1n << 64n) - 1n);
    assert.equal(decoded.producerId, "producer-🚀");
    assert.deepEqual(Buffer.from(decoded.key), Buffer.from([0, 1, 2, 255]));
    assert.equal(Buffer.from(decoded.payload).toString(), "héllo wörld ✓");
    assert.deepEqual(
      decoded.headers.map((h) => [h.key, Buffer.from(h.value).toString("hex")]),
      [
        ["trace-id", Buffer.from("abc").toString("hex")],
        ["ключ", ""],
      ],
    );
    assert.equal(decoded.sizeBytes, buf.length);
  });

  it("has the documented fixed overhead for an empty record and a magic byte of 1", () => {
    const buf = encode({ payload: new Uint8Array(0) }, 0, 0);
    assert.equal(buf.length, MIN_FRAME_BYTES);
    assert.equal(MIN_FRAME_BYTES, 46);
    assert.equal(buf.readUInt32BE(0), buf.length - 4);
    assert.equal(buf[8], 1);
    assert.equal(frameSizeAt(buf, 0), buf.length);
    const decoded = decodeFrame(buf, 0, buf.length);
    assert.equal(decoded.producerId, "");
    assert.equal(decoded.key.length, 0);
    assert.equal(decoded.messageId, 0n);
  });

  it("detects a flipped byte anywhere after the CRC field", () => {
    const clean = encode({ payload: Buffer.from("payload bytes"), producerId: "p" }, 5, 6);
    for (let i = 8; i < clean.length; i++) {
      const damaged = Buffer.from(clean);
      damaged[i] = (damaged[i] as number) ^ 0x01;
      assert.throws(() => verifyFrame(damaged, 0, damaged.length), FrameError, `byte ${i}`);
    }
  });

  it("rejects a frame of another format version even when its CRC is right", () => {
    const buf = encode({ payload: Buffer.from("x") }, 0, 0);
    buf[8] = 2;
    buf.writeUInt32BE(crc32c(buf, 8, buf.length), 4);
    assert.throws(() => verifyFrame(buf, 0, buf.length), /unknown record format version 2/);
  });

  it("treats lengths that cannot be a frame as implausible", () => {
    const buf = Buffer.alloc(8);
    buf.writeUInt32BE(3, 0);
    assert.equal(frameSizeAt(buf, 0), undefined);
    buf.writeUInt32BE(0xffffffff, 0);
    assert.equal(frameSizeAt(buf, 0), undefined);
  });

  it("refuses values the format cannot hold", () => {
    assert.match(
      String(frameSize({ payload: new Uint8Array(1), producerId: "x".repeat(70_000) })),
      /producer id/,
    );
    assert.match(String(frameSize({ payload: new Uint8Array(1), timestamp: -1 })), /timestamp/);
    assert.match(String(frameSize({ payload: new Uint8Array(1), messageId: 1n << 64n })), /uint64/);
    assert.match(
      String(
        frameSize({
          payload: new Uint8Array(1),
          headers: [{ key: "k".repeat(70_000), value: new Uint8Array(0) }],
        }),
      ),
      /header key/,
    );
  });
});
