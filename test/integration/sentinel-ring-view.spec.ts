import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { createHashRing } from "../../src/ring/hash-ring.js";
import { hash64 } from "../../src/ring/hash.js";
import { countMovedReplicas } from "../../src/ring/placement.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";

const BROKERS = ["b1", "b2", "b3", "b4"];
const VNODES = 20;

async function refused(call: Promise<unknown>, code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, code, err.message);
    assert.match(err.rawMessage, pattern);
    return true;
  });
}

/**
 * GetRing: the ring the sentinel applied (virtual nodes exactly where the hash ring puts them), a
 * topic's partitions at their keys' hashes, and with simulate_down the planner's answer, which is
 * what the leader then does when the broker really leaves.
 */
describe("GetRing", () => {
  let etcd: TestEtcd;
  let s: InProcessSentinel;

  before(async () => {
    etcd = await startEtcd();
    s = await startInProcessSentinel(etcd, "ring-view", { virtualNodes: VNODES });
    await waitFor(() => s.sentinel.plane.isLeader, { what: "the sentinel to lead" });
    // Registered addresses nobody listens on: roles sent to them fail, the assignment stands.
    for (const [i, id] of BROKERS.entries())
      await s.client.registerBroker({ brokerId: id, address: `127.0.0.1:${21100 + i}` });
    await s.client.getBrokers({ topic: "orders", partitions: 8, replicaCount: 2 });
  });
  after(async () => {
    await s?.stop();
    await etcd?.stop();
  });

  it("lists every broker's virtual nodes where the hash ring puts them", async () => {
    const ring = await s.client.getRing({});
    assert.equal(ring.virtualNodes, VNODES);
    assert.deepEqual(
      ring.brokers.map((b) => b.brokerId),
      BROKERS,
    );
    const expected = createHashRing({ virtualNodes: VNODES, brokers: BROKERS }).points();
    for (const b of ring.brokers) {
      assert.equal(b.status, BrokerStatus.HEALTHY);
      assert.equal(b.positions.length, VNODES);
      for (const [vnode, position] of b.positions.entries()) {
        const point = expected.find((p) => p.brokerId === b.brokerId && p.vnode === vnode);
        assert.equal(position, point?.position, `${b.brokerId}#${vnode}`);
      }
    }
    assert.equal(ring.topic, "");
    assert.equal(ring.partitions.length, 0);
    assert.equal(ring.appliedId, BigInt(s.sentinel.plane.state.appliedId));
  });

  it("places a topic's partitions at their keys' hashes, with their replicas", async () => {
    const [ring, brokers] = await Promise.all([
      s.client.getRing({ topic: "orders" }),
      s.client.getBrokers({ topic: "orders" }),
    ]);
    assert.equal(ring.topic, "orders");
    assert.equal(ring.partitions.length, 8);
    for (const p of ring.partitions) {
      assert.equal(p.position, hash64(`orders#${p.partition}`));
      const assigned = brokers.partitions.find((a) => a.partition === p.partition);
      assert.deepEqual(p.replicas, assigned?.replicas);
      assert.equal(p.epoch, assigned?.epoch);
      assert.deepEqual(p.plannedReplicas, [], "nothing planned without simulate_down");
    }
    assert.equal(ring.movedReplicas, 0);
  });

  it("answers simulate_down with the planner's replacement, which is what happens when the broker leaves", async () => {
    const before = await s.client.getRing({ topic: "orders" });
    const victim = before.partitions[0]?.replicas[0] as string;
    const planned = await s.client.getRing({ topic: "orders", simulateDown: [victim] });
    const holding = before.partitions.filter((p) => p.replicas.includes(victim));
    assert.ok(holding.length > 0);
    assert.equal(planned.affectedPartitions, holding.length, "only the victim's partitions change");
    for (const p of planned.partitions) {
      const now = before.partitions.find((b) => b.partition === p.partition);
      if (now?.replicas.includes(victim)) {
        assert.ok(!p.plannedReplicas.includes(victim), `p${p.partition} leaves ${victim}`);
        assert.equal(p.plannedReplicas.length, 2, `p${p.partition} keeps two replicas`);
      } else {
        assert.deepEqual(p.plannedReplicas, now?.replicas, `p${p.partition} is not touched`);
      }
    }
    const toPlacement = (ps: typeof planned.partitions, key: "replicas" | "plannedReplicas") =>
      ps.map((p) => ({ partition: p.partition, replicas: [...p[key]] }));
    assert.equal(
      planned.movedReplicas,
      countMovedReplicas(
        toPlacement(before.partitions, "replicas"),
        toPlacement(planned.partitions, "plannedReplicas"),
      ),
    );
    // The state did not change: planning only.
    assert.equal((await s.client.getRing({ topic: "orders" })).appliedId, before.appliedId);

    await s.client.unregisterBroker({ brokerId: victim });
    const afterwards = await s.client.getRing({ topic: "orders" });
    for (const p of afterwards.partitions) {
      const predicted = planned.partitions.find((x) => x.partition === p.partition);
      // The leader may put another survivor first (the most up-to-date): the replica set is the plan.
      assert.deepEqual(
        [...p.replicas].sort(),
        [...(predicted?.plannedReplicas ?? [])].sort(),
        `p${p.partition}`,
      );
    }
  });

  it("refuses bad requests with a clear error", async () => {
    await refused(s.client.getRing({ topic: "missing" }), Code.NotFound, /topic 'missing' does not exist/);
    await refused(s.client.getRing({ topic: "a/b" }), Code.InvalidArgument, /contains "\/"/);
    await refused(
      s.client.getRing({ topic: "orders", simulateDown: ["nope"] }),
      Code.NotFound,
      /unknown broker 'nope'/,
    );
    await refused(
      s.client.getRing({ simulateDown: Array.from({ length: 17 }, (_, i) => `b${i}`) }),
      Code.InvalidArgument,
      /at most 16/,
    );
  });
});
