import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";

import { InvalidArgumentError } from "../../src/errors.js";
import { CorruptRecordError } from "../../src/storage/errors.js";
import {
  createFaultyFileSystem,
  errnoError,
  type FileOperation,
} from "../../src/storage/faulty-file-system.js";
import { openPartitionLog, type PartitionLog } from "../../src/storage/partition-log.js";
import type { ReplicatedRecord, StoredRecord } from "../../src/storage/record-format.js";
import type { SegmentDamage } from "../../src/storage/segment-verify.js";
import { temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-segment-repair-");
const noWait = { bytesPerSecond: 1 << 30, sleep: async () => undefined };

const RECORDS = 60;
const payload = (i: number) => Buffer.from(`record ${i} `.repeat(6));

/** A closed log of 60 records over several 1 KiB segments (indexes saved: the open trusts them). */
async function writtenLog(dir: string): Promise<void> {
  const log = await openPartitionLog({ dir, segmentBytes: 1024, tailCacheBytes: 0 });
  for (let i = 0; i < RECORDS; i++) {
    await log.append([
      {
        payload: payload(i),
        key: Buffer.from(`k${i % 3}`),
        producerId: "p",
        messageId: BigInt(i + 1),
        timestamp: 1_000 + i,
      },
    ]);
  }
  await log.close();
}

async function readAll(log: PartitionLog): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  while (out.length < log.logEndOffset) out.push(...(await log.read(out.length, 1000, 1 << 24)));
  return out;
}

/** Flips one bit `into` bytes into the second segment; returns that segment's base offset. */
async function flipInSecondSegment(dir: string, into: number): Promise<number> {
  const name = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort()[1] as string;
  const file = path.join(dir, name);
  const bytes = await readFile(file);
  bytes[into] = (bytes[into] as number) ^ 0x10;
  await writeFile(file, bytes);
  return Number(name.slice(0, 20));
}

/** What an in-sync replica would send back for the damaged range: its own copy of those records. */
async function fromTwin(twinDir: string, damage: SegmentDamage): Promise<ReplicatedRecord[]> {
  const twin = await openPartitionLog({ dir: twinDir });
  try {
    return await twin.read(damage.fromOffset, damage.toOffset - damage.fromOffset, 1 << 24);
  } finally {
    await twin.close();
  }
}

async function damagedLog(fileSystem?: ReturnType<typeof createFaultyFileSystem>) {
  const dir = await tempDir();
  const twin = await tempDir();
  await writtenLog(dir);
  await writtenLog(twin);
  const base = await flipInSecondSegment(dir, 150);
  const log = await openPartitionLog({ dir, tailCacheBytes: 0, ...(fileSystem ? { fileSystem } : {}) });
  return { dir, twin, base, log };
}

describe("sealed segments: verification and repair from a replica", () => {
  it("finds a bit flip that the trusted index hid, and repairs exactly the damaged range", async () => {
    const { dir, twin, base, log } = await damagedLog();
    // The open trusted the saved index: the damage shows only when read.
    await assert.rejects(readAll(log), CorruptRecordError);
    const damage = await log.verifySegment(base, noWait);
    assert.ok(typeof damage === "object", `expected damage, got ${String(damage)}`);
    assert.equal(damage.baseOffset, base);
    assert.ok(damage.fromOffset > base && damage.fromOffset < damage.toOffset);
    const next = log.segments().find((s) => s.baseOffset > base) as { baseOffset: number };
    assert.equal(damage.toOffset, next.baseOffset);
    // The other sealed segments are clean.
    for (const s of log.segments().slice(0, -1)) {
      if (s.baseOffset !== base) assert.equal(await log.verifySegment(s.baseOffset, noWait), "clean");
    }

    await log.repairSegment(damage, await fromTwin(twin, damage));
    assert.equal(await log.verifySegment(base, noWait), "clean");
    const records = await readAll(log);
    assert.deepEqual(
      records.map((r) => [r.offset, Buffer.from(r.payload).toString(), r.producerId, r.messageId]),
      Array.from({ length: RECORDS }, (_, i) => [i, payload(i).toString(), "p", BigInt(i + 1)]),
    );
    await log.close();
    // The repaired file is what the twin holds, byte for byte, and survives a reopen.
    const name = `${String(base).padStart(20, "0")}.log`;
    assert.deepEqual(await readFile(path.join(dir, name)), await readFile(path.join(twin, name)));
    const reopened = await openPartitionLog({ dir });
    assert.equal((await readAll(reopened)).length, RECORDS);
    await reopened.close();
  });

  it("paces the scan: about size / bytesPerSecond of waiting", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, segmentBytes: 1 << 20, tailCacheBytes: 0 });
    // The sixth record rolls: the first segment (five of them, ~1 MB) is sealed.
    for (let i = 0; i < 8; i++) await log.append([{ payload: Buffer.alloc(200_000, i) }]);
    const sealed = log.segments()[0] as { baseOffset: number; sizeBytes: number };
    let waited = 0;
    const verdict = await log.verifySegment(sealed.baseOffset, {
      bytesPerSecond: 1 << 20,
      sleep: async (ms) => {
        waited += ms;
      },
    });
    assert.equal(verdict, "clean");
    const expected = (sealed.sizeBytes / (1 << 20)) * 1000;
    // Every chunk but the last is paid for.
    assert.ok(
      waited >= expected * 0.6 && waited <= expected * 1.1,
      `waited ${waited} ms, expected ~${expected}`,
    );
    assert.equal(await log.verifySegment(log.segments()[1]?.baseOffset as number, noWait), "gone");
    await log.close();
  });

  it("refuses records that do not cover the damaged range exactly, and changes nothing", async () => {
    const { twin, base, log } = await damagedLog();
    const damage = (await log.verifySegment(base, noWait)) as SegmentDamage;
    const records = await fromTwin(twin, damage);
    await assert.rejects(log.repairSegment(damage, records.slice(1)), InvalidArgumentError);
    await assert.rejects(log.repairSegment(damage, records.slice(0, -1)), InvalidArgumentError);
    assert.deepEqual(await log.verifySegment(base, noWait), damage);
    await log.close();
  });

  it("a repair that fails (ENOSPC mid-write, EIO at the rename) leaves the old segment and no debris", async () => {
    let fault: ((op: FileOperation) => Error | undefined) | undefined;
    const fileSystem = createFaultyFileSystem({
      before: (op) => {
        const error = fault?.(op);
        return error ? { error, partialBytes: 100 } : undefined;
      },
    });
    const { dir, twin, base, log } = await damagedLog(fileSystem);
    const damage = (await log.verifySegment(base, noWait)) as SegmentDamage;
    const records = await fromTwin(twin, damage);

    fault = (op) =>
      op.kind === "write" && op.path.endsWith(".repair") ? errnoError("ENOSPC", "write") : undefined;
    await assert.rejects(log.repairSegment(damage, records), /ENOSPC/);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.endsWith(".repair")),
      [],
    );
    assert.deepEqual(await log.verifySegment(base, noWait), damage);

    fault = (op) =>
      op.kind === "rename" && op.path.endsWith(".repair") ? errnoError("EIO", "rename") : undefined;
    await assert.rejects(log.repairSegment(damage, records), /EIO/);
    assert.deepEqual(await log.verifySegment(base, noWait), damage);
    // The records before the damage are still served.
    assert.equal((await log.read(base, 1000, 1 << 24)).length, damage.fromOffset - base);
    await log.close();

    // A reopen clears the interrupted replacement; a repair then succeeds.
    fault = undefined;
    const reopened = await openPartitionLog({ dir, tailCacheBytes: 0, fileSystem });
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.endsWith(".repair")),
      [],
    );
    const again = (await reopened.verifySegment(base, noWait)) as SegmentDamage;
    await reopened.repairSegment(again, await fromTwin(twin, again));
    assert.equal((await readAll(reopened)).length, RECORDS);
    await reopened.close();
  });
});
