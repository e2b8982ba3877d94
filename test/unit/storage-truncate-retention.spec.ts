import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { FailedPreconditionError } from "../../src/errors.js";
import { NonContiguousOffsetError, OffsetOutOfRangeError } from "../../src/storage/errors.js";
import { createFaultyFileSystem } from "../../src/storage/faulty-file-system.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { AppendRecord, ReplicatedRecord, StoredRecord } from "../../src/storage/record-format.js";
import { waitFor } from "../helpers/wait.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-truncate-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const rec = (i: number, timestamp = 1000 + i): AppendRecord => ({
  payload: Buffer.from(`record-${i}-`.padEnd(80, "x")),
  timestamp,
});

async function offsetsAndPayloads(log: PartitionLog): Promise<Array<[number, string]>> {
  const out: StoredRecord[] = [];
  let next = log.logStartOffset;
  while (next < log.logEndOffset) {
    const batch = await log.read(next, 1000, 1 << 24);
    out.push(...batch);
    next = (batch[batch.length - 1] as StoredRecord).offset + 1;
  }
  return out.map((r) => [r.offset, Buffer.from(r.payload).toString().split("-").slice(0, 2).join("-")]);
}

const expected = (from: number, to: number): Array<[number, string]> =>
  Array.from({ length: to - from }, (_, k) => [from + k, `record-${from + k}`]);

async function filledLog(
  dir: string,
  count: number,
  extra: Partial<Parameters<typeof openPartitionLog>[0]> = {},
): Promise<PartitionLog> {
  const log = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 1 << 16, ...extra });
  for (let i = 0; i < count; i += 3) {
    await log.append(Array.from({ length: Math.min(3, count - i) }, (_, k) => rec(i + k)));
  }
  return log;
}

async function logFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
}

describe("partition log: truncateTo", () => {
  it("cuts everything at and after an offset, across segments, and appends from there", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 60);
    const segments = log.segments();
    assert.ok(segments.length >= 5);
    const target = segments[1]!.baseOffset + 3;
    await log.truncateTo(target);
    assert.equal(log.logEndOffset, target);
    assert.equal(log.segments().length, 2);
    assert.deepEqual(
      await logFiles(dir),
      segments.slice(0, 2).map((s) => path.basename(s.path)),
    );
    assert.deepEqual(await offsetsAndPayloads(log), expected(0, target));
    assert.deepEqual(await log.read(target), []);
    await assert.rejects(log.read(target + 1), OffsetOutOfRangeError);

    assert.deepEqual(await log.append([rec(1000)]), { baseOffset: target, lastOffset: target });
    assert.equal((await log.read(target))[0]?.timestamp, 2000);
    await log.close();
    const reopened = await openPartitionLog({ dir, segmentBytes: 1024 });
    assert.equal(reopened.logEndOffset, target + 1);
    assert.deepEqual((await offsetsAndPayloads(reopened)).slice(0, target), expected(0, target));
    await reopened.close();
  });

  it("removes a whole segment when cutting at its base offset; no-op past the end; empties at the start", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 40);
    const segments = log.segments();
    await log.truncateTo(segments[2]!.baseOffset);
    assert.deepEqual(
      log.segments().map((s) => s.baseOffset),
      [segments[0]!.baseOffset, segments[1]!.baseOffset],
    );
    assert.equal(log.logEndOffset, segments[2]!.baseOffset);
    await log.truncateTo(10_000);
    assert.equal(log.logEndOffset, segments[2]!.baseOffset);
    await log.truncateTo(0);
    assert.equal(log.logEndOffset, 0);
    assert.equal(log.logStartOffset, 0);
    assert.deepEqual(await logFiles(dir), ["00000000000000000000.log"]);
    await log.append([rec(7)]);
    assert.deepEqual(await offsetsAndPayloads(log), [[0, "record-7"]]);
    await log.close();
  });

  it("fails the appends it cuts before their fsync and acknowledges the ones it keeps", async () => {
    const dir = await tempDir();
    let holding = false;
    const held: Array<() => void> = [];
    const fileSystem = createFaultyFileSystem({
      before: async (op) => {
        if (op.kind === "datasync" && holding) await new Promise<void>((resolve) => held.push(resolve));
        return undefined;
      },
    });
    const log = await openPartitionLog({ dir, fileSystem });
    await log.append([rec(0)]);
    holding = true;
    const kept = log.append([rec(1)]);
    await waitFor(() => held.length === 1, { what: "the fsync to start" });
    const cut = log.append([rec(2), rec(3)]).then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor(() => log.logEndOffset === 4, { what: "the second append to be written" });
    holding = false;
    const truncated = log.truncateTo(2);
    held.shift()?.();
    await truncated;
    assert.deepEqual(await kept, { baseOffset: 1, lastOffset: 1 });
    assert.ok((await cut) instanceof FailedPreconditionError);
    assert.equal(log.logEndOffset, 2);
    await log.close();
  });
});

describe("partition log: appendReplicated and resetTo", () => {
  const replicated = (offset: number, timestamp = 77): ReplicatedRecord => ({
    ...rec(offset),
    offset,
    timestamp,
  });

  it("keeps the leader's offsets and timestamps and rejects gaps, overlaps and disorder", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir });
    assert.deepEqual(await log.appendReplicated([replicated(0, 5), replicated(1, 6)]), {
      baseOffset: 0,
      lastOffset: 1,
    });
    const stored = await log.read(0);
    assert.deepEqual(
      stored.map((r) => [r.offset, r.timestamp]),
      [
        [0, 5],
        [1, 6],
      ],
    );
    await assert.rejects(log.appendReplicated([replicated(3)]), (err: unknown) => {
      assert.ok(err instanceof NonContiguousOffsetError);
      assert.equal(err.expected, 2);
      assert.equal(err.actual, 3);
      return true;
    });
    await assert.rejects(log.appendReplicated([replicated(1)]), NonContiguousOffsetError);
    await assert.rejects(log.appendReplicated([replicated(2), replicated(4)]), NonContiguousOffsetError);
    assert.equal(log.logEndOffset, 2);
    const { timestamp: _dropped, ...noTimestamp } = replicated(2);
    await assert.rejects(log.appendReplicated([noTimestamp as ReplicatedRecord]), /timestamp/);
    assert.deepEqual(await log.appendReplicated([replicated(2), replicated(3)]), {
      baseOffset: 2,
      lastOffset: 3,
    });
    assert.deepEqual(
      (await offsetsAndPayloads(log)).map(([o]) => o),
      [0, 1, 2, 3],
    );
    await log.close();
  });

  it("checks a replicated batch against the log end at the time it is written", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir });
    // Queued together: the second continues the first, the third overlaps it.
    const results = await Promise.allSettled([
      log.appendReplicated([replicated(0), replicated(1)]),
      log.appendReplicated([replicated(2)]),
      log.appendReplicated([replicated(2)]),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "fulfilled", "rejected"],
    );
    assert.equal(log.logEndOffset, 3);
    await log.close();
  });

  it("resets an empty or stale log to start at the leader's offset", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 20);
    await log.resetTo(5000);
    assert.equal(log.logStartOffset, 5000);
    assert.equal(log.logEndOffset, 5000);
    await assert.rejects(log.read(0), OffsetOutOfRangeError);
    assert.deepEqual(await logFiles(dir), ["00000000000000005000.log"]);
    await log.appendReplicated([replicated(5000), replicated(5001)]);
    await log.close();
    const reopened = await openPartitionLog({ dir });
    assert.equal(reopened.logStartOffset, 5000);
    assert.equal(reopened.logEndOffset, 5002);
    await reopened.close();
  });
});

describe("partition log: retention", () => {
  it("by size deletes the oldest whole segments while the rest still holds retentionBytes", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 90, { retentionBytes: 3000 });
    const before = log.segments();
    assert.ok(before.length >= 8, `${before.length} segments`);
    const total = before.reduce((a, s) => a + s.sizeBytes, 0);
    const result = await log.enforceRetention();
    const afterSegments = log.segments();
    assert.ok(result.deletedSegments > 0);
    assert.equal(result.deletedSegments, before.length - afterSegments.length);
    assert.equal(result.deletedBytes, total - log.sizeBytes);
    assert.ok(log.sizeBytes >= 3000, `kept ${log.sizeBytes} bytes`);
    // One more deletion would have gone below the limit.
    assert.ok(log.sizeBytes - afterSegments[0]!.sizeBytes < 3000);
    assert.deepEqual(afterSegments, before.slice(result.deletedSegments));
    assert.equal(log.logStartOffset, afterSegments[0]!.baseOffset);
    assert.equal(result.logStartOffset, log.logStartOffset);
    assert.deepEqual(
      await logFiles(dir),
      afterSegments.map((s) => path.basename(s.path)),
    );
    assert.equal((await readdir(dir)).filter((f) => f.endsWith(".index")).length, afterSegments.length - 1);
    await assert.rejects(log.read(0), OffsetOutOfRangeError);
    assert.deepEqual(await offsetsAndPayloads(log), expected(log.logStartOffset, 90));
    assert.equal((await log.enforceRetention()).deletedSegments, 0);
    await log.close();
    const reopened = await openPartitionLog({ dir, segmentBytes: 1024 });
    assert.equal(reopened.logStartOffset, afterSegments[0]!.baseOffset);
    await reopened.close();
  });

  it("by time deletes only segments whose newest record is older than retentionMs, never the active one", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, segmentBytes: 1024, retentionMs: 10_000 });
    // Timestamps grow by 1000 per record; segments hold ~9 records.
    for (let i = 0; i < 60; i += 3) {
      await log.append([0, 1, 2].map((k) => rec(i + k, (i + k) * 1000)));
    }
    const before = log.segments();
    const now = 40_000;
    const result = await log.enforceRetention(now);
    const expectedDeleted = before.slice(0, -1).findIndex((s) => s.maxTimestamp >= now - 10_000);
    assert.ok(expectedDeleted > 0);
    assert.equal(result.deletedSegments, expectedDeleted);
    for (const s of log.segments().slice(0, -1)) assert.ok(s.maxTimestamp >= now - 10_000);
    assert.ok(log.logStartOffset <= 30, "records newer than the cutoff are kept");

    const everything = await log.enforceRetention(10_000_000);
    assert.equal(log.segments().length, 1, "the active segment stays");
    assert.equal(everything.logStartOffset, before[before.length - 1]!.baseOffset);
    assert.equal(log.logEndOffset, 60);
    await log.close();
  });

  it("keeps everything without retention settings", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 30);
    const n = log.segments().length;
    assert.equal((await log.enforceRetention(Number.MAX_SAFE_INTEGER)).deletedSegments, 0);
    assert.equal(log.segments().length, n);
    await log.close();
  });
});
