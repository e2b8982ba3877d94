import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotEnoughReplicasError } from "../../src/broker/errors.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";
import { outcomeNow } from "../helpers/wait.js";

const LAG_MS = 1_000;
const tempDir = temporaryDirs("goulette-min-isr-");

/** A leader of a 2-replica partition (b1 leads, b2 follows) on a hand-driven clock. */
async function leader(minInsyncReplicas: number | undefined) {
  const clock = { now: 1_000_000 };
  const p = await openTestPartition(await tempDir(), {
    replicaLagMaxMs: LAG_MS,
    ...(minInsyncReplicas !== undefined ? { minInsyncReplicas } : {}),
    now: () => clock.now,
  });
  const { generation, stream } = await leadWithFollowerB2(p);
  const append = async (count: number) => {
    const result = await p.log.append(
      Array.from({ length: count }, () => ({ payload: new Uint8Array([1]) })),
    );
    p.onLocalAppend(result.lastOffset + 1);
    return result.lastOffset + 1;
  };
  /** b2 fetches from `offset` (its log end) now. */
  const fetch = (offset: number) => p.onFetch("b2", stream, offset, undefined);
  /** Time passes beyond the lag bound without b2 fetching: it leaves the in-sync set. */
  const followerSilent = () => {
    clock.now += LAG_MS + 1;
    p.tick();
  };
  return { p, generation, append, fetch, followerSilent };
}

describe("Partition: --min-insync-replicas", () => {
  it("refuses acks=all while fewer replicas than required are in sync, naming both counts", async () => {
    const { p, fetch, followerSilent } = await leader(2);
    fetch(0);
    p.requireMinInSync();
    assert.deepEqual(p.inSyncReplicas(), ["b1", "b2"]);
    followerSilent();
    assert.deepEqual(p.inSyncReplicas(), ["b1"]);
    assert.throws(
      () => p.requireMinInSync(),
      (err: unknown) =>
        err instanceof NotEnoughReplicasError &&
        err.message ===
          "t#0 has 1 in-sync replica (leader included); acks=all requires 2 (--min-insync-replicas)",
    );
    // The follower catches up again (its log end reaches the high watermark): accepted again.
    fetch(p.log.logEndOffset);
    p.requireMinInSync();
    await p.close();
  });

  it("fails acks=all records still waiting when the in-sync set shrinks below the minimum", async () => {
    const { p, generation, append, fetch, followerSilent } = await leader(2);
    fetch(0);
    const first = await append(2);
    const acked = p.waitForHighWatermark(first, generation);
    fetch(first);
    assert.equal(await outcomeNow(acked), "resolved", "replicated to both replicas");

    const second = await append(3);
    const waiting = p.waitForHighWatermark(second, generation);
    assert.equal(await outcomeNow(waiting), "pending");
    followerSilent();
    const err = await outcomeNow(waiting);
    assert.ok(err instanceof NotEnoughReplicasError, `NotEnoughReplicasError, got ${String(err)}`);
    assert.match(err.message, /1 in-sync replica .*requires 2/);
    // The records stay in the log and the high watermark follows the shrunk in-sync set.
    assert.equal(p.highWatermark, second);
    // Already past the high watermark but the in-sync set is too small: refused, not acknowledged.
    const late = await outcomeNow(p.waitForHighWatermark(second, generation));
    assert.ok(late instanceof NotEnoughReplicasError);
    await p.close();
  });

  it("keeps today's behaviour by default: the leader alone acknowledges acks=all", async () => {
    const { p, generation, append, fetch, followerSilent } = await leader(undefined);
    fetch(0);
    const end = await append(1);
    const waiting = p.waitForHighWatermark(end, generation);
    assert.equal(await outcomeNow(waiting), "pending");
    followerSilent();
    assert.equal(await outcomeNow(waiting), "resolved");
    p.requireMinInSync();
    await p.close();
  });
});
