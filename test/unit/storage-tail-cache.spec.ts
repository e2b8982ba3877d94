import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { RecordSink } from "../../src/storage/frame-run.js";
import { encodeFrame, frameSize, type AppendRecord } from "../../src/storage/record-format.js";
import type { ReadCursor } from "../../src/storage/segment.js";
import { TailCache } from "../../src/storage/tail-cache.js";

/** One write's buffer holding records `first..first+count-1`, as the log hands it to the cache. */
function write(first: number, count: number): { buf: Buffer; starts: number[] } {
  const records: AppendRecord[] = Array.from({ length: count }, (_, k) => ({
    payload: Buffer.from(`r${first + k}`),
  }));
  const buf = Buffer.alloc(records.reduce((a, r) => a + (frameSize(r) as number), 0));
  const starts: number[] = [];
  let pos = 0;
  records.forEach((r, k) => {
    starts.push(pos);
    pos = encodeFrame(buf, pos, r, first + k, 0);
  });
  return { buf, starts };
}

function cursor(
  offset: number,
  maxRecords = 100,
  maxBytes = 1 << 20,
  endOffset = Number.MAX_SAFE_INTEGER,
): ReadCursor {
  return { offset, endOffset, maxRecords, maxBytes, bytes: 0, out: new RecordSink() };
}

const served = (c: ReadCursor): string[] =>
  (c.out as RecordSink).records.map((r) => Buffer.from(r.payload).toString());

describe("tail cache", () => {
  it("serves reads that start inside it, across writes, within the limits", () => {
    const cache = new TailCache(1 << 20);
    cache.push(10, write(10, 3).buf, write(10, 3).starts);
    cache.push(13, write(13, 2).buf, write(13, 2).starts);
    const all = cursor(11);
    assert.equal(cache.serve(all), true);
    assert.deepEqual(served(all), ["r11", "r12", "r13", "r14"]);
    assert.equal(all.offset, 15);
    const two = cursor(10, 2);
    cache.serve(two);
    assert.deepEqual(served(two), ["r10", "r11"]);
    const oneByBytes = cursor(12, 100, 1);
    cache.serve(oneByBytes);
    assert.deepEqual(served(oneByBytes), ["r12"]);
    const bounded = cursor(10, 100, 1 << 20, 12);
    cache.serve(bounded);
    assert.deepEqual(served(bounded), ["r10", "r11"]);
    assert.equal(cache.serve(cursor(9)), false);
    assert.equal(cache.serve(cursor(15)), false);
  });

  it("forgets cut records, mid-write too, and restarts on a write that does not follow", () => {
    const cache = new TailCache(1 << 20);
    const a = write(0, 4);
    cache.push(0, a.buf, a.starts);
    cache.truncateFrom(2);
    const c = cursor(0);
    cache.serve(c);
    assert.deepEqual(served(c), ["r0", "r1"]);
    const b = write(2, 1);
    cache.push(2, b.buf, b.starts);
    const d = cursor(1);
    cache.serve(d);
    assert.deepEqual(served(d), ["r1", "r2"]);
    const far = write(50, 1);
    cache.push(50, far.buf, far.starts);
    assert.equal(cache.serve(cursor(1)), false);
    assert.equal(cache.serve(cursor(50)), true);
  });

  it("evicts the oldest writes beyond its byte budget, and holds nothing with a budget of 0", () => {
    const first = write(0, 10);
    const cache = new TailCache(first.buf.length + 10);
    cache.push(0, first.buf, first.starts);
    const second = write(10, 10);
    cache.push(10, second.buf, second.starts);
    assert.equal(cache.serve(cursor(0)), false);
    assert.equal(cache.serve(cursor(10)), true);
    const off = new TailCache(0);
    off.push(0, first.buf, first.starts);
    assert.equal(off.serve(cursor(0)), false);
  });
});
