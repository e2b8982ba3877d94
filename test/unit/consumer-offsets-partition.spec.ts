import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FencedMemberError, NotPartitionLeaderError } from "../../src/broker/errors.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-offsets-partition-");

/** A leader of a 2-replica partition (b1 leads, b2 follows, in sync); b2's acknowledgements by hand. */
async function leader() {
  const p = await openTestPartition(await tempDir(), { topic: "orders", partition: 3 });
  const { generation, stream } = await leadWithFollowerB2(p);
  /** b2 acknowledges the offset table up to the leader's current version. */
  const acknowledge = () => p.onFetch("b2", stream, 0, p.offsets.version);
  acknowledge();
  return { p, generation, acknowledge };
}

/** "pending" when the promise has not settled by the next macrotask, else "resolved" or its error. */
async function settled(promise: Promise<unknown>): Promise<unknown> {
  const pending = Symbol("pending");
  const result = await Promise.race([
    promise.then(
      () => "resolved",
      (err: unknown) => err,
    ),
    new Promise((resolve) => setTimeout(() => resolve(pending), 50)),
  ]);
  return result === pending ? "pending" : result;
}

describe("Partition: fenced consumer offsets", () => {
  it("a take-over answers only once the in-sync follower stored the fence; older commits are refused from then on", async () => {
    const { p, generation, acknowledge } = await leader();
    const commit = p.commitOffset("billing", 0, 3, generation);
    assert.equal(await settled(commit), "pending", "a commit waits for the follower");
    acknowledge();
    await commit;

    const takeOver = p.fenceOffsets("billing", 7, generation);
    assert.equal(await settled(takeOver), "pending", "the fence is not answered before it is replicated");
    // The fence is in force on the leader before it is answered: the old member is refused at once.
    const stale = await settled(p.commitOffset("billing", 0, 3, generation));
    assert.ok(stale instanceof FencedMemberError, String(stale));
    acknowledge();
    await takeOver;
    assert.equal(p.offsets.fence("billing"), 7);

    // The same epoch again (a retried take-over) answers once that fence is replicated: now.
    assert.equal(await settled(p.fenceOffsets("billing", 7, generation)), "resolved");
    const refused = await settled(p.fenceOffsets("billing", 6, generation));
    assert.ok(refused instanceof FencedMemberError);
    // Epoch 0 is not fenced.
    const unfenced = p.commitOffset("billing", 0, 0, generation);
    acknowledge();
    await unfenced;
  });

  it("deletion is replicated before it is answered, and names whether there was an offset", async () => {
    const { p, generation, acknowledge } = await leader();
    const commit = p.commitOffset("billing", 0, 2, generation);
    acknowledge();
    await commit;
    const deletion = p.deleteOffset("billing", generation);
    assert.equal(await settled(deletion), "pending");
    acknowledge();
    assert.equal(await deletion, true);
    assert.equal(await p.deleteOffset("billing", generation), false, "nothing left: answered at once");
  });

  it("a request checked under an older leadership changes nothing", async () => {
    const { p, generation } = await leader();
    const self = { brokerId: "b1", address: "" };
    p.applyRole({ role: "follower", epoch: 2, leader: { brokerId: "b2", address: "" }, replicas: [self] });
    const version = p.offsets.version;
    for (const attempt of [
      () => p.commitOffset("billing", 0, 0, generation),
      () => p.fenceOffsets("billing", 5, generation),
      () => p.deleteOffset("billing", generation),
    ]) {
      await assert.rejects(attempt(), NotPartitionLeaderError);
    }
    assert.equal(p.offsets.version, version);
    assert.equal(p.offsets.fence("billing"), 0);
    await p.close();
  });
});
