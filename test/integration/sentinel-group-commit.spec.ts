import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Etcd3 } from "etcd3";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { NotLeaderError } from "../../src/errors.js";
import type { Command } from "../../src/fsm/operations.js";
import { planNewTopic } from "../../src/fsm/planner.js";
import { ClusterState } from "../../src/fsm/state.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry, createSentinelMetrics } from "../../src/observability/metrics.js";
import { OplogStore } from "../../src/oplog/oplog-store.js";
import { toStoredTopicInfo } from "../../src/oplog/topic-info.js";
import type { TxnLimits } from "../../src/oplog/txn-batch.js";
import type { ControlPlane } from "../../src/sentinel/control-plane.js";
import { createEtcdControlPlane } from "../../src/sentinel/etcd-control-plane.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/wait.js";

/** Concurrent proposals on the leader share etcd transactions; every caller answers after its commit. */
describe("group commit on the leader", () => {
  let etcd: TestEtcd;
  let prefixes = 0;

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  async function leader(txnLimits?: TxnLimits) {
    const client = etcd.client();
    const keys = createKeyspace(`/gc${++prefixes}`);
    const plane = createEtcdControlPlane({
      id: `leader-${prefixes}`,
      url: "http://127.0.0.1:1",
      etcd: client,
      keys,
      logger: silentLogger(),
      metrics: createSentinelMetrics(createRegistry()),
      virtualNodes: 50,
      snapshotEvery: 1_000_000,
      electionTtlSeconds: 5,
      ...(txnLimits ? { txnLimits } : {}),
    });
    await plane.start();
    await waitFor(() => plane.isLeader, { what: "leadership" });
    for (const b of ["b0", "b1", "b2", "b3"])
      await plane.propose(() => ({ type: "registerBroker", data: { brokerId: b, address: `${b}:1` } }));
    return { plane, client, keys, store: new OplogStore(client, keys) };
  }

  const revision = async (client: Etcd3) =>
    BigInt((await client.kv.range({ key: Buffer.from("x") })).header.revision);

  async function replayed(store: OplogStore): Promise<ClusterState> {
    const state = new ClusterState();
    for await (const page of store.readAfter(0)) for (const op of page) state.apply(op);
    return state;
  }

  const newTopic = (plane: ControlPlane, topic: string) =>
    plane.propose(() => planNewTopic(plane.state, plane.ring, { topic, partitions: 2, replicaCount: 3 }));

  it("commits 50 concurrent proposals in far fewer transactions, ids in order without gaps", async () => {
    const { plane, client, store } = await leader();
    try {
      const first = plane.state.appliedId + 1;
      const revBefore = await revision(client);
      const ops = await Promise.all(Array.from({ length: 50 }, (_, i) => newTopic(plane, `t${i}`)));
      const txns = Number((await revision(client)) - revBefore);
      assert.deepEqual(
        ops.map((op) => op?.id),
        Array.from({ length: 50 }, (_, i) => first + i),
        "each caller gets its own operation, in call order",
      );
      assert.ok(txns < 25, `50 operations took ${txns} transactions`);
      assert.equal((await store.readHead()).head, first + 49);
      assert.equal((await replayed(store)).digest(), plane.state.digest());
    } finally {
      await plane.stop();
    }
  });

  it("writes a topic changed twice in one batch once, with its final value", async () => {
    const { plane, client, keys } = await leader();
    try {
      const created = newTopic(plane, "twice");
      const moved = plane.propose((): Command | undefined => {
        const topic = plane.state.topic("twice"); // planned after the creation, before its commit
        if (!topic) return undefined;
        return {
          type: "reassignPartitions",
          data: {
            changes: [{ topic: "twice", partitions: [{ partition: 0, replicas: ["b3", "b2", "b1"] }] }],
          },
        };
      });
      const none = plane.propose(() => undefined);
      const [a, b, c] = await Promise.all([created, moved, none]);
      assert.equal(b?.id, (a?.id ?? 0) + 1);
      assert.equal(c, undefined);
      const stored = await client.get(keys.topic("twice")).string();
      const record = plane.state.topic("twice");
      assert.ok(record);
      assert.deepEqual(JSON.parse(stored ?? "null"), toStoredTopicInfo(record));
      assert.deepEqual(record.partitions[0]?.replicas, ["b3", "b2", "b1"]);
    } finally {
      await plane.stop();
    }
  });

  it("keeps each transaction within the per-txn bound", async () => {
    const { plane, client, store } = await leader({ maxOps: 7, maxBytes: 1024 * 1024 });
    try {
      const revBefore = await revision(client);
      await Promise.all(Array.from({ length: 30 }, (_, i) => newTopic(plane, `b${i}`)));
      const txns = Number((await revision(client)) - revBefore);
      // Head + 3 × (operation + topic key) per transaction.
      assert.ok(txns >= 10 && txns < 30, `30 operations took ${txns} transactions`);
      assert.equal((await replayed(store)).digest(), plane.state.digest());
    } finally {
      await plane.stop();
    }
  });

  it("a failed batch fails every caller in it and the state goes back to etcd's", async () => {
    const { plane, client, store } = await leader();
    try {
      await newTopic(plane, "kept");
      const committed = plane.state.digest();
      // Fence gone (as after losing the lease): the next transaction is refused.
      const fenceKey = plane.leadership.fenceKey;
      assert.ok(fenceKey);
      await client.delete().key(fenceKey);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => newTopic(plane, `lost${i}`)),
      );
      for (const r of results) {
        assert.equal(r.status, "rejected");
        assert.ok(r.reason instanceof NotLeaderError, String(r.reason));
      }
      await waitFor(() => plane.state.digest() === committed, { what: "the state to drop the failed batch" });
      assert.equal(plane.state.topic("lost0"), undefined);
      assert.equal((await replayed(store)).digest(), committed);
    } finally {
      await plane.stop();
    }
  });

  it("reads that wait for committedState() never see a batch etcd refuses", async () => {
    const { plane, client } = await leader();
    try {
      const fenceKey = plane.leadership.fenceKey;
      assert.ok(fenceKey);
      await client.delete().key(fenceKey);
      const proposals = Promise.allSettled([newTopic(plane, "dirty0"), newTopic(plane, "dirty1")]);
      // The leader plans on a microtask and applies the batch before etcd answers: the state is ahead.
      await Promise.resolve();
      assert.ok(plane.state.topic("dirty0"), "the batch in flight is applied ahead of etcd");
      const seen = await plane.committedState().then(() => plane.state.topic("dirty0"));
      assert.equal(seen, undefined, "after committedState() the refused batch is gone");
      for (const r of await proposals) assert.equal(r.status, "rejected");
    } finally {
      await plane.stop();
    }
  });
});
