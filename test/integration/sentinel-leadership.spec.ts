import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { NotLeaderError } from "../../src/errors.js";
import { OplogStore } from "../../src/oplog/oplog-store.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

describe("leadership fencing and failure handling", () => {
  let etcd: TestEtcd;
  const running: InProcessSentinel[] = [];
  let healthyBroker: http2.Http2Server;
  let healthyPort: number;

  before(async () => {
    etcd = await startEtcd();
    // A broker that answers Health, to show the leader checks before it moves anything.
    healthyPort = await freePort();
    healthyBroker = http2.createServer(
      connectNodeAdapter({
        routes: (router) => {
          router.rpc(BrokerService.method.health, () => ({ brokerId: "live", ready: true }));
        },
      }),
    );
    await new Promise<void>((resolve) => healthyBroker.listen(healthyPort, "127.0.0.1", resolve));
  });
  after(async () => {
    await Promise.all(running.map((s) => s.stop()));
    healthyBroker.close();
    await etcd.stop();
  });

  it("a deposed leader (election lease revoked while it runs) cannot append", async () => {
    const s = await startInProcessSentinel(etcd, "fenced", { etcdPrefix: "/fence-test" });
    running.push(s);
    const plane = s.sentinel.plane;
    await waitFor(() => plane.isLeader, { what: "leadership" });
    await s.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:31001" });
    const fenceKey = plane.leadership.fenceKey as string;
    const headBefore = (await plane.log.readHead()).head;

    // Revoke the election lease behind the leader's back (what etcd does when its lease expires).
    const admin = etcd.client();
    const leaseId = fenceKey.slice(fenceKey.lastIndexOf("/") + 1);
    await admin.leaseClient.leaseRevoke({ ID: leaseId });

    // The store-level append with the stale fence is refused by etcd itself...
    const store = new OplogStore(admin, createKeyspace("/fence-test"));
    await assert.rejects(
      store.append({
        command: { type: "registerBroker", data: { brokerId: "intruder", address: "127.0.0.1:1" } },
        fenceKey,
        expectedHead: headBefore,
        leaderId: "fenced",
        timestamp: Date.now(),
        topics: { put: [], deleted: [] },
      }),
      NotLeaderError,
    );
    assert.equal((await store.readHead()).head, headBefore, "nothing was appended");
    // ...and the sentinel notices, steps down and wins a new term with a new fence.
    await waitFor(
      () =>
        plane.leadership.fenceKey !== undefined && plane.leadership.fenceKey !== fenceKey && plane.isLeader,
      {
        what: "a new term",
      },
    );
    await s.client.registerBroker({ brokerId: "b2", address: "127.0.0.1:31002" });
    assert.equal((await store.readHead()).head, headBefore + 1);
  });

  it("verifies reported brokers itself: moves a dead one, keeps a live one", async () => {
    const s = await startInProcessSentinel(etcd, "verifier", { etcdPrefix: "/verify-test" });
    running.push(s);
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    const deadPort = await freePort();
    await s.client.registerBroker({ brokerId: "live", address: `127.0.0.1:${healthyPort}` });
    await s.client.registerBroker({ brokerId: "dead", address: `127.0.0.1:${deadPort}` });
    await s.client.registerBroker({ brokerId: "spare", address: `127.0.0.1:${await freePort()}` });
    const before = await s.client.getBrokers({ topic: "t", replicaCount: 2, partitions: 6 });
    assert.ok(
      before.partitions.some((p) => p.replicas.includes("dead")),
      "the dead broker holds replicas",
    );

    const kept = await s.client.getBrokers({ topic: "t", unreachableBrokers: ["live"] });
    assert.equal(kept.version, before.version, "a broker that answers Health is not moved");

    const moved = await s.client.getBrokers({ topic: "t", unreachableBrokers: ["dead"] });
    assert.ok(moved.version > before.version);
    for (const p of moved.partitions) {
      assert.ok(!p.replicas.includes("dead"), `partition ${p.partition} no longer uses the dead broker`);
      assert.equal(p.replicas.length, 2, "replaced, not just removed");
      const old = before.partitions.find((q) => q.partition === p.partition);
      if (old?.replicas.includes("dead"))
        assert.ok(p.epoch > (old?.epoch ?? 0n), "epoch bumped where replicas changed");
      else assert.deepEqual(p.replicas, old?.replicas, "untouched partitions keep their replicas");
    }
    const status = await s.client.getClusterStatus({});
    assert.equal(status.brokers.find((b) => b.brokerId === "dead")?.status, BrokerStatus.DOWN);
    const ops = await s.client.listOperations({ afterId: 0n, limit: 100 });
    assert.equal(ops.operations.filter((o) => o.type === "handleUnreachableBrokers").length, 1);
  });

  it("turns an expired heartbeat into a reassignment", async () => {
    const s = await startInProcessSentinel(etcd, "hb", { etcdPrefix: "/hb-test", heartbeatTtlSeconds: 2 });
    running.push(s);
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    for (const id of ["h1", "h2", "h3"])
      await s.client.registerBroker({ brokerId: id, address: `127.0.0.1:${await freePort()}` });
    await s.client.getBrokers({ topic: "beats", replicaCount: 2, partitions: 4 });
    // h1 and h2 keep beating, h3 falls silent.
    const beat = setInterval(() => {
      for (const id of ["h1", "h2"])
        s.client
          .keepAlive({ brokerId: id, address: s.sentinel.plane.state.broker(id)?.address ?? "" })
          .catch(() => undefined);
    }, 300);
    try {
      const after = await waitFor(
        async () => {
          const res = await s.client.getBrokers({ topic: "beats" });
          return res.partitions.every((p) => !p.replicas.includes("h3")) ? res : false;
        },
        { timeoutMs: 10_000, what: "h3's replicas to move" },
      );
      assert.ok(after.partitions.every((p) => p.replicas.length === 2));
      assert.equal(s.sentinel.plane.state.broker("h3")?.status, "down");
      assert.equal(s.sentinel.plane.state.broker("h1")?.status, "healthy");
      // h3 comes back: marked healthy again through the log.
      await s.client.keepAlive({
        brokerId: "h3",
        address: s.sentinel.plane.state.broker("h3")?.address ?? "",
      });
      await waitFor(() => s.sentinel.plane.state.broker("h3")?.status === "healthy", { what: "h3 back" });
    } finally {
      clearInterval(beat);
    }
  });

  /** goulette_failure_verdicts_suspect_total of one reason, from the sentinel's own registry. */
  async function suspectVerdicts(s: InProcessSentinel, reason: string): Promise<number> {
    const metric = s.sentinel.registry.getSingleMetric("goulette_failure_verdicts_suspect_total");
    const values = (await metric?.get())?.values ?? [];
    return values.filter((v) => v.labels["reason"] === reason).reduce((sum, v) => sum + v.value, 0);
  }

  /** Registers brokers, creates a topic on them and keeps `beating` ones' heartbeats going. */
  async function silentBrokerSetup(prefix: string, brokers: Record<string, string>, beating: string[]) {
    const s = await startInProcessSentinel(etcd, prefix, {
      etcdPrefix: `/${prefix}`,
      heartbeatTtlSeconds: 2,
      verdictLimits: { probeHoldMs: 3_000, maxHoldMs: 6_000 },
    });
    running.push(s);
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    for (const [brokerId, address] of Object.entries(brokers))
      await s.client.registerBroker({ brokerId, address });
    await s.client.getBrokers({ topic: "held", replicaCount: 2, partitions: 4 });
    const beat = setInterval(() => {
      // A beat still in flight when the sentinel stops fails: nothing to report after the test.
      for (const id of beating)
        s.client.keepAlive({ brokerId: id, address: brokers[id] ?? "" }).catch(() => undefined);
    }, 300);
    return { s, stop: () => clearInterval(beat) };
  }

  it("holds the verdict on a silent broker that still answers Health, then acts after its grace", async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const { s, stop } = await silentBrokerSetup(
      "hold-probe",
      { a1: dead, a2: `127.0.0.1:${await freePort()}`, answering: `127.0.0.1:${healthyPort}` },
      ["a1", "a2"],
    );
    try {
      // Its heartbeat expires after 2 s, but it answers Health: held, not moved.
      await waitFor(async () => (await suspectVerdicts(s, "probe-answers")) > 0, {
        timeoutMs: 10_000,
        what: "a held verdict (probe-answers)",
      });
      assert.equal(s.sentinel.plane.state.broker("answering")?.status, "healthy");
      assert.deepEqual(s.sentinel.detector.suspects, ["answering"]);
      // Still silent after its grace (probeHoldMs): cut off from the sentinels, declared down after all.
      await waitFor(() => s.sentinel.plane.state.broker("answering")?.status === "down", {
        timeoutMs: 15_000,
        what: "the silent broker to be declared down after its grace",
      });
      assert.ok((await suspectVerdicts(s, "probe-answers")) >= 2, "re-checked while held");
    } finally {
      stop();
    }
  });

  it("holds a verdict that would declare most brokers dead at once", async () => {
    const { s, stop } = await silentBrokerSetup(
      "hold-mass",
      {
        m1: `127.0.0.1:${await freePort()}`,
        m2: `127.0.0.1:${await freePort()}`,
        m3: `127.0.0.1:${await freePort()}`,
      },
      ["m1"],
    );
    try {
      // m2 and m3 (2 of 3) fall silent and do not answer Health: more than half at once is suspect.
      await waitFor(async () => (await suspectVerdicts(s, "mass-verdict")) >= 2, {
        timeoutMs: 10_000,
        what: "held verdicts (mass-verdict)",
      });
      for (const id of ["m2", "m3"]) assert.equal(s.sentinel.plane.state.broker(id)?.status, "healthy");
      const ops = await s.client.listOperations({ afterId: 0n, limit: 100 });
      assert.equal(ops.operations.filter((o) => o.type === "handleUnreachableBrokers").length, 0);
      await waitFor(() => ["m2", "m3"].every((id) => s.sentinel.plane.state.broker(id)?.status === "down"), {
        timeoutMs: 15_000,
        what: "both to be declared down after the hold",
      });
    } finally {
      stop();
    }
  });
});
