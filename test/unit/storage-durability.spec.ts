import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { silentLogger } from "../../src/observability/logger.js";
import { DurabilityLoop, type DurabilityCaller } from "../../src/storage/durability.js";
import type { Segment } from "../../src/storage/segment.js";
import { VolumeSync, VolumeSyncUnavailableError } from "../../src/storage/volume-sync.js";
import type { AppendResult } from "../../src/storage/write-group.js";
import { outcomeNow, waitFor } from "../helpers/wait.js";

/**
 * A segment whose fsyncs the test completes by hand, so the loop's order of events is observable: which
 * writes an fsync covers, how many run, what a failure does. Only what the loop touches is there.
 */
class HandSyncedSegment {
  size = 0;
  nextOffset = 0;
  readonly syncs: { resolve: () => void; reject: (err: Error) => void }[] = [];
  users = 0;
  readonly file = {
    datasync: () =>
      new Promise<void>((resolve, reject) => {
        this.syncs.push({ resolve, reject });
      }),
  };
  acquire(): void {
    this.users++;
  }
  release(): void {
    this.users--;
  }
  /** Completes the oldest fsync still running. */
  finishSync(err?: Error): void {
    const sync = this.syncs.shift();
    assert.ok(sync, "an fsync is running");
    if (err) sync.reject(err);
    else sync.resolve();
  }
}

function loopOver(fsync: "always" | "interval", fsyncIntervalMs = 60_000, volumeSync?: VolumeSync) {
  const segment = new HandSyncedSegment();
  const failures: unknown[] = [];
  const host = {
    active: segment as unknown as Segment,
    generation: 0,
    closing: false,
    syncFailed: (err: unknown) => failures.push(err),
  };
  const counters = { fsyncs: 0, fsyncSeconds: 0, fsyncErrors: 0 };
  const loop = new DurabilityLoop(
    { fsync, fsyncIntervalMs, ...(volumeSync ? { volumeSync } : {}) },
    counters,
    silentLogger(),
    host,
  );
  let offset = 0;
  /** Writes `count` records through the loop, as the log does after its write returned. */
  const write = (count: number): Promise<AppendResult> => {
    const result = { baseOffset: offset, lastOffset: offset + count - 1 };
    offset += count;
    segment.nextOffset = offset;
    segment.size += count * 100;
    return new Promise<AppendResult>((resolve, reject) => {
      const caller: DurabilityCaller = { resolve, reject };
      loop.written([caller], [result]);
    });
  };
  return { loop, segment, host, counters, failures, write };
}

describe("DurabilityLoop", () => {
  it("fsync always: a write is answered only once an fsync covers it, and writes landing during an fsync share the next one", async () => {
    const { loop, segment, counters, write } = loopOver("always");
    const first = write(2);
    assert.equal(segment.syncs.length, 1, "the first write starts an fsync");
    assert.equal(await outcomeNow(first), "pending");

    // Two writes land while that fsync runs: neither starts an fsync of its own.
    const second = write(1);
    const third = write(3);
    assert.equal(segment.syncs.length, 1, "one fsync at a time");
    assert.ok(loop.pending);

    segment.finishSync();
    assert.deepEqual(await first, { baseOffset: 0, lastOffset: 1 });
    assert.equal(await outcomeNow(second), "pending", "the first fsync started before the second write");
    await waitFor(() => segment.syncs.length === 1, { what: "the group commit of the later writes" });

    segment.finishSync();
    assert.deepEqual(await second, { baseOffset: 2, lastOffset: 2 });
    assert.deepEqual(await third, { baseOffset: 3, lastOffset: 5 });
    assert.equal(counters.fsyncs, 2, "three writes, two fsyncs");
    assert.equal(loop.pending, false);
    assert.equal(loop.durable.offset, 6, "the durable point follows the covered writes");
    await loop.settle();
    assert.equal(segment.users, 0, "every fsync released its segment");
  });

  it("fsync interval: a write is answered at once and one timer-driven fsync covers what was written", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { loop, segment, counters, write } = loopOver("interval", 1_000);
    assert.deepEqual(await write(1), { baseOffset: 0, lastOffset: 0 });
    assert.deepEqual(await write(2), { baseOffset: 1, lastOffset: 2 });
    assert.equal(segment.syncs.length, 0, "nothing synced before the interval");
    assert.ok(loop.pending);

    t.mock.timers.tick(1_000);
    assert.equal(segment.syncs.length, 1, "one fsync for both writes");
    segment.finishSync();
    await waitFor(() => !loop.pending, { what: "the interval fsync to cover both writes" });
    assert.equal(counters.fsyncs, 1);
    assert.equal(loop.durable.offset, 3);

    t.mock.timers.tick(10_000);
    assert.equal(segment.syncs.length, 0, "an idle log arms no timer");
    await loop.settle();
  });

  it("reports how long the oldest write not on disk has waited, from its write until an fsync covers it", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { loop, segment, write } = loopOver("interval", 1_000);
    assert.equal(loop.unsyncedAgeMs(), 0, "nothing written");
    const beforeFirst = performance.now();
    await write(1);
    const afterFirst = performance.now();
    const age = loop.unsyncedAgeMs(afterFirst + 5_000);
    assert.ok(age >= 5_000 && age <= 5_000 + (afterFirst - beforeFirst), `${age} ms: from the first write`);
    await write(1);
    assert.ok(loop.unsyncedAgeMs(afterFirst + 5_000) >= 5_000, "a later write does not reset the age");

    // The interval fsync starts; a write lands while it runs and is left for the next one.
    const beforeSync = performance.now();
    t.mock.timers.tick(1_000);
    assert.equal(segment.syncs.length, 1);
    await write(1);
    segment.finishSync();
    await waitFor(() => loop.durable.offset === 2, { what: "the fsync of the first two writes" });
    assert.ok(loop.pending, "the third write waits for the next fsync");
    const now = performance.now();
    const left = loop.unsyncedAgeMs(now);
    assert.ok(left > 0 && left <= now - beforeSync, `${left} ms: counted from that fsync's start at most`);

    t.mock.timers.tick(1_000);
    segment.finishSync();
    await waitFor(() => !loop.pending, { what: "the next interval fsync" });
    assert.equal(loop.unsyncedAgeMs(performance.now() + 60_000), 0, "everything on disk: 0");
    await loop.settle();
  });

  it("flush waits for everything written so far and is free when nothing is pending", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { loop, segment, write } = loopOver("interval", 60_000);
    await loop.flush(0);
    assert.equal(segment.syncs.length, 0, "nothing written: no fsync");
    await write(4);
    const flushed = loop.flush(4);
    assert.equal(await outcomeNow(flushed), "pending");
    segment.finishSync();
    await flushed;
    assert.equal(loop.pending, false);
    await loop.settle();
  });

  it("a failed fsync is counted, handed to the log, and answers no waiter as durable", async () => {
    const { loop, segment, counters, failures, write } = loopOver("always");
    const waiting = write(1);
    const disk = new Error("EIO: the disk went away");
    segment.finishSync(disk);
    await waitFor(() => failures.length === 1, { what: "the log to hear of the failure" });
    assert.equal(failures[0], disk);
    assert.equal(counters.fsyncErrors, 1);
    assert.equal(counters.fsyncs, 0);
    assert.equal(await outcomeNow(waiting), "pending", "not answered as durable");

    // The log rolls back and rejects what was not durable.
    loop.rejectAll(disk);
    assert.equal(await outcomeNow(waiting), disk);
    assert.equal(segment.users, 0);
  });

  it("a cut rejects the waiters of records at or after it and keeps the earlier ones", async () => {
    const { loop, segment, write } = loopOver("always");
    const kept = write(2); // offsets 0..1
    const cut = write(2); // offsets 2..3
    loop.rejectWaitersFrom(2);
    const err = await outcomeNow(cut);
    assert.ok(
      err instanceof Error && /records 2\.\.3 were truncated before they became durable/.test(err.message),
      String(err),
    );
    segment.finishSync();
    assert.deepEqual(await kept, { baseOffset: 0, lastOffset: 1 });
    // The second write asked for an fsync of its own (it ran while the first did): let it end.
    await waitFor(() => segment.syncs.length === 1, { what: "the second fsync" });
    segment.finishSync();
    await loop.settle();
  });

  it("an fsync that started before a cut moves nothing: the generation changed under it", async () => {
    const { loop, segment, host, write } = loopOver("always");
    const before = loop.durable.offset;
    const waiting = write(3);
    host.generation++; // a cut while the fsync runs
    segment.finishSync();
    await loop.settle();
    assert.equal(loop.durable.offset, before, "the durable point did not move");
    assert.equal(await outcomeNow(waiting), "pending", "not answered from a stale fsync");
    loop.rejectAll(new Error("closed"));
  });
});

/** A volume sync whose syncs of the filesystem the test completes by hand. */
function handSyncedVolume(intervalMs: number) {
  const syncs: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  const volume = new VolumeSync({
    sync: () => new Promise<void>((resolve, reject) => void syncs.push({ resolve, reject })),
    intervalMs,
    logger: silentLogger(),
  });
  return { volume, syncs };
}

describe("DurabilityLoop with a broker's volume sync (fsync interval)", () => {
  it("one sync of the volume per interval covers every log written in it, with no fsync of any file", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { volume, syncs } = handSyncedVolume(1_000);
    const logs = [1, 2, 3].map(() => loopOver("interval", 1_000, volume));
    for (const log of logs) assert.deepEqual(await log.write(2), { baseOffset: 0, lastOffset: 1 });
    assert.equal(syncs.length, 0, "nothing synced before the interval");

    t.mock.timers.tick(1_000);
    assert.equal(syncs.length, 1, "one volume sync for the three logs");
    // A write landing while the sync runs is not covered by it: it waits for the next one.
    await logs[0]?.write(1);
    syncs.shift()?.resolve();
    await waitFor(() => !logs[1]?.loop.pending && !logs[2]?.loop.pending, { what: "the sync to cover them" });
    assert.ok(logs[0]?.loop.pending, "the write made during the sync is not on disk yet");
    assert.equal(logs[0]?.loop.durable.offset, 2);
    for (const log of logs) assert.equal(log.segment.syncs.length, 0, "no file was fsynced");

    t.mock.timers.tick(1_000);
    assert.equal(syncs.length, 1, "the next interval syncs again for the later write");
    syncs.shift()?.resolve();
    await waitFor(() => !logs[0]?.loop.pending, { what: "the second sync" });
    assert.equal(logs[0]?.loop.durable.offset, 3);

    t.mock.timers.tick(10_000);
    assert.equal(syncs.length, 0, "idle logs: no sync, no timer");
    for (const log of logs) await log.loop.settle();
    await volume.close();
  });

  it("a failed volume sync hands its error to every log it covered, which rolls back", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { volume, syncs } = handSyncedVolume(100);
    const a = loopOver("interval", 100, volume);
    const b = loopOver("interval", 100, volume);
    await a.write(1);
    await b.write(1);
    t.mock.timers.tick(100);
    const ioError = new Error("EIO: i/o error, syncfs");
    syncs.shift()?.reject(ioError);
    await waitFor(() => a.failures.length === 1 && b.failures.length === 1, { what: "both logs told" });
    assert.equal(a.failures[0], ioError);
    assert.equal(a.counters.fsyncErrors, 1);
    assert.ok(a.loop.pending && b.loop.pending, "nothing counted as durable");
    await volume.close();
  });

  it("a volume that cannot be synced any more: each log fsyncs its own file at once, and on its own timer after", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { volume, syncs } = handSyncedVolume(100);
    const log = loopOver("interval", 100, volume);
    await log.write(1);
    t.mock.timers.tick(100);
    syncs.shift()?.reject(new VolumeSyncUnavailableError("the helper exited (SIGKILL)"));
    await waitFor(() => log.segment.syncs.length === 1, { what: "the log's own fsync" });
    assert.equal(volume.available, false);
    assert.equal(log.failures.length, 0, "not an I/O error: nothing rolled back");
    log.segment.finishSync();
    await waitFor(() => !log.loop.pending, { what: "the file fsync to cover the write" });

    await log.write(1);
    t.mock.timers.tick(100);
    assert.equal(log.segment.syncs.length, 1, "its own interval timer from now on");
    assert.equal(syncs.length, 0, "the volume is not tried again");
    log.segment.finishSync();
    await log.loop.settle();
    await volume.close();
  });

  it("a volume sync that started before a cut moves nothing; a closed log leaves the sync", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { volume, syncs } = handSyncedVolume(100);
    const cut = loopOver("interval", 100, volume);
    const closing = loopOver("interval", 100, volume);
    await cut.write(3);
    await closing.write(1);
    await closing.loop.settle(); // withdrawn before the interval ends
    t.mock.timers.tick(100);
    cut.host.generation++;
    syncs.shift()?.resolve();
    await volume.close();
    assert.equal(cut.loop.durable.offset, 0, "the durable point did not move");
    assert.ok(cut.loop.pending);
    assert.equal(closing.loop.durable.offset, 0, "the closed log was not part of the sync");
  });
});
