import assert from "node:assert/strict";
import {
  cp,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  truncate,
  appendFile,
  unlink,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";

import { createLogger } from "../../src/observability/logger.js";
import { CorruptRecordError } from "../../src/storage/errors.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { AppendRecord, StoredRecord } from "../../src/storage/record-format.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-recovery-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function record(i: number): AppendRecord {
  return {
    payload: Buffer.from(`payload number ${i} `.repeat(4)),
    key: Buffer.from(`k${i}`),
    timestamp: 5000 + i,
  };
}

function assertRecord(got: StoredRecord | undefined, i: number): void {
  assert.ok(got, `record ${i} missing`);
  assert.equal(got.offset, i);
  assert.equal(Buffer.from(got.payload).toString(), `payload number ${i} `.repeat(4));
  assert.equal(got.timestamp, 5000 + i);
}

async function readAll(log: PartitionLog): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  let next = log.logStartOffset;
  while (next < log.logEndOffset) {
    const batch = await log.read(next, 1000, 1 << 24);
    out.push(...batch);
    next = (batch[batch.length - 1] as StoredRecord).offset + 1;
  }
  return out;
}

/**
 * Writes `count` records (fsync=always), then copies the directory while the log is still open: the
 * copy is what a crash leaves behind (no clean-shutdown index for the active segment).
 */
async function crashedLog(
  count: number,
  options: { segmentBytes?: number } = {},
): Promise<{ dir: string; sizes: number[] }> {
  const live = await tempDir();
  const log = await openPartitionLog({ dir: live, tailCacheBytes: 0, ...options });
  for (let i = 0; i < count; i += 4) {
    await log.append(Array.from({ length: Math.min(4, count - i) }, (_, k) => record(i + k)));
  }
  const sizes = (await readAll(log)).map((r) => r.sizeBytes);
  const crashed = await tempDir();
  await cp(live, crashed, { recursive: true });
  await log.close();
  return { dir: crashed, sizes };
}

async function lastSegmentFile(dir: string): Promise<string> {
  const logs = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
  return path.join(dir, logs[logs.length - 1] as string);
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: () => string } {
  let text = "";
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { logger: createLogger({ level: "info", destination }), lines: () => text };
}

describe("partition log: recovery", () => {
  it("cuts a torn last record on reopen and keeps every earlier one", async () => {
    const { dir, sizes } = await crashedLog(20);
    const file = await lastSegmentFile(dir);
    const full = (await stat(file)).size;
    assert.equal(
      full,
      sizes.reduce((a, b) => a + b, 0),
    );
    await truncate(file, full - 7);
    assert.equal(
      (await readdir(dir)).filter((f) => f.endsWith(".index")).length,
      0,
      "a crash leaves no active index",
    );

    const { logger, lines } = capturingLogger();
    const log = await openPartitionLog({ dir, logger, tailCacheBytes: 0 });
    assert.equal(log.logEndOffset, 19);
    assert.equal((await stat(file)).size, full - (sizes[19] as number));
    assert.match(lines(), /cutting the torn tail/);
    assert.equal(log.damage, undefined, "a torn tail is not damage");
    const all = await readAll(log);
    assert.equal(all.length, 19);
    all.forEach((r, i) => assertRecord(r, i));
    assert.deepEqual(await log.append([record(19)]), { baseOffset: 19, lastOffset: 19 });
    await log.close();

    const again = await openPartitionLog({ dir, tailCacheBytes: 0 });
    (await readAll(again)).forEach((r, i) => assertRecord(r, i));
    assert.equal(again.logEndOffset, 20);
    await again.close();
  });

  for (const [name, tail] of [
    ["random garbage", Buffer.from("\u0000\u0000\u0001\u0000this is not a frame, it is what a crash left")],
    ["a zero-filled block", Buffer.alloc(4096)],
    ["a frame header promising more than is there", Buffer.from([0, 0, 1, 244, 1, 2, 3, 4, 1, 0])],
    ["three stray bytes", Buffer.from([0, 0, 0])],
  ] as const) {
    it(`cuts ${name} after the last record`, async () => {
      const { dir, sizes } = await crashedLog(10);
      const file = await lastSegmentFile(dir);
      const good = (await stat(file)).size;
      await appendFile(file, tail);
      const log = await openPartitionLog({ dir, tailCacheBytes: 0 });
      assert.equal(log.logEndOffset, 10);
      assert.equal(log.damage, undefined, "a torn tail is not damage");
      assert.equal((await stat(file)).size, good);
      assert.equal(
        good,
        sizes.reduce((a, b) => a + b, 0),
      );
      (await readAll(log)).forEach((r, i) => assertRecord(r, i));
      await log.append([record(10)]);
      assertRecord((await log.read(10))[0], 10);
      await log.close();
    });
  }

  it("cuts a last segment that is all garbage, keeping the sealed ones", async () => {
    const { dir } = await crashedLog(60, { segmentBytes: 1024 });
    const file = await lastSegmentFile(dir);
    const base = Number(path.basename(file, ".log"));
    assert.ok(base > 0);
    await writeFile(file, Buffer.from("garbage".repeat(50)));
    const log = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 0 });
    assert.equal(log.logEndOffset, base);
    assert.equal((await stat(file)).size, 0);
    const all = await readAll(log);
    assert.equal(all.length, base);
    all.forEach((r, i) => assertRecord(r, i));
    await log.close();
  });

  it("reports a CRC mismatch as CorruptRecordError naming the offset and file, never the bad data", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, tailCacheBytes: 0 });
    await log.append(Array.from({ length: 12 }, (_, i) => record(i)));
    const sizes = (await readAll(log)).map((r) => r.sizeBytes);
    await log.close();
    const file = await lastSegmentFile(dir);
    const position = sizes.slice(0, 7).reduce((a, b) => a + b, 0);
    const bytes = await readFile(file);
    const middle = position + Math.floor((sizes[7] as number) / 2) + 10;
    bytes[middle] = (bytes[middle] as number) ^ 0x20;
    await writeFile(file, bytes);

    // Clean reopen: the saved index is trusted, so the damage is found by the read.
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 0 });
    assert.equal(reopened.logEndOffset, 12);
    await assert.rejects(reopened.read(7), (err: unknown) => {
      assert.ok(err instanceof CorruptRecordError);
      assert.equal(err.offset, 7);
      assert.equal(err.segmentFile, file);
      assert.equal(err.position, position);
      assert.match(err.message, /CRC32C mismatch/);
      return true;
    });
    // The good records before it are served; the next read then stops at the damage.
    const prefix = await reopened.read(0, 100);
    assert.deepEqual(
      prefix.map((r) => r.offset),
      [0, 1, 2, 3, 4, 5, 6],
    );
    await assert.rejects(reopened.read(prefix.length), CorruptRecordError);
    await reopened.close();
  });

  it("reads past a damaged record when the index points beyond it", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, indexIntervalBytes: 1, tailCacheBytes: 0 });
    await log.append(Array.from({ length: 12 }, (_, i) => record(i)));
    const sizes = (await readAll(log)).map((r) => r.sizeBytes);
    await log.close();
    const file = await lastSegmentFile(dir);
    const bytes = await readFile(file);
    const inPayload = sizes.slice(0, 7).reduce((a, b) => a + b, 0) + (sizes[7] as number) - 5;
    bytes[inPayload] = (bytes[inPayload] as number) ^ 0xff;
    await writeFile(file, bytes);
    const reopened = await openPartitionLog({ dir, indexIntervalBytes: 1, tailCacheBytes: 0 });
    await assert.rejects(reopened.read(7), CorruptRecordError);
    assertRecord((await reopened.read(8, 1))[0], 8);
    await reopened.close();
  });

  it("after a crash, tells a damaged record followed by valid ones from a torn tail: reported as damage", async () => {
    const { dir, sizes } = await crashedLog(12);
    const file = await lastSegmentFile(dir);
    const bytes = await readFile(file);
    const inRecord5 = sizes.slice(0, 5).reduce((a, b) => a + b, 0) + 30;
    bytes[inRecord5] = (bytes[inRecord5] as number) ^ 0x01;
    await writeFile(file, bytes);
    const { logger, lines } = capturingLogger();
    const log = await openPartitionLog({ dir, logger, tailCacheBytes: 0 });
    // Cut to stay contiguous, but the 7 valid records after the damage are known to have existed: the
    // partition must fetch [5, 12) again from a replica before it may lead (see Partition).
    assert.equal(log.logEndOffset, 5);
    assert.deepEqual({ from: log.damage?.fromOffset, to: log.damage?.toOffset }, { from: 5, to: 12 });
    assert.match(lines(), /followed by valid records/);
    (await readAll(log)).forEach((r, i) => assertRecord(r, i));
    await log.close();
  });

  it("finds the valid records behind a damaged length field", async () => {
    const { dir, sizes } = await crashedLog(12);
    const file = await lastSegmentFile(dir);
    const bytes = await readFile(file);
    const record3 = sizes.slice(0, 3).reduce((a, b) => a + b, 0);
    bytes.writeUInt32BE(0x7fffffff, record3); // an implausible length: the scan cannot step over it
    await writeFile(file, bytes);
    const log = await openPartitionLog({ dir, tailCacheBytes: 0 });
    assert.equal(log.logEndOffset, 3);
    assert.equal(log.damage?.toOffset, 12);
    await log.close();
  });

  it("keeps a damaged sealed segment, failing reads at the damage and serving the segments after it", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 0 });
    for (let i = 0; i < 40; i += 4) await log.append(Array.from({ length: 4 }, (_, k) => record(i + k)));
    const segments = log.segments();
    await log.close();
    assert.ok(segments.length >= 3);
    const damaged = segments[1]!;
    const bytes = await readFile(damaged.path);
    bytes[60] = (bytes[60] as number) ^ 0x01; // inside the segment's first record
    await writeFile(damaged.path, bytes);
    await unlink(damaged.path.replace(/\.log$/, ".index"));

    const { logger, lines } = capturingLogger();
    const reopened = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 0, logger });
    assert.match(lines(), /corrupt record in a sealed segment/);
    assert.deepEqual(
      reopened.segments().map((s) => [s.baseOffset, s.nextOffset]),
      segments.map((s) => [s.baseOffset, s.nextOffset]),
    );
    assert.equal(reopened.logEndOffset, 40);
    const before = await reopened.read(0, 1000);
    assert.equal(before.length, damaged.baseOffset);
    await assert.rejects(reopened.read(damaged.baseOffset), (err: unknown) => {
      assert.ok(err instanceof CorruptRecordError);
      assert.equal(err.offset, damaged.baseOffset);
      assert.equal(err.segmentFile, damaged.path);
      return true;
    });
    await assert.rejects(reopened.read(damaged.baseOffset + 1), CorruptRecordError);
    const afterIt = await reopened.read(segments[2]!.baseOffset, 1000);
    afterIt.forEach((r, k) => assertRecord(r, segments[2]!.baseOffset + k));
    await reopened.close();
  });
});
