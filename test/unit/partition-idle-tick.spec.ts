import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotEnoughReplicasError } from "../../src/broker/errors.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const LAG_MS = 1_000;
const tempDir = temporaryDirs("goulette-idle-tick-");

/** b1 leads, b2 follows and is in sync at offset 0; a hand-driven clock. */
async function idleLeader(replicationTimeoutMs: number) {
  const clock = { now: 1_000_000 };
  const p = await openTestPartition(await tempDir(), {
    replicaLagMaxMs: LAG_MS,
    replicationTimeoutMs,
    now: () => clock.now,
  });
  const { generation, stream } = await leadWithFollowerB2(p);
  const fetch = (offset: number) => p.onFetch("b2", stream, offset, undefined);
  fetch(0);
  assert.deepEqual(p.inSyncReplicas(), ["b1", "b2"]);
  return { p, clock, generation, fetch };
}

/**
 * An idle leader's tick does nothing until something can be due; these check that skipping never delays
 * what the tick must do: an in-sync follower that stops fetching leaves at its lag bound, and a waiter
 * queued after the tick looked ahead still fails at its own deadline.
 */
describe("Partition: the idle leader's tick", () => {
  it("keeps a refreshed follower in sync and drops a silent one exactly at its lag bound", async () => {
    const { p, clock, fetch } = await idleLeader(60_000);
    const start = clock.now;
    p.tick(); // looks ahead: nothing due before start + LAG_MS
    clock.now = start + LAG_MS / 2;
    p.tick();
    fetch(0); // the session's idle refresh: same position, only the caught-up time moves
    clock.now = start + LAG_MS + 1; // past the first bound, within the refreshed one
    p.tick();
    assert.deepEqual(p.inSyncReplicas(), ["b1", "b2"], "refreshed: still in sync");
    clock.now = start + LAG_MS / 2 + LAG_MS; // the refreshed bound itself
    p.tick();
    assert.deepEqual(p.inSyncReplicas(), ["b1", "b2"]);
    clock.now += 1;
    p.tick();
    assert.deepEqual(p.inSyncReplicas(), ["b1"], "silent for longer than the lag bound: out");
  });

  it("fails an acks=all waiter queued after the tick looked ahead, at the waiter's own deadline", async () => {
    // A replication timeout shorter than the lag bound: the waiter is due before any follower is.
    const { p, clock, generation } = await idleLeader(LAG_MS / 4);
    p.tick();
    const result = await p.log.append([{ payload: new Uint8Array([1]) }]);
    p.onLocalAppend(result.lastOffset + 1);
    const waiting = p.waitForHighWatermark(result.lastOffset + 1, generation);
    const outcome = waiting.then(
      () => "acknowledged",
      (err: unknown) => err,
    );
    clock.now += LAG_MS / 4 + 1;
    p.tick();
    assert.ok((await outcome) instanceof NotEnoughReplicasError, "failed at its deadline");
    assert.deepEqual(p.inSyncReplicas(), ["b1", "b2"], "the follower is not due yet");
  });

  it("lets an idle refresh leave the high watermark alone, and a real fetch still advance it", async () => {
    const { p, fetch } = await idleLeader(60_000);
    const result = await p.log.append([{ payload: new Uint8Array([1]) }, { payload: new Uint8Array([2]) }]);
    p.onLocalAppend(result.lastOffset + 1);
    assert.equal(p.highWatermark, 0, "b2 has not fetched the new records");
    fetch(0); // behind the log end: the full path, nothing to advance
    assert.equal(p.highWatermark, 0);
    fetch(2);
    assert.equal(p.highWatermark, 2);
    fetch(2); // the refresh at the same position
    assert.equal(p.highWatermark, 2);
  });
});
