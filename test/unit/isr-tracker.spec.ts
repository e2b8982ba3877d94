import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { LostContactError, NotEnoughReplicasError } from "../../src/broker/errors.js";
import { InSyncReplicaTracker } from "../../src/broker/isr-tracker.js";
import { silentLogger } from "../../src/observability/logger.js";
import { outcomeNow } from "../helpers/wait.js";

const LAG_MS = 1_000;
const TIMEOUT_MS = 5_000;

/** A tracker for t#0 led by b1, with b2 and b3 following from time 0, its fence open. */
function leader(options: { minInsyncReplicas?: number; followers?: string[] } = {}) {
  const fence = { open: true };
  let hwMoves = 0;
  const isr = new InSyncReplicaTracker({
    topic: "t",
    partition: 0,
    brokerId: "b1",
    replicaLagMaxMs: LAG_MS,
    replicationTimeoutMs: TIMEOUT_MS,
    ...(options.minInsyncReplicas !== undefined ? { minInsyncReplicas: options.minInsyncReplicas } : {}),
    writable: () => fence.open,
    onHighWatermark: () => hwMoves++,
    logger: silentLogger(),
  });
  isr.beginLeadership(options.followers ?? ["b2", "b3"], 0);
  const streams = new Map((options.followers ?? ["b2", "b3"]).map((id) => [id, isr.openStream(id)]));
  /** `id` fetches from `offset` at `now`, the leader's log (all shippable) ending at `end`. */
  const fetch = (id: string, offset: number, now: number, end = offset) =>
    isr.onFetch(id, streams.get(id) as number, offset, undefined, end, now);
  return { isr, fence, fetch, streams, hwMoves: () => hwMoves };
}

describe("in-sync replica tracker", () => {
  it("computes the high watermark as the smallest log end over the in-sync replicas", () => {
    const { isr, fetch, hwMoves } = leader();
    isr.leaderReady(0);
    isr.localAppend(10);
    assert.equal(isr.highWatermark, 0, "followers trusted in sync have not fetched yet");
    fetch("b2", 10, 1);
    assert.equal(isr.highWatermark, 0, "b3 still holds it back");
    fetch("b3", 7, 2, 10);
    assert.equal(isr.highWatermark, 7);
    fetch("b3", 10, 3);
    assert.equal(isr.highWatermark, 10);
    assert.equal(hwMoves(), 2);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2", "b3"]);
  });

  it("drops a follower that lags past the bound, and takes it back once caught up", () => {
    const { isr, fetch } = leader();
    isr.leaderReady(0);
    isr.localAppend(10);
    fetch("b2", 10, 100);
    fetch("b3", 4, 100, 10);
    isr.tick(LAG_MS, 10);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2", "b3"], "within the bound");
    isr.tick(LAG_MS + 1, 10);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2"]);
    assert.equal(isr.highWatermark, 10, "b3 no longer holds it back");
    assert.deepEqual(isr.stats(10), { inSync: 2, replicationLag: 6 });
    fetch("b3", 10, LAG_MS + 2);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2", "b3"]);
  });

  it("answers acks=all waiters when the high watermark passes them, and times them out", async () => {
    const { isr, fetch } = leader({ followers: ["b2"] });
    isr.leaderReady(0);
    isr.localAppend(5);
    const early = isr.waitForHighWatermark(3, 0);
    const late = isr.waitForHighWatermark(5, 0);
    fetch("b2", 3, 10, 5);
    assert.equal(await outcomeNow(early), "resolved");
    assert.equal(await outcomeNow(late), "pending");
    fetch("b2", 3, TIMEOUT_MS, 3); // caught up with what it may copy: it stays in sync
    isr.tick(TIMEOUT_MS + 1, 5);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2"]);
    const err = await outcomeNow(late);
    assert.ok(err instanceof NotEnoughReplicasError);
    assert.match(err.message, /records up to offset 4 of t#0 did not reach every in-sync replica in time/);
  });

  it("applies --min-insync-replicas when asked and when the in-sync set shrinks under waiters", async () => {
    const { isr, fetch } = leader({ minInsyncReplicas: 2, followers: ["b2"] });
    isr.leaderReady(0);
    isr.localAppend(5);
    isr.requireMinInSync();
    const waiting = isr.waitForHighWatermark(5, 0);
    isr.tick(LAG_MS + 1, 5);
    const err = await outcomeNow(waiting);
    assert.ok(err instanceof NotEnoughReplicasError);
    assert.equal(
      err.message,
      "t#0 has 1 in-sync replica (leader included); acks=all requires 2 (--min-insync-replicas)",
    );
    assert.throws(() => isr.requireMinInSync(), NotEnoughReplicasError);
    fetch("b2", 5, LAG_MS + 2);
    isr.requireMinInSync();
  });

  it("waits for every in-sync follower to store an offset version", async () => {
    const { isr, streams } = leader();
    isr.leaderReady(0);
    const stored = isr.waitForOffsets(3, 0);
    isr.onFetch("b2", streams.get("b2") as number, 0, 3, 0, 1);
    assert.equal(await outcomeNow(stored), "pending");
    isr.onFetch("b3", streams.get("b3") as number, 0, 3, 0, 2);
    assert.equal(await outcomeNow(stored), "resolved");
    await isr.waitForOffsets(3, 3);
  });

  it("waits for every in-sync follower to report a log start past a deletion, or for it to leave the set", async () => {
    const { isr, streams } = leader();
    isr.leaderReady(0);
    isr.localAppend(10);
    const report = (id: string, logStart: number | undefined, now: number) =>
      isr.onFetch(id, streams.get(id) as number, 10, undefined, 10, now, logStart);
    report("b2", 0, 1);
    report("b3", 0, 1);
    const deleted = isr.waitForLogStart(6, 2);
    report("b2", 6, 3);
    report("b3", undefined, 3); // a fetch that does not report (an idle refresh, an older broker)
    assert.equal(await outcomeNow(deleted), "pending", "b3 has not confirmed");
    report("b3", 4, 4);
    assert.equal(await outcomeNow(deleted), "pending", "b3 deleted less");
    report("b3", 6, 5);
    assert.equal(await outcomeNow(deleted), "resolved");
    await isr.waitForLogStart(6, 6); // already everywhere

    // A follower that stops confirming holds the wait only while it is in sync.
    const later = isr.waitForLogStart(8, 10);
    report("b2", 8, 11);
    assert.equal(await outcomeNow(later), "pending");
    isr.tick(5 + LAG_MS + 1, 10);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2"]);
    assert.equal(await outcomeNow(later), "resolved", "b3 left the in-sync set");

    // A new stream forgets what the follower reported on the old one.
    streams.set("b2", isr.openStream("b2"));
    const onNewStream = isr.waitForLogStart(8, 20);
    assert.equal(await outcomeNow(onNewStream), "pending");
    report("b2", 8, 21);
    assert.equal(await outcomeNow(onNewStream), "resolved");
  });

  it("fails a deletion wait no in-sync follower confirms in time, naming it", async () => {
    const { isr, fetch } = leader({ followers: ["b2"] });
    isr.leaderReady(0);
    isr.localAppend(5);
    const waiting = isr.waitForLogStart(5, 0);
    fetch("b2", 5, TIMEOUT_MS); // in sync, but it does not report a log start
    isr.tick(TIMEOUT_MS + 1, 5);
    const err = await outcomeNow(waiting);
    assert.ok(err instanceof NotEnoughReplicasError);
    assert.equal(
      err.message,
      "the deletion of the records below offset 5 of t#0 (done on the leader) did not reach every in-sync replica " +
        "in time; repeating the call waits for them again",
    );
  });

  it("ignores a superseded stream and a replica that is not a follower", () => {
    const { isr, streams } = leader({ followers: ["b2"] });
    isr.leaderReady(0);
    isr.localAppend(5);
    const old = streams.get("b2") as number;
    const current = isr.openStream("b2");
    isr.onFetch("b2", old, 5, undefined, 5, 1);
    assert.equal(isr.highWatermark, 0);
    isr.onFetch("b9", 1, 5, undefined, 5, 1);
    assert.equal(isr.openStream("b9"), 0);
    isr.onFetch("b2", current, 5, undefined, 5, 1);
    assert.equal(isr.highWatermark, 5);
  });

  it("holds the high watermark and fails waiters while the fence is closed", async () => {
    const { isr, fence, fetch } = leader({ followers: ["b2"] });
    isr.leaderReady(0);
    isr.localAppend(5);
    const waiting = isr.waitForHighWatermark(5, 0);
    fence.open = false;
    fetch("b2", 5, 1);
    assert.equal(isr.highWatermark, 0);
    assert.ok((await outcomeNow(waiting)) instanceof LostContactError);
    await assert.rejects(isr.waitForHighWatermark(1, 2), LostContactError);
    fence.open = true;
    fetch("b2", 5, 3);
    assert.equal(isr.highWatermark, 5);
  });

  it("fails everything waiting when leadership ends, and reports nothing in sync", async () => {
    const { isr } = leader();
    isr.leaderReady(0);
    isr.localAppend(5);
    const waiting = isr.waitForHighWatermark(5, 0);
    const offsets = isr.waitForOffsets(1, 0);
    const error = new Error("demoted");
    isr.endLeadership(error);
    assert.equal(await outcomeNow(waiting), error);
    assert.equal(await outcomeNow(offsets), error);
    assert.deepEqual(isr.inSyncReplicas(), []);
    assert.equal(isr.hasFollower("b2"), false);
  });

  it("keeps known followers when the replica list changes; a new one starts out of sync", () => {
    const { isr, fetch } = leader({ followers: ["b2"] });
    isr.leaderReady(0);
    fetch("b2", 0, 1);
    isr.setFollowers(["b2", "b4"], 2);
    assert.deepEqual(isr.inSyncReplicas(), ["b1", "b2"]);
    assert.equal(isr.hasFollower("b4"), true);
    isr.setFollowers(["b4"], 3);
    assert.equal(isr.hasFollower("b2"), false);
  });

  it("as a follower takes the leader's high watermark and caps it at a cut", () => {
    const isr = leader().isr;
    isr.endLeadership(new Error("follower now"));
    assert.equal(isr.setFollowerHighWatermark(8), true);
    assert.equal(isr.setFollowerHighWatermark(8), false);
    isr.capHighWatermark(5);
    assert.equal(isr.highWatermark, 5);
    isr.capHighWatermark(9);
    assert.equal(isr.highWatermark, 5);
  });
});
