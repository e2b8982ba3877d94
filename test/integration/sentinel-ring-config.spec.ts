import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { GetBrokersResponseSchema } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { planNewTopic } from "../../src/fsm/planner.js";
import { ClusterState } from "../../src/fsm/state.js";
import { createLogger } from "../../src/observability/logger.js";
import { createHashRing } from "../../src/ring/hash-ring.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";

const BROKERS = 6;

/** Captures a sentinel's JSON log lines. */
function captureLogger(lines: Record<string, unknown>[]) {
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return createLogger({ level: "warn", destination });
}

/**
 * --virtual-nodes is recorded in the operation log by the first leader: sentinels started with other
 * values build the logged ring, so they place topics alike before and after a failover.
 */
describe("the hash-ring configuration is recorded in the log", () => {
  let etcd: TestEtcd;
  const running: InProcessSentinel[] = [];
  const followerLog: Record<string, unknown>[] = [];

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await etcd.stop();
  });

  const answers = async (s: InProcessSentinel, topics: string[]) =>
    Promise.all(
      topics.map(async (topic) => {
        const res = toJson(GetBrokersResponseSchema, await s.client.getBrokers({ topic, replicaCount: 3 }));
        return JSON.stringify(res, (key, value: unknown) => (key === "lastHeartbeatMs" ? undefined : value));
      }),
    );

  it("two sentinels with different --virtual-nodes agree, across a failover, on the logged value", async () => {
    const first = await startInProcessSentinel(etcd, "ring-a", { virtualNodes: 20 });
    running.push(first);
    await waitFor(() => first.sentinel.plane.isLeader, { what: "ring-a to lead" });
    assert.deepEqual(first.sentinel.plane.state.ringConfig, { virtualNodes: 20 }, "recorded on election");
    const ops = await first.client.listOperations({});
    assert.equal(ops.operations[0]?.type, "configureRing", "the first operation of a fresh log");

    const second = await startInProcessSentinel(etcd, "ring-b", {
      virtualNodes: 300,
      logger: captureLogger(followerLog),
    });
    running.push(second);
    assert.equal(second.sentinel.plane.ringVirtualNodes, 20, "the follower follows the log, not its flag");
    const warning = followerLog.find((l) => String(l.msg).includes("--virtual-nodes 300 differs"));
    assert.ok(warning, `a clear warning: ${JSON.stringify(followerLog)}`);
    assert.equal(warning.logged, 20);

    for (let i = 1; i <= BROKERS; i++)
      await second.client.registerBroker({ brokerId: `b${i}`, address: `127.0.0.1:${21000 + i}` });
    const topics = ["t0", "t1", "t2"];
    for (const topic of topics) await second.client.getBrokers({ topic, replicaCount: 3, partitions: 8 });
    const status = await second.client.getClusterStatus({});
    assert.equal(status.ringVirtualNodes, BROKERS * 20);

    // Failover: ring-b (flag 300) leads from now on and must still place with 20 virtual nodes.
    await first.stop();
    running.splice(running.indexOf(first), 1);
    await waitFor(() => second.sentinel.plane.isLeader, { what: "ring-b to take over" });
    const state = new ClusterState();
    state.restore(second.sentinel.plane.state.snapshot());
    const request = { topic: "after-failover", partitions: 8, replicaCount: 3 };
    const members = state.ringMembers();
    const logged = planNewTopic(state, createHashRing({ virtualNodes: 20, brokers: members }), request);
    const flagged = planNewTopic(state, createHashRing({ virtualNodes: 300, brokers: members }), request);
    assert.notDeepEqual(logged, flagged, "the two values place this topic differently (the test can fail)");
    await second.client.getBrokers({ topic: request.topic, replicaCount: 3, partitions: 8 });
    assert.ok(logged.type === "generateTopicReplicas");
    assert.deepEqual(
      second.sentinel.plane.state.topic(request.topic)?.partitions.map((p) => p.replicas),
      logged.data.partitions.map((p) => p.replicas),
      "placed on the logged ring",
    );
    topics.push(request.topic);

    // A third sentinel with yet another flag recovers the same state and answers alike.
    const third = await startInProcessSentinel(etcd, "ring-c", { virtualNodes: 77 });
    running.push(third);
    await waitFor(() => third.sentinel.plane.state.appliedId === second.sentinel.plane.state.appliedId, {
      what: "ring-c to catch up",
    });
    assert.equal(third.sentinel.plane.state.digest(), second.sentinel.plane.state.digest());
    assert.deepEqual(await answers(third, topics), await answers(second, topics));
    const statuses = await Promise.all([second, third].map((s) => s.client.getClusterStatus({})));
    assert.equal(statuses[0]?.stateDigest, statuses[1]?.stateDigest);
    assert.equal(statuses[1]?.ringVirtualNodes, BROKERS * 20);
    assert.equal(
      (await second.client.listOperations({ limit: 1000 })).operations.filter(
        (o) => o.type === "configureRing",
      ).length,
      1,
      "recorded once, not again by the next leader",
    );
  });
});
