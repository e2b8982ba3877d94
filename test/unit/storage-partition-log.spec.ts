import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { InvalidArgumentError } from "../../src/errors.js";
import { OffsetOutOfRangeError, LogClosedError } from "../../src/storage/errors.js";
import { createFaultyFileSystem } from "../../src/storage/faulty-file-system.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { AppendRecord, StoredRecord } from "../../src/storage/record-format.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-storage-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A record whose every field is derived from `i`, so a read can be checked field by field. */
function record(i: number, payloadBytes = 100): AppendRecord {
  return {
    payload: Buffer.alloc(payloadBytes, `payload-${i}|`),
    key: Buffer.from(`key-${i}`),
    headers: [{ key: "n", value: Buffer.from(String(i)) }],
    producerId: `producer-${i % 3}`,
    messageId: BigInt(i) * 1000n,
    timestamp: 1_000_000 + i,
  };
}

function assertRecord(got: StoredRecord | undefined, i: number, offset: number, payloadBytes = 100): void {
  assert.ok(got, `record at offset ${offset} missing`);
  assert.equal(got.offset, offset);
  assert.equal(Buffer.from(got.payload).toString(), Buffer.alloc(payloadBytes, `payload-${i}|`).toString());
  assert.equal(Buffer.from(got.key).toString(), `key-${i}`);
  assert.equal(got.headers.length, 1);
  assert.equal(got.headers[0]?.key, "n");
  assert.equal(Buffer.from(got.headers[0]?.value ?? []).toString(), String(i));
  assert.equal(got.producerId, `producer-${i % 3}`);
  assert.equal(got.messageId, BigInt(i) * 1000n);
  assert.equal(got.timestamp, 1_000_000 + i);
}

async function readAll(log: PartitionLog, from = log.logStartOffset): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  let next = from;
  while (next < log.logEndOffset) {
    const batch = await log.read(next, 37, 1 << 20);
    assert.ok(batch.length > 0, `no progress at ${next}`);
    out.push(...batch);
    next = (batch[batch.length - 1] as StoredRecord).offset + 1;
  }
  return out;
}

describe("partition log: append and read", () => {
  it("round-trips records across segment rolls, with segment files named by base offset", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({
      dir,
      segmentBytes: 4096,
      indexIntervalBytes: 512,
      tailCacheBytes: 0,
    });
    const results = [];
    for (let i = 0; i < 200; i += 5) {
      results.push(await log.append([0, 1, 2, 3, 4].map((k) => record(i + k))));
    }
    assert.deepEqual(results[0], { baseOffset: 0, lastOffset: 4 });
    assert.deepEqual(results[39], { baseOffset: 195, lastOffset: 199 });
    assert.equal(log.logStartOffset, 0);
    assert.equal(log.logEndOffset, 200);

    const segments = log.segments();
    assert.ok(segments.length > 5, `expected several segments, got ${segments.length}`);
    for (let i = 0; i + 1 < segments.length; i++) {
      assert.equal(segments[i]?.nextOffset, segments[i + 1]?.baseOffset);
      assert.ok((segments[i]?.sizeBytes ?? 0) <= 4096);
    }
    const files = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
    assert.deepEqual(
      files,
      segments.map((s) => `${String(s.baseOffset).padStart(20, "0")}.log`),
    );
    assert.equal(files[0], "00000000000000000000.log");

    const all = await readAll(log);
    assert.equal(all.length, 200);
    all.forEach((r, i) => assertRecord(r, i, i));
    // A read that starts inside one segment and runs across several.
    const span = await log.read(segments[1]!.baseOffset - 2, 50, 1 << 20);
    assert.equal(span.length, 50);
    span.forEach((r, k) => assertRecord(r, segments[1]!.baseOffset - 2 + k, segments[1]!.baseOffset - 2 + k));
    await log.close();
  });

  it("honours maxRecords, maxBytes (at least one record), endOffset and the log bounds", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, tailCacheBytes: 0 });
    await log.append(Array.from({ length: 20 }, (_, i) => record(i)));
    assert.equal((await log.read(3, 5, 1 << 20)).length, 5);
    const frame = (await log.read(0, 1, 1 << 20))[0]!.sizeBytes;
    const byBytes = await log.read(0, 100, frame * 3 + 1);
    assert.deepEqual(
      byBytes.map((r) => r.offset),
      [0, 1, 2],
    );
    const tiny = await log.read(7, 100, 1);
    assert.deepEqual(
      tiny.map((r) => r.offset),
      [7],
    );
    const capped = await log.read(10, 100, 1 << 20, { endOffset: 13 });
    assert.deepEqual(
      capped.map((r) => r.offset),
      [10, 11, 12],
    );
    assert.deepEqual(await log.read(20), []);
    await assert.rejects(log.read(21), OffsetOutOfRangeError);
    await assert.rejects(log.read(0, 0), InvalidArgumentError);
    await assert.rejects(log.append([]), InvalidArgumentError);
    await log.close();
  });

  it("serves tail reads from memory with the same results as the disk", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, tailCacheBytes: 1 << 20 });
    for (let i = 0; i < 50; i++) await log.append([record(i)]);
    const hitsBefore = log.stats().tailCacheHits;
    const fromCache = await log.read(40, 100);
    assert.equal(log.stats().tailCacheHits, hitsBefore + 1);
    fromCache.forEach((r, k) => assertRecord(r, 40 + k, 40 + k));
    assert.equal(fromCache.length, 10);
    await log.close();
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 1 << 20 });
    const fromDisk = await reopened.read(40, 100);
    assert.equal(reopened.stats().tailCacheHits, 0);
    assert.deepEqual(
      fromDisk.map((r) => [r.offset, Buffer.from(r.payload).toString(), r.sizeBytes]),
      fromCache.map((r) => [r.offset, Buffer.from(r.payload).toString(), r.sizeBytes]),
    );
    await reopened.close();
  });

  it("finds an offset through the sparse index, reading a bounded number of bytes", async () => {
    const dir = await tempDir();
    let bytesRead = 0;
    const fileSystem = createFaultyFileSystem({
      before: (op) => {
        if (op.kind === "read" && op.path.endsWith(".log")) bytesRead += op.length ?? 0;
        return undefined;
      },
    });
    const log = await openPartitionLog({
      dir,
      fileSystem,
      indexIntervalBytes: 1024,
      segmentBytes: 8 << 20,
      tailCacheBytes: 0,
    });
    // ~2 MiB of 1 KiB records in one segment.
    for (let i = 0; i < 2000; i += 100) {
      await log.append(Array.from({ length: 100 }, (_, k) => record(i + k, 1000)));
    }
    const segmentBytes = log.segments()[0]!.sizeBytes;
    for (const target of [0, 1, 777, 1500, 1999]) {
      bytesRead = 0;
      const got = await log.read(target, 1, 1);
      assertRecord(got[0], target, target, 1000);
      // Index + scan: one chunk (64 KiB) at most, not the 2 MiB a scan from the start would need.
      assert.ok(bytesRead <= 128 * 1024, `read ${bytesRead} bytes of ${segmentBytes} to find ${target}`);
    }
    await log.close();
  });

  it("reopens after a clean close from the saved indexes and keeps appending", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, segmentBytes: 8192, tailCacheBytes: 0 });
    for (let i = 0; i < 300; i += 10) await log.append(Array.from({ length: 10 }, (_, k) => record(i + k)));
    const before = log.segments();
    await log.close();
    await assert.rejects(log.append([record(0)]), LogClosedError);
    await assert.rejects(log.read(0), LogClosedError);

    let bytesRead = 0;
    const fileSystem = createFaultyFileSystem({
      before: (op) => {
        if (op.kind === "read" && op.path.endsWith(".log")) bytesRead += op.length ?? 0;
        return undefined;
      },
    });
    const reopened = await openPartitionLog({ dir, segmentBytes: 8192, fileSystem, tailCacheBytes: 0 });
    // Clean shutdown: no segment was scanned.
    assert.equal(bytesRead, 0);
    assert.deepEqual(reopened.segments(), before);
    assert.equal(reopened.logEndOffset, 300);
    assert.deepEqual(await reopened.append([record(300)]), { baseOffset: 300, lastOffset: 300 });
    const all = await readAll(reopened);
    assert.equal(all.length, 301);
    all.forEach((r, i) => assertRecord(r, i, i));
    await reopened.close();
  });

  it("rebuilds a missing or damaged index by scanning the segment", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({
      dir,
      segmentBytes: 8192,
      indexIntervalBytes: 256,
      tailCacheBytes: 0,
    });
    for (let i = 0; i < 200; i += 10) await log.append(Array.from({ length: 10 }, (_, k) => record(i + k)));
    const segments = log.segments();
    await log.close();
    const indexes = (await readdir(dir)).filter((f) => f.endsWith(".index")).sort();
    assert.equal(indexes.length, segments.length);
    await unlink(path.join(dir, indexes[0]!));
    await writeFile(path.join(dir, indexes[1]!), Buffer.from("not an index at all"));

    const reopened = await openPartitionLog({
      dir,
      segmentBytes: 8192,
      indexIntervalBytes: 256,
      tailCacheBytes: 0,
    });
    assert.deepEqual(reopened.segments(), segments);
    const all = await readAll(reopened);
    assert.equal(all.length, 200);
    all.forEach((r, i) => assertRecord(r, i, i));
    for (const target of [3, segments[1]!.baseOffset + 5]) {
      assertRecord((await reopened.read(target, 1))[0], target, target);
    }
    await reopened.close();
    // The rebuilt index was saved on the next clean close.
    assert.ok((await stat(path.join(dir, indexes[0]!))).size > 48);
  });

  it("starts a new log at initialOffset, and notifies appends", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, initialOffset: 1000 });
    const seen: number[] = [];
    const off = log.onAppend((end) => seen.push(end));
    assert.equal(log.logStartOffset, 1000);
    assert.deepEqual(await log.append([record(0), record(1)]), { baseOffset: 1000, lastOffset: 1001 });
    off();
    await log.append([record(2)]);
    assert.deepEqual(seen, [1002]);
    assert.ok((await readdir(dir)).includes("00000000000000001000.log"));
    assert.equal(log.durableOffset, 1003);
    const stats = log.stats();
    assert.equal(stats.recordsAppended, 3);
    assert.equal(stats.appends, 2);
    await log.close();
  });

  it("rejects impossible options", async () => {
    const dir = await tempDir();
    await assert.rejects(openPartitionLog({ dir, segmentBytes: 0 }), /segmentBytes/);
    await assert.rejects(openPartitionLog({ dir, fsync: "never" as "always" }), /fsync/);
    await assert.rejects(openPartitionLog({ dir, maxRecordBytes: 10 }), /maxRecordBytes/);
    await assert.rejects(openPartitionLog({ dir: "" }), InvalidArgumentError);
  });
});
