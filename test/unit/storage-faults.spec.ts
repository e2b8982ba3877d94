import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { cp, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { InvalidArgumentError, isRetryable } from "../../src/errors.js";
import { RecordTooLargeError, StorageError } from "../../src/storage/errors.js";
import {
  createFaultyFileSystem,
  errnoError,
  type FaultDecision,
  type FileOperation,
} from "../../src/storage/faulty-file-system.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { AppendRecord, StoredRecord } from "../../src/storage/record-format.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-faults-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const rec = (text: string): AppendRecord => ({ payload: Buffer.from(text), timestamp: 42 });

async function payloads(log: PartitionLog): Promise<string[]> {
  const out: StoredRecord[] = [];
  let next = log.logStartOffset;
  while (next < log.logEndOffset) {
    const batch = await log.read(next, 1000, 1 << 24);
    out.push(...batch);
    next = (batch[batch.length - 1] as StoredRecord).offset + 1;
  }
  out.forEach((r, i) => assert.equal(r.offset, log.logStartOffset + i));
  return out.map((r) => Buffer.from(r.payload).toString());
}

/** A file system that runs `plan` on every operation, so a test arms faults when it wants them. */
function injectable(): {
  fileSystem: ReturnType<typeof createFaultyFileSystem>;
  arm: (plan: ((op: FileOperation) => FaultDecision) | undefined) => void;
} {
  let plan: ((op: FileOperation) => FaultDecision) | undefined;
  return {
    fileSystem: createFaultyFileSystem({ before: (op) => plan?.(op) }),
    arm: (next) => {
      plan = next;
    },
  };
}

/** Fails the next `times` operations that match, then lets everything through. */
function failNext(
  times: number,
  match: (op: FileOperation) => boolean,
  decide: (op: FileOperation) => FaultDecision,
) {
  let left = times;
  return (op: FileOperation): FaultDecision => {
    if (left > 0 && match(op)) {
      left--;
      return decide(op);
    }
    return undefined;
  };
}

const isLogWrite = (op: FileOperation): boolean => op.kind === "write" && op.path.endsWith(".log");
const activeFile = (dir: string): string => path.join(dir, "00000000000000000000.log");

async function reopenCopy(dir: string): Promise<PartitionLog> {
  // A copy of the directory of a live log is what a crash would leave.
  const copy = await tempDir();
  await cp(dir, copy, { recursive: true });
  return openPartitionLog({ dir: copy, tailCacheBytes: 0 });
}

describe("partition log: failures", () => {
  it("fails an append on ENOSPC with a StorageError and stays readable and appendable", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 0 });
    await log.append([rec("a"), rec("b")]);
    const sizeBefore = (await stat(activeFile(dir))).size;
    arm(failNext(1, isLogWrite, () => ({ error: errnoError("ENOSPC", "write") })));
    await assert.rejects(log.append([rec("lost")]), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(err.errno, "ENOSPC");
      assert.equal(err.code, Code.Unavailable);
      assert.ok(isRetryable(err));
      return true;
    });
    assert.equal(log.logEndOffset, 2);
    assert.equal((await stat(activeFile(dir))).size, sizeBefore);
    assert.deepEqual(await payloads(log), ["a", "b"]);
    assert.deepEqual(await log.append([rec("c")]), { baseOffset: 2, lastOffset: 2 });
    assert.deepEqual(await payloads(log), ["a", "b", "c"]);
    assert.equal(log.stats().writeErrors, 1);
    await log.close();
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 0 });
    assert.deepEqual(await payloads(reopened), ["a", "b", "c"]);
    await reopened.close();
  });

  it("cuts a half-written batch back off the file", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 0 });
    await log.append([rec("first")]);
    const sizeBefore = (await stat(activeFile(dir))).size;
    arm(
      failNext(1, isLogWrite, (op) => ({
        error: errnoError("ENOSPC", "write"),
        partialBytes: Math.floor((op.length ?? 0) / 2),
      })),
    );
    await assert.rejects(log.append([rec("x".repeat(500)), rec("y".repeat(500))]), StorageError);
    assert.equal((await stat(activeFile(dir))).size, sizeBefore);
    const crashed = await reopenCopy(dir);
    assert.deepEqual(await payloads(crashed), ["first"]);
    await crashed.close();
    await log.append([rec("second")]);
    assert.deepEqual(await payloads(log), ["first", "second"]);
    await log.close();
  });

  it("never resurrects complete frames of a failed write, even when cutting them off failed at first", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 0 });
    await log.append([rec("kept")]);
    const sizeBefore = (await stat(activeFile(dir))).size;
    // The failed batch gets two whole frames onto the disk, and the cut-back fails once.
    let writes = 1;
    let truncates = 1;
    arm((op) => {
      if (isLogWrite(op) && writes-- > 0) {
        return { error: errnoError("EIO", "write"), partialBytes: (op.length ?? 0) - 3 };
      }
      if (op.kind === "truncate" && truncates-- > 0) return { error: errnoError("EIO", "ftruncate") };
      return undefined;
    });
    await assert.rejects(log.append([rec("ghost-1"), rec("ghost-2"), rec("ghost-3")]), StorageError);
    assert.ok((await stat(activeFile(dir))).size > sizeBefore, "the debris is still in the file");
    assert.deepEqual(await payloads(log), ["kept"]);
    // The next append first cuts the debris, then writes.
    await log.append([rec("after-1")]);
    assert.deepEqual(await payloads(log), ["kept", "after-1"]);
    const crashed = await reopenCopy(dir);
    assert.deepEqual(await payloads(crashed), ["kept", "after-1"]);
    await crashed.close();
    await log.close();
  });

  it("fails the next append too while the debris cannot be cut, writing nothing", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 0 });
    await log.append([rec("kept")]);
    arm((op) => {
      if (isLogWrite(op)) return { error: errnoError("EROFS", "write"), partialBytes: 10 };
      if (op.kind === "truncate") return { error: errnoError("EROFS", "ftruncate") };
      return undefined;
    });
    await assert.rejects(log.append([rec("one")]), StorageError);
    await assert.rejects(
      log.append([rec("two")]),
      (err: unknown) => err instanceof StorageError && err.errno === "EROFS",
    );
    arm(undefined);
    await log.append([rec("three")]);
    assert.deepEqual(await payloads(log), ["kept", "three"]);
    await log.close();
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 0 });
    assert.deepEqual(await payloads(reopened), ["kept", "three"]);
    await reopened.close();
  });

  it("rolls back and fails every append covered by a failed fsync", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 1 << 20 });
    await log.append([rec("durable")]);
    arm(
      failNext(
        1,
        (op) => op.kind === "datasync" && op.path.endsWith(".log"),
        () => ({ error: errnoError("EIO", "fdatasync") }),
      ),
    );
    const outcomes = await Promise.allSettled([log.append([rec("u1")]), log.append([rec("u2"), rec("u3")])]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof StorageError);
      assert.match(outcome.reason.message, /fsync/);
    }
    assert.equal(log.logEndOffset, 1);
    assert.equal(log.stats().fsyncErrors, 1);
    assert.deepEqual(await payloads(log), ["durable"]);
    assert.deepEqual(await log.append([rec("after")]), { baseOffset: 1, lastOffset: 1 });
    assert.deepEqual(await payloads(log), ["durable", "after"]);
    await log.close();
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 0 });
    assert.deepEqual(await payloads(reopened), ["durable", "after"]);
    await reopened.close();
  });

  it("rejects a record over maxRecordBytes with RecordTooLargeError and writes nothing of its batch", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, maxRecordBytes: 1000 });
    await log.append([rec("small")]);
    const sizeBefore = (await stat(activeFile(dir))).size;
    const writesBefore = log.stats().writes;
    await assert.rejects(log.append([rec("fine"), rec("z".repeat(2000))]), (err: unknown) => {
      assert.ok(err instanceof RecordTooLargeError);
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.maxBytes, 1000);
      assert.ok(err.sizeBytes > 2000);
      assert.match(err.message, /record 1 /);
      return true;
    });
    assert.equal((await stat(activeFile(dir))).size, sizeBefore);
    assert.equal(log.stats().writes, writesBefore);
    assert.equal(log.logEndOffset, 1);
    // Right at the limit is fine.
    const exact = 1000 - 46;
    await log.append([{ payload: Buffer.alloc(exact) }]);
    assert.equal(log.logEndOffset, 2);
    await log.close();
  });

  it("fails an append whose segment roll fails, then rolls on the next one", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, segmentBytes: 200, tailCacheBytes: 0 });
    await log.append([rec("a".repeat(100))]);
    arm(
      failNext(
        1,
        (op) => op.kind === "open" && op.path.endsWith(".log"),
        () => ({ error: errnoError("EACCES", "open") }),
      ),
    );
    await assert.rejects(
      log.append([rec("b".repeat(100))]),
      (err: unknown) => err instanceof StorageError && err.errno === "EACCES",
    );
    assert.equal(log.segments().length, 1);
    await log.append([rec("c".repeat(100))]);
    assert.equal(log.segments().length, 2);
    assert.deepEqual(await payloads(log), ["a".repeat(100), "c".repeat(100)]);
    await log.close();
    const files = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
    assert.deepEqual(files, ["00000000000000000000.log", "00000000000000000001.log"]);
  });

  it("reports a read I/O error as a StorageError and reads again afterwards", async () => {
    const dir = await tempDir();
    const { fileSystem, arm } = injectable();
    const log = await openPartitionLog({ dir, fileSystem, tailCacheBytes: 0 });
    await log.append([rec("a"), rec("b")]);
    arm(
      failNext(
        1,
        (op) => op.kind === "read",
        () => ({ error: errnoError("EIO", "read") }),
      ),
    );
    await assert.rejects(log.read(0), (err: unknown) => err instanceof StorageError && err.errno === "EIO");
    assert.deepEqual(await payloads(log), ["a", "b"]);
    await log.close();
  });
});
