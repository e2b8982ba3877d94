import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { brokerPodSelector, startFakeKubeApi, type FakeKubeApi } from "../helpers/fake-kube-api.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

/** The sentinel leader turns a broker pod going NotReady into a reassignment, faster than heartbeats. */
describe("sentinel + Kubernetes pod watcher", () => {
  let etcd: TestEtcd;
  let kube: FakeKubeApi;
  const sentinels: InProcessSentinel[] = [];

  before(async () => {
    etcd = await startEtcd();
    kube = await startFakeKubeApi({ tokens: ["s1", "s2"] });
    for (const name of ["broker-0", "broker-1", "broker-2", "broker-3"]) kube.addPod({ name });
    for (const id of ["s1", "s2"]) {
      sentinels.push(
        await startInProcessSentinel(etcd, id, {
          heartbeatTtlSeconds: 60, // far longer than the test: only the pod watcher can explain a move
          podWatch: {
            kubeConfig: kube.kubeConfig(id),
            namespace: "goulette",
            labelSelector: brokerPodSelector,
          },
        }),
      );
    }
  });
  after(async () => {
    await Promise.all(sentinels.map((s) => s.stop()));
    await kube.close();
    await etcd.stop();
  });

  it("moves a NotReady broker's replicas within 1 s, and only the leader watches", async () => {
    const leader = await waitFor(() => sentinels.find((s) => s.sentinel.plane.isLeader), {
      what: "a leader",
    });
    const follower = sentinels.find((s) => s !== leader) as InProcessSentinel;
    for (const id of ["broker-0", "broker-1", "broker-2", "broker-3"]) {
      await leader.client.registerBroker({ brokerId: id, address: `127.0.0.1:${await freePort()}` });
    }
    const before = await leader.client.getBrokers({ topic: "pods", replicaCount: 2, partitions: 8 });
    assert.ok(before.partitions.some((p) => p.replicas.includes("broker-1")));
    await waitFor(() => kube.requestsBy(leader.sentinel.id).watch > 0, { what: "the leader's watch" });

    const changedAt = Date.now();
    kube.setReady("broker-1", false);
    const after = await waitFor(
      async () => {
        const res = await leader.client.getBrokers({ topic: "pods" });
        return res.partitions.every((p) => !p.replicas.includes("broker-1")) ? res : false;
      },
      { timeoutMs: 5_000, intervalMs: 20, what: "broker-1's replicas to move" },
    );
    const elapsed = Date.now() - changedAt;
    console.log(`pod NotReady → reassignment applied in ${elapsed} ms`);
    assert.ok(elapsed < 1_000, `took ${elapsed} ms`);
    assert.ok(after.partitions.every((p) => p.replicas.length === 2));
    const ops = await leader.client.listOperations({ afterId: 0n, limit: 100 });
    const moves = ops.operations.filter((o) => o.type === "handleUnreachableBrokers");
    assert.equal(moves.length, 1);
    assert.match(moves[0]?.dataJson ?? "", /"reason":"pod-not-ready"/);
    assert.deepEqual(
      kube.requestsBy(follower.sentinel.id),
      { list: 0, watch: 0 },
      "the follower never watches",
    );
  });
});
