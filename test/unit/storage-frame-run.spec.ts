import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";

import { InvalidArgumentError } from "../../src/errors.js";
import { NonContiguousOffsetError } from "../../src/storage/errors.js";
import { FrameBytesSink, checkFrameRun } from "../../src/storage/frame-run.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import { FrameError, encodeFrame, frameSize, type AppendRecord } from "../../src/storage/record-format.js";
import { crc32c } from "../../src/storage/crc32c.js";
import { temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-frames-");

/** Records of every shape the format has: keys, headers, producer ids, and payloads written in place. */
function record(i: number): AppendRecord {
  const large = i % 5 === 4;
  return {
    payload: Buffer.alloc(large ? 20_000 : 50 + i, 65 + (i % 26)),
    timestamp: 1_700_000_000_000 + i,
    ...(i % 2 === 0 ? { key: Buffer.from(`key-${i}`) } : {}),
    ...(i % 3 === 0 ? { headers: [{ key: "h", value: Buffer.from(`v${i}`) }] } : {}),
    ...(i % 4 === 0 ? { producerId: `producer-${i}`, messageId: BigInt(i + 1) } : {}),
  };
}

/** `count` frames from offset `first`, back to back. */
function frames(first: number, count: number): Buffer {
  const records = Array.from({ length: count }, (_, k) => record(first + k));
  const buf = Buffer.alloc(records.reduce((n, r) => n + (frameSize(r) as number), 0));
  let pos = 0;
  records.forEach((r, k) => {
    pos = encodeFrame(buf, pos, r, first + k, r.timestamp as number);
  });
  return buf;
}

async function segmentBytes(log: PartitionLog): Promise<Buffer> {
  const parts = await Promise.all(log.segments().map((s) => readFile(s.path)));
  return Buffer.concat(parts);
}

async function filledLog(tailCacheBytes: number, count: number): Promise<PartitionLog> {
  const log = await openPartitionLog({ dir: path.join(await tempDir(), "log"), tailCacheBytes });
  for (let i = 0; i < count; i += 7) {
    await log.append(Array.from({ length: Math.min(7, count - i) }, (_, k) => record(i + k)));
  }
  return log;
}

describe("runs of frames: checking what a follower is sent", () => {
  it("accepts a run and says where each frame starts, its first offset and newest timestamp", () => {
    const buf = frames(40, 6);
    const run = checkFrameRun(buf, 1 << 20);
    assert.equal(run.firstOffset, 40);
    assert.equal(run.count, 6);
    assert.equal(run.maxTimestamp, 1_700_000_000_045);
    assert.equal(run.starts[0], 0);
    assert.equal(run.starts[1], frameSize(record(40)));
  });

  it("refuses an empty run, a cut frame, a flipped bit, a gap in offsets and an oversized frame", () => {
    const good = frames(0, 4);
    assert.throws(() => checkFrameRun(Buffer.alloc(0), 1 << 20), FrameError);
    assert.throws(
      () => checkFrameRun(good.subarray(0, good.length - 3), 1 << 20),
      /cut short|impossible length/,
    );
    const flipped = Buffer.from(good);
    flipped[60] = (flipped[60] as number) ^ 0x10;
    assert.throws(() => checkFrameRun(flipped, 1 << 20), /CRC32C mismatch/);
    const gap = Buffer.concat([frames(0, 2), frames(3, 1)]);
    assert.throws(() => checkFrameRun(gap, 1 << 20), /offset 3 where 2 was expected/);
    assert.throws(() => checkFrameRun(good, 60), /above the limit of 60/);
  });

  it("refuses a frame whose CRC is right but whose fields do not add up", () => {
    const buf = frames(0, 1);
    // Lengthen the key by one byte and sign the frame again: only the layout check can see it.
    const keyLengthAt = 34 + 2 + buf.readUInt16BE(34);
    buf.writeUInt32BE(buf.readUInt32BE(keyLengthAt) + 1, keyLengthAt);
    buf.writeUInt32BE(crc32c(buf, 8, buf.length), 4);
    assert.throws(() => checkFrameRun(buf, 1 << 20), /does not match|runs past|fields end/);
  });

  it("gathers adjacent frames of one buffer into one piece, and keeps payloads held apart", () => {
    const buf = frames(0, 3);
    const run = checkFrameRun(buf, 1 << 20);
    const sink = new FrameBytesSink();
    for (let i = 0; i < 3; i++) {
      const end = run.starts[i + 1] ?? buf.length;
      sink.add(buf, run.starts[i] as number, end - (run.starts[i] as number));
    }
    assert.equal(sink.length, 3);
    const bytes = sink.bytes();
    assert.equal(bytes.buffer, buf.buffer, "one piece: a view, not a copy");
    assert.deepEqual(Buffer.from(bytes), buf);
  });
});

describe("partition log: frames read on one log and appended to another", () => {
  for (const [where, tailCacheBytes] of [
    ["the tail cache", 64 << 20],
    ["the segment files", 0],
  ] as const) {
    it(`copies a log byte for byte, reading from ${where} (payloads written in place included)`, async () => {
      const leader = await filledLog(tailCacheBytes, 40);
      const follower = await openPartitionLog({ dir: path.join(await tempDir(), "log") });
      for (let next = 0; next < leader.logEndOffset;) {
        const run = await leader.readFrames(next, 9, 1 << 20);
        assert.equal(run.firstOffset, next);
        assert.ok(run.count > 0 && run.count <= 9);
        assert.deepEqual(await follower.appendFrames(run.bytes), {
          baseOffset: next,
          lastOffset: next + run.count - 1,
        });
        next += run.count;
      }
      assert.equal(follower.logEndOffset, 40);
      assert.deepEqual(await segmentBytes(follower), await segmentBytes(leader));
      const stored = await follower.read(0, 100, 64 << 20);
      assert.deepEqual(
        stored.map((r) => [
          r.offset,
          r.timestamp,
          Buffer.from(r.payload).length,
          r.producerId,
          r.headers.length,
        ]),
        (await leader.read(0, 100, 64 << 20)).map((r) => [
          r.offset,
          r.timestamp,
          Buffer.from(r.payload).length,
          r.producerId,
          r.headers.length,
        ]),
      );
      await Promise.all([leader.close(), follower.close()]);
    });
  }

  it("writes runs queued together (and replicated records beside them) in one write, indexed as usual", async () => {
    const leader = await filledLog(64 << 20, 30);
    const follower = await openPartitionLog({
      dir: path.join(await tempDir(), "log"),
      indexIntervalBytes: 256,
      tailCacheBytes: 0, // reads below go through the sparse index
    });
    const first = await leader.readFrames(0, 10, 1 << 24);
    const second = await leader.readFrames(10, 10, 1 << 24);
    const asRecords = (await leader.read(20, 5, 1 << 24)).map((r) => ({ ...r }));
    const third = await leader.readFrames(25, 10, 1 << 24);
    const writesBefore = follower.stats().writes;
    await Promise.all([
      follower.appendFrames(first.bytes),
      follower.appendFrames(second.bytes),
      follower.appendReplicated(asRecords),
      follower.appendFrames(third.bytes),
    ]);
    assert.equal(follower.stats().writes - writesBefore, 1, "one write for the four appends");
    assert.deepEqual(await segmentBytes(follower), await segmentBytes(leader));
    // Reads through the sparse index land on the right records.
    for (const at of [3, 17, 22, 29]) assert.equal((await follower.read(at, 1))[0]?.offset, at);
    await Promise.all([leader.close(), follower.close()]);
  });

  it("keeps readFrames within its record and byte limits, always at least one frame", async () => {
    const log = await filledLog(64 << 20, 10);
    assert.equal((await log.readFrames(0, 3, 1 << 20)).count, 3);
    assert.equal((await log.readFrames(0, 100, 1)).count, 1);
    assert.equal((await log.readFrames(2, 100, 1 << 20, { endOffset: 6 })).count, 4);
    assert.equal((await log.readFrames(10, 100, 1 << 20)).count, 0);
    await log.close();
  });

  it("refuses a run that does not continue the log, or a damaged one, and writes nothing of it", async () => {
    const log = await openPartitionLog({ dir: path.join(await tempDir(), "log") });
    await log.appendFrames(frames(0, 3));
    await assert.rejects(log.appendFrames(frames(5, 2)), NonContiguousOffsetError);
    const damaged = frames(3, 3);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0xff;
    await assert.rejects(log.appendFrames(damaged), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /replicated frames refused: CRC32C mismatch/);
      return true;
    });
    assert.equal(log.logEndOffset, 3);
    assert.deepEqual(await log.appendFrames(frames(3, 3)), { baseOffset: 3, lastOffset: 5 });
    assert.deepEqual(
      (await log.read(0, 100, 1 << 24)).map((r) => r.offset),
      [0, 1, 2, 3, 4, 5],
    );
    await log.close();
  });
});
