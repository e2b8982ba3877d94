import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { InvalidArgumentError } from "../../src/errors.js";
import { OffsetOutOfRangeError, StorageError } from "../../src/storage/errors.js";
import { LOG_START_FILE } from "../../src/storage/log-start-file.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { AppendRecord } from "../../src/storage/record-format.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-delete-records-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const rec = (i: number): AppendRecord => ({ payload: Buffer.from(`record-${i}-`.padEnd(80, "x")) });

/** A log of `count` records in segments of 1 KiB (about ten records each). */
async function filledLog(dir: string, count: number): Promise<PartitionLog> {
  const log = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 1 << 16 });
  for (let i = 0; i < count; i += 3) {
    await log.append(Array.from({ length: Math.min(3, count - i) }, (_, k) => rec(i + k)));
  }
  return log;
}

const payloadAt = async (log: PartitionLog, offset: number): Promise<string> =>
  Buffer.from((await log.read(offset, 1))[0]?.payload ?? [])
    .toString()
    .split("-")
    .slice(0, 2)
    .join("-");

const segmentFiles = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();

describe("partition log: deleteRecordsBefore", () => {
  it("inside a segment: reads start at the offset, whole segments below go, and it survives a restart", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 60);
    const before = log.segments();
    const target = (before[2] as { baseOffset: number }).baseOffset + 4;
    const result = await log.deleteRecordsBefore(target);
    assert.equal(result.logStartOffset, target);
    assert.equal(result.deletedSegments, 2);
    assert.equal(log.logStartOffset, target);
    assert.equal(log.logEndOffset, 60);
    // The segment holding the new start stays (its records below it are hidden), the two below are gone.
    assert.deepEqual(
      await segmentFiles(dir),
      before.slice(2).map((s) => path.basename(s.path)),
    );
    await assert.rejects(log.read(target - 1), OffsetOutOfRangeError);
    await assert.rejects(log.readFrames(0), OffsetOutOfRangeError);
    assert.equal(await payloadAt(log, target), `record-${target}`);
    await log.close();

    const reopened = await openPartitionLog({ dir, segmentBytes: 1024 });
    assert.equal(reopened.logStartOffset, target);
    await assert.rejects(reopened.read(target - 1), OffsetOutOfRangeError);
    assert.equal(await payloadAt(reopened, target), `record-${target}`);
    await reopened.close();
  });

  it("at the log end: every segment is freed and appends go on at the same offsets", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 40);
    const result = await log.deleteRecordsBefore(40);
    assert.equal(result.logStartOffset, 40);
    assert.equal(log.segments().length, 1, "only a new, empty active segment is left");
    assert.equal(log.sizeBytes, 0);
    assert.deepEqual(await log.read(40), []);
    await assert.rejects(log.read(39), OffsetOutOfRangeError);
    assert.deepEqual(await log.append([rec(40)]), { baseOffset: 40, lastOffset: 40 });
    assert.equal(await payloadAt(log, 40), "record-40");
    await log.close();
  });

  it("at or below the log start changes nothing; past the log end is refused and changes nothing", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 30);
    await log.deleteRecordsBefore(12);
    const files = await segmentFiles(dir);
    assert.deepEqual(await log.deleteRecordsBefore(5), {
      deletedSegments: 0,
      deletedBytes: 0,
      logStartOffset: 12,
    });
    await assert.rejects(log.deleteRecordsBefore(31), InvalidArgumentError);
    await assert.rejects(log.deleteRecordsBefore(-1), InvalidArgumentError);
    assert.equal(log.logStartOffset, 12);
    assert.deepEqual(await segmentFiles(dir), files);
    assert.equal(await payloadAt(log, 12), "record-12");
    await log.close();
  });

  it("a follower's reset below the recorded start forgets it: the new log starts where it was reset", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 30);
    await log.deleteRecordsBefore(25);
    await log.truncateTo(20);
    assert.equal(log.logStartOffset, 20);
    assert.equal(log.logEndOffset, 20);
    assert.deepEqual(await log.append([rec(20)]), { baseOffset: 20, lastOffset: 20 });
    await log.close();
    const reopened = await openPartitionLog({ dir, segmentBytes: 1024 });
    assert.equal(reopened.logStartOffset, 20);
    assert.equal(await payloadAt(reopened, 20), "record-20");
    await reopened.close();
  });

  it("a damaged log-start file fails the open with a StorageError naming the file", async () => {
    const dir = await tempDir();
    const log = await filledLog(dir, 10);
    await log.deleteRecordsBefore(4);
    await log.close();
    await writeFile(path.join(dir, LOG_START_FILE), "four\n");
    await assert.rejects(openPartitionLog({ dir, segmentBytes: 1024 }), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.match(err.message, new RegExp(`${LOG_START_FILE} is damaged`));
      return true;
    });
  });
});
