import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { after, describe, it } from "node:test";

import { createFaultyFileSystem } from "../../src/storage/faulty-file-system.js";
import { openPartitionLog, type AppendResult } from "../../src/storage/partition-log.js";
import { waitFor } from "../helpers/wait.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-commit-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const payload = (i: number): Buffer => Buffer.from(`message ${i}`);

/** A file system whose data fsyncs can be held until the test lets them go. */
function gatedFsyncs(): {
  fileSystem: ReturnType<typeof createFaultyFileSystem>;
  entered: () => number;
  hold: (on: boolean) => void;
  releaseOne: () => void;
} {
  let entered = 0;
  let holding = false;
  const held: Array<() => void> = [];
  const fileSystem = createFaultyFileSystem({
    before: async (op) => {
      if (op.kind !== "datasync" || !op.path.endsWith(".log")) return undefined;
      entered++;
      if (holding) await new Promise<void>((resolve) => held.push(resolve));
      return undefined;
    },
  });
  return {
    fileSystem,
    entered: () => entered,
    hold: (on) => {
      holding = on;
    },
    releaseOne: () => held.shift()?.(),
  };
}

/** Lets pending I/O callbacks and promise chains run a few times. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await nextTurn();
}

describe("partition log: group commit", () => {
  it("acknowledges 64 concurrent appenders with far fewer than one fsync each", async () => {
    const dir = await tempDir();
    const log = await openPartitionLog({ dir, fsync: "always" });
    const appenders = Array.from({ length: 64 }, async (_, a) => {
      const offsets: number[] = [];
      for (let round = 0; round < 5; round++) {
        const { baseOffset } = await log.append([{ payload: payload(a * 100 + round) }]);
        offsets.push(baseOffset);
      }
      return offsets;
    });
    const offsets = (await Promise.all(appenders)).flat().sort((x, y) => x - y);
    assert.deepEqual(
      offsets,
      Array.from({ length: 320 }, (_, i) => i),
    );
    const stats = log.stats();
    assert.equal(stats.appends, 320);
    assert.ok(stats.fsyncs <= 32, `320 appends by 64 appenders took ${stats.fsyncs} fsyncs`);
    assert.ok(stats.writes < 320, `320 appends took ${stats.writes} writes`);
    assert.equal(log.durableOffset, 320);
    await log.close();
  });

  it("does not acknowledge before the fsync, and appends arriving during one share the next single fsync", async () => {
    const dir = await tempDir();
    const gate = gatedFsyncs();
    const log = await openPartitionLog({ dir, fsync: "always", fileSystem: gate.fileSystem });
    gate.hold(true);
    const resolved: AppendResult[] = [];
    const first = log.append([{ payload: payload(0) }]).then((r) => resolved.push(r));
    await waitFor(() => gate.entered() === 1, { what: "the first fsync to start" });
    await settle();
    assert.equal(resolved.length, 0, "acknowledged before its fsync completed");
    assert.equal(log.logEndOffset, 1, "the record is written while its fsync runs");

    // Ten appends while the first fsync is in flight: all written, none acknowledged.
    const rest = Array.from({ length: 10 }, (_, i) =>
      log.append([{ payload: payload(i + 1) }]).then((r) => resolved.push(r)),
    );
    await waitFor(() => log.logEndOffset === 11, { what: "the ten appends to be written" });
    await settle();
    assert.equal(resolved.length, 0);
    assert.equal(gate.entered(), 1, "no second fsync may start while one runs");

    gate.releaseOne();
    await first;
    await waitFor(() => gate.entered() === 2, { what: "the second fsync to start" });
    await settle();
    assert.equal(resolved.length, 1, "only the first append is covered by the first fsync");
    assert.deepEqual(resolved[0], { baseOffset: 0, lastOffset: 0 });

    gate.hold(false);
    gate.releaseOne();
    await Promise.all(rest);
    assert.equal(resolved.length, 11);
    assert.equal(gate.entered(), 2, "the ten appends shared one fsync");
    assert.equal(log.stats().fsyncs, 2);
    assert.deepEqual(
      resolved
        .slice(1)
        .map((r) => r.baseOffset)
        .sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    await log.close();
  });

  it("in interval mode acknowledges on write and fsyncs in the background", async () => {
    const dir = await tempDir();
    const gate = gatedFsyncs();
    const log = await openPartitionLog({
      dir,
      fsync: "interval",
      fsyncIntervalMs: 20,
      fileSystem: gate.fileSystem,
    });
    gate.hold(true);
    // Resolves although every fsync is being held.
    assert.deepEqual(await log.append([{ payload: payload(1) }]), { baseOffset: 0, lastOffset: 0 });
    assert.equal(log.durableOffset, 0);
    await waitFor(() => gate.entered() >= 1, { what: "the background fsync" });
    gate.hold(false);
    gate.releaseOne();
    await waitFor(() => log.durableOffset === 1, { what: "the background fsync to complete" });

    await log.append([{ payload: payload(2) }, { payload: payload(3) }]);
    await log.flush();
    assert.equal(log.durableOffset, 3);
    await log.close();
  });
});
