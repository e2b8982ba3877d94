import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { OplogStore } from "../../src/oplog/oplog-store.js";
import { ClusterState, type StateSnapshot } from "../../src/fsm/state.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { fillOperationLog } from "../helpers/oplog-fill.js";
import { waitFor } from "../helpers/wait.js";

const OPS = 100_000;

/** A sentinel started against an etcd holding 100,000 operations rebuilds exactly the state they describe. */
describe(`recovery from ${OPS.toLocaleString("en")} operations`, () => {
  let etcd: TestEtcd;
  let expected: ClusterState;

  before(async () => {
    etcd = await startEtcd();
    const started = Date.now();
    expected = await fillOperationLog(etcd.client(), OPS);
    console.log(`wrote ${OPS} operations in ${Date.now() - started} ms`);
  });
  after(async () => {
    await etcd.stop();
  });

  /**
   * The sentinel holds exactly the filled log's state. Once it leads it records its ring configuration
   * (the filled log has none), one operation more: compare against the expected state plus that one.
   */
  const assertRecovered = async (s: InProcessSentinel) => {
    const state = s.sentinel.plane.state;
    assert.ok(state.appliedId >= OPS, `applied ${state.appliedId}`);
    if (state.appliedId === OPS && !state.ringConfig) assert.equal(state.digest(), expected.digest());
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    assert.deepEqual(state.ringConfig, { virtualNodes: 150 });
    const withRing = new ClusterState();
    withRing.restore(expected.snapshot());
    withRing.apply({
      type: "configureRing",
      data: { virtualNodes: 150 },
      id: OPS + 1,
      timestamp: 0,
      leaderId: "replayer",
    });
    assert.equal(state.appliedId, OPS + 1);
    assert.equal(state.digest(), withRing.digest());
  };

  it("replays the whole log (no snapshot) to the same state", async () => {
    const started = Date.now();
    const s = await startInProcessSentinel(etcd, "replayer");
    const ms = Date.now() - started;
    try {
      console.log(`ready after replaying ${OPS} operations: ${ms} ms`);
      await assertRecovered(s);
    } finally {
      await s.stop();
    }
  });

  it("recovers from snapshot + the operations after it to the same state", async () => {
    // A snapshot at OPS - 1000 written the way the leader writes it (fenced by a lease-bound key).
    const client = etcd.client();
    const store = new OplogStore(client, createKeyspace("/goulette"));
    const lease = client.lease(30);
    const fence = "/goulette/election/leader/test-fence";
    await lease.put(fence).value("test");
    const partial = await stateAt(store, OPS - 1000);
    const { meta, compacted } = await store.writeSnapshot(partial, fence, Date.now());
    await lease.revoke();
    assert.equal(meta.id, OPS - 1000);
    assert.equal(compacted, OPS - 1000, "the snapshot compacts the operations it covers");

    const started = Date.now();
    const s = await startInProcessSentinel(etcd, "from-snapshot");
    const ms = Date.now() - started;
    try {
      console.log(`ready from a ${meta.size}-byte snapshot + 1000 operations: ${ms} ms`);
      assert.equal(s.sentinel.plane.snapshotId, OPS - 1000);
      await assertRecovered(s);
    } finally {
      await s.stop();
    }
  });
});

/** The state at operation `id`, rebuilt by replaying the stored log into a fresh state. */
async function stateAt(store: OplogStore, id: number): Promise<StateSnapshot> {
  const state = new ClusterState();
  for await (const page of store.readAfter(0)) {
    for (const op of page) {
      if (op.id > id) return state.snapshot();
      state.apply(op);
    }
  }
  return state.snapshot();
}
