import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { NonContiguousOffsetError } from "../../src/storage/errors.js";
import {
  EXTERNAL_PAYLOAD_MIN_BYTES,
  decodeFrame,
  frameSize,
  type AppendRecord,
  type ReplicatedRecord,
} from "../../src/storage/record-format.js";
import {
  encodeWriteGroup,
  needsRoll,
  takeWriteGroup,
  type QueuedAppend,
  type SegmentTail,
} from "../../src/storage/write-group.js";

function record(payloadBytes: number, extra: Partial<AppendRecord> = {}): AppendRecord {
  return { payload: Buffer.alloc(payloadBytes, payloadBytes & 0xff), ...extra };
}

function sizeOf(records: readonly AppendRecord[]): number {
  return records.reduce((sum, r) => sum + (frameSize(r) as number), 0);
}

function queued(records: readonly AppendRecord[], replicated = false): QueuedAppend & { kind: "append" } {
  return { kind: "append", batch: records, bytes: sizeOf(records), replicated };
}

const EMPTY_TAIL: SegmentTail = { size: 0, nextOffset: 100, bytesSinceIndex: 0, maxTimestamp: -1 };

describe("write group encoder", () => {
  it("continues the segment's tail: offsets per append, frames that decode, the new tail", () => {
    const groups = [[record(10), record(20, { timestamp: 5 })], [record(30, { key: Buffer.from("k") })]];
    const bytes = groups.reduce((sum, g) => sum + sizeOf(g), 0);
    const tail: SegmentTail = { size: 1000, nextOffset: 42, bytesSinceIndex: 7, maxTimestamp: 3 };
    const encoded = encodeWriteGroup(groups, bytes, tail, 9_000, 1 << 20);

    assert.deepEqual(encoded.results, [
      { baseOffset: 42, lastOffset: 43 },
      { baseOffset: 44, lastOffset: 44 },
    ]);
    assert.deepEqual(encoded.tail, {
      size: 1000 + bytes,
      nextOffset: 45,
      bytesSinceIndex: 7 + bytes,
      maxTimestamp: 9_000,
    });
    assert.equal(encoded.pieces, undefined, "small payloads are copied into the one buffer");
    assert.equal(encoded.buffer.length, bytes);
    assert.deepEqual(encoded.indexEntries, []);
    const decoded = encoded.frameStarts.map((start, i) => {
      const end = encoded.frameStarts[i + 1] ?? encoded.buffer.length;
      return decodeFrame(encoded.buffer, start, end - start);
    });
    assert.deepEqual(
      decoded.map((r) => [r.offset, r.timestamp, r.payload.length, Buffer.from(r.key).toString()]),
      [
        [42, 9_000, 10, ""],
        [43, 5, 20, ""],
        [44, 9_000, 30, "k"],
      ],
    );
  });

  it("keeps the larger timestamp already in the segment", () => {
    const tail = { ...EMPTY_TAIL, maxTimestamp: 50_000 };
    const encoded = encodeWriteGroup([[record(1, { timestamp: 10 })]], sizeOf([record(1)]), tail, 0, 4096);
    assert.equal(encoded.tail.maxTimestamp, 50_000);
  });

  it("adds an index entry each time an interval's worth of bytes was written", () => {
    const records = Array.from({ length: 6 }, () => record(100));
    const frame = frameSize(records[0] as AppendRecord) as number;
    const tail: SegmentTail = { size: 500, nextOffset: 10, bytesSinceIndex: 2 * frame, maxTimestamp: -1 };
    const encoded = encodeWriteGroup([records], 6 * frame, tail, 1, 2 * frame);
    // The tail already holds an interval: the first record gets an entry, then every second one.
    assert.deepEqual(encoded.indexEntries, [10, 500, 12, 500 + 2 * frame, 14, 500 + 4 * frame]);
    assert.equal(encoded.tail.bytesSinceIndex, 2 * frame);
  });

  it("leaves large payloads in place and gathers them back in order", () => {
    const big = record(EXTERNAL_PAYLOAD_MIN_BYTES + 3);
    const records = [record(5), big, record(7)];
    const bytes = sizeOf(records);
    const encoded = encodeWriteGroup([records], bytes, EMPTY_TAIL, 1, 1 << 20);

    assert.ok(encoded.pieces !== undefined);
    assert.equal(encoded.buffer.length, bytes - big.payload.length, "the large payload is not copied");
    assert.deepEqual(encoded.payloads, [undefined, big.payload, undefined]);
    assert.ok(encoded.pieces.includes(big.payload), "the payload itself is one of the pieces");
    const file = Buffer.concat(encoded.pieces);
    assert.equal(file.length, bytes);
    const sizes = records.map((r) => frameSize(r) as number);
    let pos = 0;
    const offsets = sizes.map((size) => {
      const r = decodeFrame(file, pos, size);
      pos += size;
      return [r.offset, r.payload.length];
    });
    assert.deepEqual(offsets, [
      [100, 5],
      [101, EXTERNAL_PAYLOAD_MIN_BYTES + 3],
      [102, 7],
    ]);
  });

  it("refuses a size that does not match the records (a bug, not input)", () => {
    const wrong = sizeOf([record(10)]) + 8;
    assert.throws(
      () => encodeWriteGroup([[record(10)]], wrong, EMPTY_TAIL, 1, 4096),
      new RegExp(`where ${wrong} were computed`),
    );
  });
});

describe("taking a write group from the queue", () => {
  const limits = { segmentBytes: 1000, maxGroupBytes: 600 };

  it("takes appends up to the group budget, and always the first one", () => {
    const a = queued([record(200)]);
    const b = queued([record(200)]);
    const c = queued([record(200)]);
    const queue = [a, b, c];
    const taken = takeWriteGroup(queue, EMPTY_TAIL, limits);
    assert.ok(a.bytes * 3 > 600 && a.bytes * 2 <= 600);
    assert.deepEqual(taken.jobs, [a, b]);
    assert.equal(taken.bytes, a.bytes + b.bytes);
    assert.deepEqual(queue, [c]);

    const huge = queued([record(5_000)]);
    const alone = [huge, queued([record(1)])];
    assert.deepEqual(takeWriteGroup(alone, EMPTY_TAIL, limits).jobs, [huge], "larger than a segment");
  });

  it("stops where the active segment is full, and at a control job", () => {
    const a = queued([record(100)]);
    const tail = { ...EMPTY_TAIL, size: 1000 - a.bytes };
    const queue: Array<QueuedAppend | { kind: "control" }> = [a, queued([record(1)])];
    assert.deepEqual(takeWriteGroup(queue, tail, limits).jobs, [a]);
    assert.equal(queue.length, 1);

    const control = { kind: "control" as const };
    const withControl = [queued([record(1)]), control, queued([record(1)])];
    assert.equal(takeWriteGroup(withControl, EMPTY_TAIL, limits).jobs.length, 1);
    assert.equal(withControl[0], control);
  });

  it("refuses a replicated append that does not continue the log, and goes on", () => {
    const replicated = (offset: number): ReplicatedRecord => ({ ...record(3), offset, timestamp: 1 });
    const good = queued([replicated(100), replicated(101)], true);
    const gap = queued([replicated(105)], true);
    const next = queued([replicated(102)], true);
    const taken = takeWriteGroup([good, gap, next], EMPTY_TAIL, limits);
    assert.deepEqual(taken.jobs, [good, next]);
    assert.equal(taken.refused.length, 1);
    assert.equal(taken.refused[0]?.job, gap);
    assert.ok(taken.refused[0]?.error instanceof NonContiguousOffsetError);
  });

  it("rolls only a non-empty segment the next append does not fit", () => {
    assert.equal(needsRoll({ ...EMPTY_TAIL, size: 0 }, 5_000, 1000), false);
    assert.equal(needsRoll({ ...EMPTY_TAIL, size: 900 }, 100, 1000), false);
    assert.equal(needsRoll({ ...EMPTY_TAIL, size: 901 }, 100, 1000), true);
  });
});
