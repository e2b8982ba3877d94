import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  planRestartHandover,
  preferUpToDateLeaders,
  survivorsToAsk,
  withUpToDateLeaders,
  type ReplicaProgress,
} from "../../src/fsm/leader-choice.js";
import type { Command } from "../../src/fsm/operations.js";
import { planUnreachable, planUnregister } from "../../src/fsm/planner.js";
import { ClusterState } from "../../src/fsm/state.js";
import { createHashRing } from "../../src/ring/hash-ring.js";

/** A state with brokers b1..b4 and topic t: partition 0 on [b1, b2, b3], partition 1 on [b2, b3, b4]. */
function cluster(): ClusterState {
  const state = new ClusterState();
  let id = 1;
  const apply = (command: Command) => state.apply({ ...command, id: id++, timestamp: 0, leaderId: "s" });
  for (const b of ["b1", "b2", "b3", "b4"])
    apply({ type: "registerBroker", data: { brokerId: b, address: `${b}:1` } });
  apply({
    type: "generateTopicReplicas",
    data: {
      topic: "t",
      replicaCount: 3,
      partitions: [
        { partition: 0, replicas: ["b1", "b2", "b3"] },
        { partition: 1, replicas: ["b2", "b3", "b4"] },
      ],
    },
  });
  return state;
}

const progress =
  (table: Record<string, [number, number]>) =>
  (topic: string, partition: number, brokerId: string): ReplicaProgress | undefined => {
    const entry = table[`${topic}/${partition}/${brokerId}`];
    return entry && { lastEpoch: BigInt(entry[0]), logEndOffset: BigInt(entry[1]) };
  };

describe("leader choice: the most up-to-date survivor leads", () => {
  it("asks only the healthy survivors of partitions the leaving brokers lead", () => {
    const asks = survivorsToAsk(cluster(), new Set(["b1"]));
    assert.deepEqual(Object.fromEntries(asks), {
      b2: [{ topic: "t", partition: 0 }],
      b3: [{ topic: "t", partition: 0 }],
    });
    // b2 leads partition 1 and follows partition 0: leaving b1 and b2 asks b3 about both, b4 about 1.
    const both = survivorsToAsk(cluster(), new Set(["b1", "b2"]));
    assert.deepEqual(Object.fromEntries(both), {
      b3: [
        { topic: "t", partition: 0 },
        { partition: 1, topic: "t" },
      ],
      b4: [{ topic: "t", partition: 1 }],
    });
  });

  it("puts the survivor with the newest epoch, then the longest log, first", () => {
    const state = cluster();
    const changes = [{ topic: "t", partitions: [{ partition: 0, replicas: ["b2", "b3", "b4"] }] }];
    const longer = preferUpToDateLeaders(
      state,
      changes,
      new Set(["b1"]),
      progress({ "t/0/b2": [3, 10], "t/0/b3": [3, 12] }),
    );
    assert.deepEqual(longer[0]?.partitions[0]?.replicas, ["b3", "b2", "b4"], "longest log leads; b4 is new");
    const newer = preferUpToDateLeaders(
      state,
      changes,
      new Set(["b1"]),
      progress({ "t/0/b2": [4, 5], "t/0/b3": [3, 12] }),
    );
    assert.deepEqual(
      newer[0]?.partitions[0]?.replicas,
      ["b2", "b3", "b4"],
      "a newer epoch beats a longer log",
    );
    const unknown = preferUpToDateLeaders(state, changes, new Set(["b1"]), progress({ "t/0/b3": [0, 1] }));
    assert.deepEqual(unknown[0]?.partitions[0]?.replicas, ["b3", "b2", "b4"], "a silent survivor ranks last");
    const tie = preferUpToDateLeaders(
      state,
      changes,
      new Set(["b1"]),
      progress({ "t/0/b2": [3, 9], "t/0/b3": [3, 9] }),
    );
    assert.deepEqual(tie[0]?.partitions[0]?.replicas, ["b2", "b3", "b4"], "ties keep the planned order");
  });

  it("leaves partitions whose leader stays alone", () => {
    const state = cluster();
    // b3 leaves: it leads nothing, so nothing is reordered even though b4 looks further ahead.
    const command = planUnreachable(
      state,
      createHashRing({ brokers: state.ringMembers() }),
      ["b3"],
      "heartbeat-expired",
    );
    const reordered = withUpToDateLeaders(state, command, progress({ "t/0/b2": [1, 1], "t/1/b4": [9, 99] }));
    assert.deepEqual(reordered, command);
  });

  it("applies to unreachable and unregistered brokers' commands", () => {
    const state = cluster();
    const ring = createHashRing({ brokers: state.ringMembers() });
    const table = progress({ "t/0/b2": [1, 4], "t/0/b3": [1, 7] });
    for (const command of [
      planUnreachable(state, ring, ["b1"], "client-report"),
      planUnregister(state, ring, "b1"),
    ]) {
      const out = withUpToDateLeaders(state, command, table);
      assert.ok(out.type === "handleUnreachableBrokers" || out.type === "unregisterBroker");
      const p0 = out.data.changes.find((c) => c.topic === "t")?.partitions.find((p) => p.partition === 0);
      assert.equal(p0?.replicas[0], "b3", `${command.type}: b3 has the longer log`);
      assert.ok(!p0?.replicas.includes("b1"));
    }
  });
});

describe("leader choice: a leader that restarted hands over", () => {
  it("moves the partitions it led to the most up-to-date other replica, itself right behind", () => {
    const state = cluster();
    const changes = planRestartHandover(state, "b1", progress({ "t/0/b2": [1, 10], "t/0/b3": [1, 12] }));
    assert.deepEqual(changes, [{ topic: "t", partitions: [{ partition: 0, replicas: ["b3", "b1", "b2"] }] }]);
    // Applied, the list changed: a new epoch.
    state.apply({ type: "reassignPartitions", data: { changes }, id: 100, timestamp: 0, leaderId: "s" });
    assert.equal(state.topic("t")?.partitions[0]?.epoch, 2);
    assert.equal(state.topic("t")?.partitions[1]?.epoch, 1, "partitions it only follows stay");
  });

  it("with a filter, hands over only the partitions it names (a broker refusing to lead them)", () => {
    const state = cluster();
    const known = progress({ "t/0/b2": [1, 10], "t/0/b3": [1, 12] });
    assert.deepEqual(
      planRestartHandover(state, "b1", known, (_, partition) => partition !== 0),
      [],
    );
    assert.deepEqual(
      planRestartHandover(state, "b1", known, (topic, partition) => topic === "t" && partition === 0),
      [{ topic: "t", partitions: [{ partition: 0, replicas: ["b3", "b1", "b2"] }] }],
    );
  });

  it("leaves a partition where no other replica reported its progress", () => {
    assert.deepEqual(planRestartHandover(cluster(), "b1", progress({})), []);
  });

  it("records the incarnation, and keeps it when an operation carries none", () => {
    const state = cluster();
    const apply = (id: number, type: "registerBroker" | "addBrokerToHashRing", incarnation?: string) =>
      state.apply({
        type,
        data: { brokerId: "b1", address: "b1:1", ...(incarnation ? { incarnation } : {}) },
        id,
        timestamp: 0,
        leaderId: "s",
      });
    apply(100, "registerBroker", "first");
    assert.equal(state.broker("b1")?.incarnation, "first");
    apply(101, "addBrokerToHashRing");
    assert.equal(state.broker("b1")?.incarnation, "first");
    assert.equal(state.broker("b2")?.incarnation, undefined, "absent for brokers that never sent one");
  });
});
