import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { StorageError } from "../../src/storage/errors.js";
import { createFaultyFileSystem, errnoError } from "../../src/storage/faulty-file-system.js";
import { nodeFileSystem, type StorageFile } from "../../src/storage/file-system.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import {
  EXTERNAL_PAYLOAD_MIN_BYTES,
  encodeFrame,
  frameSize,
  type AppendRecord,
  type StoredRecord,
} from "../../src/storage/record-format.js";
import { writevFully } from "../../src/storage/segment.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-writev-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Distinct, position-dependent bytes, so a misplaced or reordered piece cannot compare equal. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

/** Payloads on both sides of the threshold, with keys and headers, interleaved. */
function mixedBatch(seed: number): AppendRecord[] {
  const sizes = [10, EXTERNAL_PAYLOAD_MIN_BYTES - 1, EXTERNAL_PAYLOAD_MIN_BYTES, 64 << 10, 0, 100 << 10, 3];
  return sizes.map((size, i) => ({
    payload: bytes(size, seed + i),
    key: i % 2 === 0 ? Buffer.from(`key-${seed}-${i}`) : undefined,
    headers: i % 3 === 0 ? [{ key: "h", value: bytes(5, i) }] : undefined,
    producerId: "p",
    messageId: BigInt(seed * 100 + i),
    timestamp: 1_000 + i,
  }));
}

/** The bytes of `records` as contiguous frames, the way every frame was written before gathered writes. */
function contiguousFrames(records: AppendRecord[], firstOffset: number): Buffer {
  const sizes = records.map((r) => frameSize(r) as number);
  const buf = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
  let pos = 0;
  records.forEach((r, i) => {
    pos = encodeFrame(buf, pos, r, firstOffset + i, r.timestamp as number);
  });
  assert.equal(pos, buf.length);
  return buf;
}

async function readAll(log: PartitionLog): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  let next = log.logStartOffset;
  while (next < log.logEndOffset) {
    const batch = await log.read(next, 3, 1 << 24);
    out.push(...batch);
    next = (batch[batch.length - 1] as StoredRecord).offset + 1;
  }
  return out;
}

function assertSame(got: StoredRecord[], want: AppendRecord[]): void {
  assert.equal(got.length, want.length);
  got.forEach((r, i) => {
    const w = want[i] as AppendRecord;
    assert.equal(r.offset, i);
    assert.equal(r.timestamp, w.timestamp);
    assert.equal(r.messageId, w.messageId);
    assert.deepEqual(Buffer.from(r.payload), Buffer.from(w.payload));
    assert.deepEqual(Buffer.from(r.key), Buffer.from(w.key ?? []));
    assert.deepEqual(
      r.headers.map((h) => [h.key, Buffer.from(h.value)]),
      (w.headers ?? []).map((h) => [h.key, Buffer.from(h.value)]),
    );
    assert.equal(r.sizeBytes, frameSize(w));
  });
}

describe("storage: gathered writes of large payloads", () => {
  it("writes the same bytes as contiguous frames, and reads back from the tail cache and from disk", async () => {
    const dir = await tempDir();
    const first = mixedBatch(1);
    const second = mixedBatch(2);
    const log = await openPartitionLog({ dir, fsync: "interval", indexIntervalBytes: 1024 });
    // Two appends in the same tick: one group, one gathered write.
    await Promise.all([log.append(first), log.append(second)]);
    const all = [...first, ...second];
    assertSame(await readAll(log), all); // served by the tail cache
    await log.close();

    const onDisk = await readFile(path.join(dir, "00000000000000000000.log"));
    assert.deepEqual(onDisk, contiguousFrames(all, 0));

    const reopened = await openPartitionLog({ dir, fsync: "interval", tailCacheBytes: 0 });
    assertSame(await readAll(reopened), all); // from the file, CRCs verified
    // Reads that start mid-log go through the sparse index over external-payload frames.
    const fromMiddle = await reopened.read(9, 2, 1 << 24);
    assert.deepEqual(
      fromMiddle.map((r) => r.offset),
      [9, 10],
    );
    assert.deepEqual(
      Buffer.from((fromMiddle[0] as StoredRecord).payload),
      Buffer.from(second[2]?.payload ?? []),
    );
    await reopened.close();
  });

  it("a follower's replicated batch with large payloads keeps the leader's offsets and bytes", async () => {
    const dir = await tempDir();
    const batch = mixedBatch(7).map((r, i) => ({ ...r, offset: 5 + i, timestamp: 2_000 + i }));
    const log = await openPartitionLog({ dir, fsync: "always", initialOffset: 5, tailCacheBytes: 0 });
    await log.appendReplicated(batch);
    const got = await log.read(5, 100, 1 << 24);
    assert.deepEqual(
      got.map((r) => [r.offset, r.timestamp, Buffer.from(r.payload)]),
      batch.map((r) => [r.offset, r.timestamp, Buffer.from(r.payload)]),
    );
    await log.close();
  });

  it("truncating inside a group with external payloads keeps the tail cache consistent", async () => {
    const dir = await tempDir();
    const batch = mixedBatch(3);
    const log = await openPartitionLog({ dir, fsync: "always" });
    await log.append(batch);
    await log.truncateTo(4);
    assertSame(await readAll(log), batch.slice(0, 4));
    const more = mixedBatch(4).slice(2, 4);
    await log.append(more);
    const got = await readAll(log);
    assert.deepEqual(
      got.slice(4).map((r) => Buffer.from(r.payload)),
      more.map((r) => Buffer.from(r.payload)),
    );
    await log.close();
  });

  it("a gathered write failing part-way leaves nothing readable, and the next append lands cleanly", async () => {
    const dir = await tempDir();
    let failures = 0;
    const fileSystem = createFaultyFileSystem({
      before: (op) =>
        op.kind === "write" && op.path.endsWith(".log") && failures++ === 0
          ? { error: errnoError("ENOSPC", "write"), partialBytes: 70_000 }
          : undefined,
    });
    const log = await openPartitionLog({ dir, fsync: "always", fileSystem });
    await assert.rejects(log.append(mixedBatch(5)), StorageError);
    assert.equal(log.logEndOffset, 0);
    const batch = mixedBatch(6);
    await log.append(batch);
    assertSame(await readAll(log), batch);
    await log.close();
    const onDisk = await readFile(path.join(dir, "00000000000000000000.log"));
    assert.deepEqual(onDisk, contiguousFrames(batch, 0));
  });

  it("writevFully finishes a gathered write over short writes", async () => {
    const dir = await tempDir();
    const real = await nodeFileSystem.open(path.join(dir, "short"), "create");
    let calls = 0;
    // At most 1000 bytes per call, cutting pieces in the middle.
    const stingy: StorageFile = {
      path: real.path,
      read: (buffer, offset, length, position) => real.read(buffer, offset, length, position),
      write: (buffer, offset, length, position) => real.write(buffer, offset, length, position),
      truncate: (length) => real.truncate(length),
      datasync: () => real.datasync(),
      size: () => real.size(),
      close: () => real.close(),
      writev: async (buffers, position) => {
        calls++;
        const head: Uint8Array[] = [];
        let left = 1000;
        for (const b of buffers) {
          if (left <= 0) break;
          head.push(b.subarray(0, Math.min(left, b.length)));
          left -= b.length;
        }
        return real.writev(head, position);
      },
    };
    const pieces = [bytes(10, 1), bytes(0, 2), bytes(2500, 3), bytes(999, 4), bytes(1, 5)];
    await writevFully(stingy, pieces, 7);
    await real.close();
    const written = await readFile(path.join(dir, "short"));
    assert.deepEqual(written.subarray(7), Buffer.concat(pieces));
    assert.equal(calls, 4);
  });
});
