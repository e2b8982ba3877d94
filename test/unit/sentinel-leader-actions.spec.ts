import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { Heartbeat } from "../../src/coordination/heartbeats.js";
import { PartitionProgressSchema, type PartitionProgress } from "../../src/gen/goulette/v1/broker_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { LeaderActions } from "../../src/sentinel/leader-actions.js";
import { MemoryOperationLog, memoryControlPlane } from "../helpers/memory-control-plane.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The leader's use-cases over the in-memory control plane, with brokers simulated by a prober that
 * answers from a table (the real ones run in sentinel-leadership, sentinel-leader-choice and
 * sentinel-pod-watch specs).
 */
describe("leader actions", () => {
  async function setup(options: { reachable?: string[] } = {}) {
    const log = new MemoryOperationLog();
    const { plane, leadership } = memoryControlPlane(log, { id: "leader" });
    await plane.start();
    await waitFor(() => plane.isLeader, { what: "leadership" });
    /** Log end offsets the simulated brokers report, by `topic/partition/broker`. */
    const offsets = new Map<string, bigint>();
    const beats: Heartbeat[] = [];
    const reachable = new Set(options.reachable ?? []);
    const addressOf = (address: string) => address.replace(/:1$/, "");
    const actions = new LeaderActions({
      plane,
      logger: silentLogger(),
      heartbeats: { record: async (beat) => void beats.push(beat) },
      prober: {
        isReachable: async (address) => reachable.has(addressOf(address)),
        progress: async (address, partitions): Promise<PartitionProgress[]> =>
          partitions.map((p) =>
            create(PartitionProgressSchema, {
              topic: p.topic,
              partition: p.partition,
              lastEpoch: 1n,
              logEndOffset: offsets.get(`${p.topic}/${p.partition}/${addressOf(address)}`) ?? 0n,
            }),
          ),
      },
    });
    for (const b of ["b0", "b1", "b2", "b3"])
      await actions.register({ brokerId: b, address: `${b}:1`, listeners: [] });
    return { plane, leadership, actions, offsets, beats, log };
  }

  it("register records a heartbeat and the broker; registering again changes nothing", async () => {
    const { plane, actions, beats } = await setup();
    try {
      assert.deepEqual(
        beats.map((b) => b.brokerId),
        ["b0", "b1", "b2", "b3"],
      );
      assert.deepEqual(plane.state.healthyBrokerIds(), ["b0", "b1", "b2", "b3"]);
      const applied = plane.state.appliedId;
      assert.equal(await actions.register({ brokerId: "b1", address: "b1:1", listeners: [] }), undefined);
      assert.equal(plane.state.appliedId, applied);
      const moved = await actions.register({ brokerId: "b1", address: "b1:2", listeners: [] });
      assert.equal(moved?.type, "registerBroker", "a new address is a new registration");
    } finally {
      await plane.stop();
    }
  });

  it("ensureTopic creates a topic once, and refuses a shape the cluster cannot hold", async () => {
    const { plane, actions } = await setup();
    try {
      await Promise.all([
        actions.ensureTopic({ topic: "t", partitions: 3, replicaCount: 3 }),
        actions.ensureTopic({ topic: "t", partitions: 3, replicaCount: 3 }),
      ]);
      assert.equal(plane.state.topic("t")?.partitions.length, 3);
      const creations = (await plane.log.list(0, 100)).filter((op) => op.type === "generateTopicReplicas");
      assert.equal(creations.length, 1);
      await assert.rejects(actions.ensureTopic({ topic: "big", partitions: 1, replicaCount: 9 }), /replica/i);
      assert.equal(plane.state.topic("big"), undefined);
    } finally {
      await plane.stop();
    }
  });

  it("markDown gives each partition the most up-to-date survivor as leader", async () => {
    const { plane, actions, offsets } = await setup();
    try {
      await actions.ensureTopic({ topic: "t", partitions: 4, replicaCount: 3 });
      const led = plane.state.topic("t")?.partitions.find((p) => p.replicas.length === 3) ?? assert.fail();
      const [leader, first, second] = led.replicas as [string, string, string];
      // The follower listed last holds more of the log: it must lead, not the one listed first.
      offsets.set(`t/${led.partition}/${first}`, 5n);
      offsets.set(`t/${led.partition}/${second}`, 9n);
      const op = await actions.markDown([leader], "heartbeat-expired");
      assert.equal(op?.type, "handleUnreachableBrokers");
      assert.equal(plane.state.broker(leader)?.status, "down");
      const after = plane.state.topic("t")?.partitions[led.partition];
      assert.equal(after?.replicas[0], second);
      assert.equal(await actions.markDown([leader], "heartbeat-expired"), undefined, "already down");
    } finally {
      await plane.stop();
    }
  });

  it("verifyUnreachable moves only the reported brokers that do not answer Health", async () => {
    const { plane, actions } = await setup({ reachable: ["b1"] });
    try {
      await actions.ensureTopic({ topic: "t", partitions: 2, replicaCount: 2 });
      await actions.verifyUnreachable(["b1", "b2", "b2"], { topic: "t" });
      assert.equal(plane.state.broker("b1")?.status, "healthy");
      assert.equal(plane.state.broker("b2")?.status, "down");
    } finally {
      await plane.stop();
    }
  });

  it("markUp brings a down broker back and tops up under-replicated partitions", async () => {
    const { plane, actions } = await setup();
    try {
      await actions.ensureTopic({ topic: "t", partitions: 2, replicaCount: 3 });
      for (const b of ["b2", "b3"]) await actions.markDown([b], "heartbeat-expired");
      const replicas = () => plane.state.topic("t")?.partitions.map((p) => p.replicas.length);
      assert.deepEqual(replicas(), [2, 2], "only two brokers are healthy");
      await actions.markUp({ brokerId: "b2", address: "b2:1" });
      assert.equal(plane.state.broker("b2")?.status, "healthy");
      assert.deepEqual(replicas(), [3, 3], "topped up on the broker that came back");
    } finally {
      await plane.stop();
    }
  });

  it("markPodDown acts on the leader only, and on a healthy broker only", async () => {
    const { plane, leadership, actions } = await setup();
    try {
      const event = { brokerId: "b1", reason: "evicted" as const, podName: "broker-1", detail: "Evicted" };
      await actions.markPodDown(event);
      const after = plane.state.appliedId;
      assert.equal(plane.state.broker("b1")?.status, "down");
      const last = (await plane.log.list(after - 1, 1))[0];
      assert.equal(last?.type === "handleUnreachableBrokers" && last.data.reason, "pod-evicted");
      await actions.markPodDown(event);
      assert.equal(plane.state.appliedId, after, "already down: nothing proposed");
      leadership.depose("test");
      await actions.markPodDown({ ...event, brokerId: "b2" });
      assert.equal(plane.state.broker("b2")?.status, "healthy", "a follower does not act");
    } finally {
      await plane.stop();
    }
  });
});
