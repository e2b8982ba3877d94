import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotLeaderError, UnavailableError } from "../../src/errors.js";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { planNewTopic, planUnreachable } from "../../src/fsm/planner.js";
import type { ClusterState } from "../../src/fsm/state.js";
import { HeadMovedError } from "../../src/oplog/operation-log.js";
import type { ControlPlane } from "../../src/sentinel/control-plane.js";
import { recoverFromLog } from "../../src/sentinel/log-recovery.js";
import { MemoryOperationLog, memoryControlPlane } from "../helpers/memory-control-plane.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The control plane over the in-memory operation log and leadership: group commit, splitting, resync
 * and snapshots without etcd (sentinel-group-commit.spec.ts and sentinel-recovery.spec.ts run the
 * same paths against a real one).
 */
describe("control plane over the in-memory log", () => {
  type Options = Parameters<typeof memoryControlPlane>[1];

  async function leader(log = new MemoryOperationLog(), options: Options = {}) {
    const { plane, leadership } = memoryControlPlane(log, { id: "leader", ...options });
    await plane.start();
    await waitFor(() => plane.isLeader, { what: "leadership" });
    for (const b of ["b0", "b1", "b2", "b3"])
      await plane.propose(() => ({ type: "registerBroker", data: { brokerId: b, address: `${b}:1` } }));
    return { plane, leadership, log };
  }

  const newTopic = (plane: ControlPlane, topic: string, partitions = 2) =>
    plane.propose(() => planNewTopic(plane.state, plane.ring, { topic, partitions, replicaCount: 3 }));

  const replayed = async (log: MemoryOperationLog): Promise<ClusterState> =>
    (await recoverFromLog(log)).state;

  it("records the ring configuration first, before it takes any proposal", async () => {
    const log = new MemoryOperationLog();
    const { plane } = await leader(log, { virtualNodes: 40 });
    try {
      const [first] = await log.list(0, 1);
      assert.deepEqual([first?.type, first?.data], ["configureRing", { virtualNodes: 40 }]);
      // A sentinel with another flag follows the logged value.
      const other = memoryControlPlane(log, { id: "other", virtualNodes: 99, autoElect: false }).plane;
      await other.start();
      assert.equal(other.ringVirtualNodes, 40);
      await other.stop();
    } finally {
      await plane.stop();
    }
  });

  it("group-commits the proposals made while a transaction is in flight into the next one", async () => {
    const { plane, log } = await leader();
    try {
      const first = plane.state.appliedId + 1;
      const txnsBefore = log.transactions.length;
      const release = log.holdAppends();
      const opening = newTopic(plane, "t0");
      await waitFor(() => log.heldAppends === 1, { what: "the first append in flight" });
      const rest = Array.from({ length: 49 }, (_, i) => newTopic(plane, `t${i + 1}`));
      release();
      const ops = await Promise.all([opening, ...rest]);
      assert.deepEqual(
        ops.map((op) => op?.id),
        Array.from({ length: 50 }, (_, i) => first + i),
        "each caller gets its own operation, in call order",
      );
      const txns = log.transactions.slice(txnsBefore);
      assert.deepEqual(
        txns.map((t) => t.ids.length),
        [1, 49],
        "the 49 proposals made during the first append share the second transaction",
      );
      assert.equal((await replayed(log)).digest(), plane.state.digest());
      assert.deepEqual(log.topics.get("t7"), plane.state.topic("t7"), "the topic view is written too");
    } finally {
      await plane.stop();
    }
  });

  it("keeps every transaction within its bound", async () => {
    const { plane, log } = await leader(undefined, { txnLimits: { maxOps: 7, maxBytes: 1024 * 1024 } });
    try {
      const txnsBefore = log.transactions.length;
      await Promise.all(Array.from({ length: 30 }, (_, i) => newTopic(plane, `b${i}`)));
      const txns = log.transactions.slice(txnsBefore);
      assert.ok(
        txns.every((t) => t.writes <= 7),
        `writes per transaction: ${txns.map((t) => t.writes).join(", ")}`,
      );
      // Head + 3 × (operation + topic key) per transaction.
      assert.equal(txns.length, 10);
      assert.equal((await replayed(log)).digest(), plane.state.digest());
    } finally {
      await plane.stop();
    }
  });

  it("splits a command over the operation limits into operations appended back to back", async () => {
    const { plane, log } = await leader(undefined, {
      operationLimits: { maxTopics: 2, maxBytes: 512 * 1024 },
    });
    try {
      await Promise.all(Array.from({ length: 9 }, (_, i) => newTopic(plane, `s${i}`)));
      const before = plane.state.appliedId;
      const affected = plane.state.topicsOfBroker("b0").length;
      assert.ok(affected > 4, `b0 holds ${affected} topics`);
      // A proposal queued behind the split one must not land between its parts.
      const down = plane.propose(() => planUnreachable(plane.state, plane.ring, ["b0"], "heartbeat-expired"));
      const other = newTopic(plane, "later");
      const [last, later] = await Promise.all([down, other]);
      const ops = (await log.list(before, 100)) as Operation[];
      const parts = ops.filter((op) => op.id <= (last?.id ?? 0));
      assert.deepEqual(
        parts.map((op) => op.type),
        [...Array<string>(parts.length - 1).fill("reassignPartitions"), "handleUnreachableBrokers"],
      );
      assert.ok(parts.length >= Math.ceil(affected / 2), `${parts.length} operations for ${affected} topics`);
      assert.equal(later?.id, (last?.id ?? 0) + 1, "the next proposal follows the last part");
      assert.equal(plane.state.broker("b0")?.status, "down");
      assert.deepEqual(plane.state.topicsOfBroker("b0"), []);
      assert.equal((await replayed(log)).digest(), plane.state.digest());
    } finally {
      await plane.stop();
    }
  });

  it("a failed append fails every caller in its batch and the state goes back to the log's", async () => {
    const { plane, log } = await leader();
    try {
      await newTopic(plane, "kept");
      const committed = plane.state.digest();
      log.failNextAppend(new UnavailableError("etcd timed out"));
      const results = await Promise.allSettled([newTopic(plane, "lost0"), newTopic(plane, "lost1")]);
      assert.deepEqual(
        results.map((r) => r.status === "rejected" && r.reason instanceof UnavailableError),
        [true, true],
      );
      await waitFor(() => plane.state.digest() === committed, { what: "the state to drop the failed batch" });
      assert.equal(plane.state.topic("lost0"), undefined);
      const op = await newTopic(plane, "after");
      assert.equal(op?.id, plane.state.appliedId, "the leader appends again after the resync");
      assert.equal((await replayed(log)).digest(), plane.state.digest());
    } finally {
      await plane.stop();
    }
  });

  it("reads that wait for committedState() never see a batch the log refuses", async () => {
    const { plane, log } = await leader();
    try {
      const release = log.holdAppends();
      log.failNextAppend(new UnavailableError("refused"));
      const proposals = Promise.allSettled([newTopic(plane, "dirty0"), newTopic(plane, "dirty1")]);
      await waitFor(() => log.heldAppends === 1, { what: "the append in flight" });
      assert.ok(plane.state.topic("dirty0"), "the batch in flight is applied ahead of the log");
      const seen = plane.committedState().then(() => plane.state.topic("dirty0"));
      release();
      assert.equal(await seen, undefined, "after committedState() the refused batch is gone");
      for (const r of await proposals) assert.equal(r.status, "rejected");
    } finally {
      await plane.stop();
    }
  });

  it("another writer moved the head: the batch fails and the resync picks the other operation up", async () => {
    const { plane, log } = await leader();
    try {
      const external = log.appendExternal(
        { type: "registerBroker", data: { brokerId: "x", address: "x:1" } },
        { unseen: true },
      );
      const result = await newTopic(plane, "raced").then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(result instanceof HeadMovedError, String(result));
      // The failed batch held an operation with the external one's id: only the resync brings "x".
      await waitFor(() => plane.state.broker("x"), { what: "the resync" });
      assert.equal(plane.state.appliedId, external.id);
      assert.equal(plane.state.topic("raced"), undefined);
      assert.ok(await newTopic(plane, "retried"));
    } finally {
      await plane.stop();
    }
  });

  it("refuses proposals with NotLeaderError on a follower and once deposed", async () => {
    const log = new MemoryOperationLog();
    const { plane, leadership } = await leader(log);
    const follower = memoryControlPlane(log, { id: "follower", autoElect: false }).plane;
    try {
      await follower.start();
      await assert.rejects(newTopic(follower, "nope"), NotLeaderError);
      // Deposed while its append is in flight: the log refuses the stale fence.
      const release = log.holdAppends();
      const inFlight = newTopic(plane, "fenced");
      await waitFor(() => log.heldAppends === 1, { what: "the append in flight" });
      leadership.depose("lease lost");
      release();
      await assert.rejects(inFlight, NotLeaderError);
      await assert.rejects(newTopic(plane, "after"), NotLeaderError);
      await waitFor(() => plane.state.topic("fenced") === undefined, { what: "the resync" });
    } finally {
      await follower.stop();
      await plane.stop();
    }
  });

  it("a follower applies the leader's operations from the watch and recovers after a gap", async () => {
    const log = new MemoryOperationLog();
    const { plane } = await leader(log);
    const follower = memoryControlPlane(log, { id: "follower", autoElect: false }).plane;
    try {
      await follower.start();
      await newTopic(plane, "seen");
      await waitFor(() => follower.state.digest() === plane.state.digest(), { what: "the watch" });
      log.dropWatchEvents(1); // the follower's watch loses one operation: the next one shows a gap
      await newTopic(plane, "lost");
      await newTopic(plane, "gap");
      await waitFor(() => follower.state.digest() === plane.state.digest(), { what: "the resync" });
      assert.ok(follower.state.topic("lost"));
      // A failed watch is recovered from too.
      log.failWatches(new Error("watch stream closed"));
      await newTopic(plane, "after-failure");
      await waitFor(() => follower.state.digest() === plane.state.digest(), { what: "the second resync" });
    } finally {
      await follower.stop();
      await plane.stop();
    }
  });

  it("captures a snapshot between transactions and persists it while proposals go on", async () => {
    const log = new MemoryOperationLog();
    const { plane } = await leader(log);
    try {
      await Promise.all(Array.from({ length: 5 }, (_, i) => newTopic(plane, `p${i}`)));
      const release = log.holdSnapshots();
      const captureId = plane.state.appliedId;
      const captureDigest = plane.state.digest();
      const snapshot = plane.snapshotNow();
      await waitFor(() => log.heldSnapshots === 1, { what: "the snapshot being persisted" });
      const during = await newTopic(plane, "during");
      assert.equal(during?.id, captureId + 1, "proposals commit while the snapshot is persisted");
      release();
      const result = await snapshot;
      assert.equal(result.snapshotId, captureId);
      assert.equal(result.compacted, captureId);
      assert.equal(plane.snapshotId, captureId);
      const stored = await log.readSnapshot();
      assert.equal(stored?.state.appliedId, captureId);
      assert.deepEqual(log.storedIds(), [captureId + 1], "the log keeps only what the snapshot misses");
      const fresh = memoryControlPlane(new MemoryOperationLog(), { autoElect: false }).plane;
      fresh.state.restore(stored.state);
      assert.equal(fresh.state.digest(), captureDigest, "the snapshot is the state at its id");
      const recovered = await replayed(log);
      assert.equal(recovered.digest(), plane.state.digest(), "snapshot + the rest = the leader's state");
    } finally {
      await plane.stop();
    }
  });

  it("persists snapshots in the order they were captured, and periodically", async () => {
    const log = new MemoryOperationLog();
    const { plane } = await leader(log, { snapshotEvery: 10 });
    try {
      const release = log.holdSnapshots();
      const first = plane.snapshotNow();
      await newTopic(plane, "between");
      const second = plane.snapshotNow();
      await waitFor(() => log.heldSnapshots === 1, { what: "the first persist" });
      release();
      const [a, b] = await Promise.all([first, second]);
      assert.ok(b.snapshotId > a.snapshotId);
      assert.equal((await log.readSnapshotMeta())?.id, b.snapshotId, "the newer snapshot is the one kept");
      const proposals: Promise<Operation | undefined>[] = [];
      for (let i = 0; i < 12; i++) proposals.push(newTopic(plane, `periodic${i}`));
      await Promise.all(proposals);
      await waitFor(async () => ((await log.readSnapshotMeta())?.id ?? 0) > b.snapshotId, {
        what: "a periodic snapshot",
      });
      assert.equal((await replayed(log)).digest(), plane.state.digest());
      await assert.rejects(
        memoryControlPlane(log, { id: "f", autoElect: false }).plane.snapshotNow(),
        NotLeaderError,
      );
    } finally {
      await plane.stop();
    }
  });

  it("answers a plan with nothing to do after the batch it saw is committed", async () => {
    const { plane, log } = await leader();
    try {
      const release = log.holdAppends();
      const created = newTopic(plane, "once");
      await waitFor(() => log.heldAppends === 1, { what: "the append in flight" });
      let answered = false;
      const again = plane
        .propose((): Command | undefined =>
          plane.state.topic("once") ? undefined : { type: "deleteTopic", data: { topic: "x" } },
        )
        .then((op) => {
          answered = true;
          return op;
        });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(answered, false, "not before the creation it planned against is committed");
      release();
      assert.equal(await again, undefined);
      assert.ok(await created);
    } finally {
      await plane.stop();
    }
  });
});
