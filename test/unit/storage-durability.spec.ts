import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { silentLogger } from "../../src/observability/logger.js";
import { DurabilityLoop, type DurabilityCaller } from "../../src/storage/durability.js";
import type { Segment } from "../../src/storage/segment.js";
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

function loopOver(fsync: "always" | "interval", fsyncIntervalMs = 60_000) {
  const segment = new HandSyncedSegment();
  const failures: unknown[] = [];
  const host = {
    active: segment as unknown as Segment,
    generation: 0,
    closing: false,
    syncFailed: (err: unknown) => failures.push(err),
  };
  const counters = { fsyncs: 0, fsyncSeconds: 0, fsyncErrors: 0 };
  const loop = new DurabilityLoop({ fsync, fsyncIntervalMs }, counters, silentLogger(), host);
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
