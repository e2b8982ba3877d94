import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { decodeOperation, encodeOperation, type Command, type Operation } from "../../src/fsm/operations.js";
import { planNewTopic, planTopUp, planUnreachable, planUnregister } from "../../src/fsm/planner.js";
import {
  ClusterState,
  leaderOf,
  projectTopics,
  withPlacements,
  type StateSnapshot,
  type TopicRecord,
} from "../../src/fsm/state.js";
import { createHashRing } from "../../src/ring/hash-ring.js";

const T0 = 1_700_000_000_000;

/** A committed operation: timestamps travel inside the entry, derived from the id so tests stay reproducible. */
function makeOp(id: number, command: Command, leaderId = "sentinel-a"): Operation {
  return { ...command, id, timestamp: T0 + id * 1000, leaderId };
}

/** Applies commands as a leader would: ids 1, 2, 3… in order; returns the operations. */
function logOf(commands: readonly Command[], startId = 1): Operation[] {
  return commands.map((command, i) => makeOp(startId + i, command));
}

function applyAll(state: ClusterState, ops: readonly Operation[]): ClusterState {
  for (const op of ops) state.apply(op);
  return state;
}

const register = (brokerId: string, address = `${brokerId}.local:7000`): Command => ({
  type: "registerBroker",
  data: { brokerId, address },
});

const generate = (topic: string, replicas: string[][], replicaCount = replicas[0]?.length ?? 1): Command => ({
  type: "generateTopicReplicas",
  data: { topic, replicaCount, partitions: replicas.map((r, partition) => ({ partition, replicas: r })) },
});

/**
 * A realistic history, produced the way the leader produces it: every command planned by the real
 * planner from the state the previous operations built, on the real hash ring. Covers every command type.
 */
function simulatedHistory(): Operation[] {
  const leader = new ClusterState();
  const ops: Operation[] = [];
  const append = (command: Command) => {
    const op = makeOp(ops.length + 1, command);
    leader.apply(op);
    ops.push(op);
  };
  // As a sentinel does: the ring is built with the virtual-node count the log records.
  const ring = () =>
    createHashRing({ virtualNodes: leader.ringConfig?.virtualNodes ?? 150, brokers: leader.ringMembers() });
  const createTopics = (from: number, to: number) => {
    for (let t = from; t < to; t++) {
      append(
        planNewTopic(leader, ring(), {
          topic: `topic-${t}`,
          partitions: 1 + (t % 4),
          replicaCount: 1 + (t % 3),
        }),
      );
    }
  };

  append({ type: "configureRing", data: { virtualNodes: 64 } });
  for (let b = 0; b < 6; b++) append(register(`b${b}`));
  createTopics(0, 12);
  append(planUnreachable(leader, ring(), ["b2"], "heartbeat-expired"));
  createTopics(12, 18);
  append({ type: "addBrokerToHashRing", data: { brokerId: "b2", address: "b2.local:7000" } });
  append({ type: "reassignPartitions", data: { changes: planTopUp(leader, ring()) } });
  append(register("b6"));
  append(planUnregister(leader, ring(), "b4"));
  append({ type: "deleteTopic", data: { topic: "topic-3" } });
  append({ type: "deleteTopic", data: { topic: "topic-7" } });
  append(register("b1", "b1.new:7001"));
  append(planUnreachable(leader, ring(), ["b5", "b0", "b5"], "pod-deleted"));
  createTopics(18, 24);
  append({ type: "reassignPartitions", data: { changes: planTopUp(leader, ring()) } });
  return ops;
}

const HISTORY = simulatedHistory();

/** Every broker id that appears anywhere in the history (including unregistered ones). */
function brokerIdsOf(ops: readonly Operation[]): string[] {
  const ids = new Set<string>();
  for (const op of ops) {
    const text = encodeOperation(op);
    for (const match of text.matchAll(/"(b\d+)"/g)) ids.add(match[1] as string);
  }
  return [...ids].sort();
}

/** topicsOfBroker recomputed from scratch: what the derived index must always say. */
function topicsHolding(state: ClusterState, brokerId: string): string[] {
  return state
    .topicNames()
    .filter((name) => state.topic(name)?.partitions.some((p) => p.replicas.includes(brokerId)));
}

function assertIndexConsistent(state: ClusterState, brokerIds: readonly string[], where = ""): void {
  for (const id of brokerIds) {
    assert.deepEqual(state.topicsOfBroker(id), topicsHolding(state, id), `topicsOfBroker(${id}) ${where}`);
  }
}

/** Everything a reader can ask the state, for comparing two states answer by answer. */
function answers(state: ClusterState, brokerIds: readonly string[]) {
  return {
    appliedId: state.appliedId,
    brokers: state.brokers(),
    ringMembers: state.ringMembers(),
    healthy: state.healthyBrokerIds(),
    topicNames: state.topicNames(),
    topicCount: state.topicCount(),
    topics: state.topicNames().map((name) => state.topic(name)),
    brokerLookups: brokerIds.map((id) => state.broker(id)),
    topicsOfBroker: brokerIds.map((id) => state.topicsOfBroker(id)),
    ringConfig: state.ringConfig,
  };
}

describe("the simulated history", () => {
  it("exercises every command type and leaves a non-trivial state", () => {
    const types = new Set(HISTORY.map((op) => op.type));
    assert.deepEqual([...types].sort(), [
      "addBrokerToHashRing",
      "configureRing",
      "deleteTopic",
      "generateTopicReplicas",
      "handleUnreachableBrokers",
      "reassignPartitions",
      "registerBroker",
      "unregisterBroker",
    ]);
    const state = applyAll(new ClusterState(), HISTORY);
    assert.ok(state.topicCount() > 10);
    assert.ok(state.brokers().some((b) => b.status === "down"));
    assert.ok(
      state.topicNames().some((n) => state.topic(n)?.partitions.some((p) => p.epoch > 1)),
      "some partition was reassigned",
    );
  });
});

describe("ClusterState.apply is deterministic", () => {
  it("gives equal digests on two states fed the same operations (the second via the wire codec)", () => {
    const a = new ClusterState();
    const b = new ClusterState();
    for (const op of HISTORY) {
      a.apply(op);
      b.apply(decodeOperation(encodeOperation(op)));
      assert.equal(a.digest(), b.digest(), `after op ${op.id} (${op.type})`);
    }
    assert.equal(a.appliedId, HISTORY.length);
  });

  it("keeps a digest only until the state changes (apply, restore, replaceWith)", () => {
    const hashed = (s: ClusterState) =>
      createHash("sha256").update(JSON.stringify(s.snapshot())).digest("hex");
    const state = new ClusterState();
    const digests = new Set<string>();
    for (const op of HISTORY) {
      state.digest(); // held from before the operation
      state.apply(op);
      assert.equal(state.digest(), hashed(state), `after op ${op.id} (${op.type})`);
      digests.add(state.digest());
    }
    assert.equal(digests.size, HISTORY.length, "every operation gives a new digest");
    const early = applyAll(new ClusterState(), HISTORY.slice(0, 5));
    state.restore(early.snapshot());
    assert.equal(state.digest(), hashed(early));
    const whole = applyAll(new ClusterState(), HISTORY);
    state.replaceWith(whole);
    assert.equal(state.digest(), hashed(whole));
  });

  it("gives the same digest whatever the delivery, when duplicates are skipped", () => {
    const reference = applyAll(new ClusterState(), HISTORY).digest();
    const n = HISTORY.length;
    const at = (id: number) => HISTORY[id - 1] as Operation;
    const range = (from: number, to: number) =>
      Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => at(from + i));

    const deliveries: Record<string, Operation[]> = {
      // Replay in pages, then a watch that starts a few operations early.
      overlappingPages: [...range(1, 10), ...range(6, 20), ...range(15, n), ...range(n - 3, n)],
      everyOpTwice: HISTORY.flatMap((op) => [op, op]),
      // After each new operation, every earlier one is redelivered (newest first).
      redeliverEverything: HISTORY.flatMap((op) => [op, ...range(1, op.id).reverse()]),
    };
    for (const [name, delivery] of Object.entries(deliveries)) {
      const state = new ClusterState();
      let skipped = 0;
      for (const op of delivery) if (state.apply(op) === undefined) skipped++;
      assert.equal(skipped, delivery.length - n, `${name}: every duplicate is skipped`);
      assert.equal(state.digest(), reference, name);
      assert.equal(state.appliedId, n, name);
    }
  });

  it("skips an operation at or below the applied id even when its content differs", () => {
    const state = applyAll(new ClusterState(), HISTORY.slice(0, 10));
    const before = state.digest();
    assert.equal(state.apply(makeOp(10, register("intruder"))), undefined);
    assert.equal(state.apply(makeOp(3, { type: "deleteTopic", data: { topic: "topic-0" } })), undefined);
    assert.equal(state.digest(), before);
    assert.equal(state.broker("intruder"), undefined);
  });

  it("has a digest that tells states apart", () => {
    const state = applyAll(new ClusterState(), HISTORY);
    const snap = state.snapshot();
    const topic = snap.topics[0] as TopicRecord;
    const partition = topic.partitions[0] as { replicas: string[] };
    partition.replicas = [...partition.replicas].reverse().concat("b99");
    const other = new ClusterState();
    other.restore(snap);
    assert.equal(other.appliedId, state.appliedId);
    assert.notEqual(other.digest(), state.digest());

    // One operation fewer is a different state too.
    const shorter = applyAll(new ClusterState(), HISTORY.slice(0, -1));
    assert.notEqual(shorter.digest(), state.digest());
  });
});

describe("ClusterState snapshot and restore", () => {
  const ids = brokerIdsOf(HISTORY);

  it("restores into a fresh state with the same digest and the same answers", () => {
    const original = applyAll(new ClusterState(), HISTORY);
    const restored = new ClusterState();
    restored.restore(original.snapshot());
    assert.equal(restored.digest(), original.digest());
    assert.deepEqual(answers(restored, ids), answers(original, ids));
    assertIndexConsistent(restored, ids);
  });

  it("survives the JSON round trip a stored snapshot takes", () => {
    const original = applyAll(new ClusterState(), HISTORY);
    const restored = new ClusterState();
    restored.restore(JSON.parse(JSON.stringify(original.snapshot())) as StateSnapshot);
    assert.equal(restored.digest(), original.digest());
    assert.deepEqual(answers(restored, ids), answers(original, ids));
  });

  it("snapshot at op k + ops k+1..n equals ops 1..n, for every k (what recovery relies on)", () => {
    const full = applyAll(new ClusterState(), HISTORY);
    for (let k = 0; k <= HISTORY.length; k++) {
      const snapshot = applyAll(new ClusterState(), HISTORY.slice(0, k)).snapshot();
      assert.equal(snapshot.appliedId, k);
      const recovered = new ClusterState();
      recovered.restore(snapshot);
      // Recovery replays from the snapshot id; overlapping operations must be harmless.
      applyAll(recovered, HISTORY.slice(Math.max(0, k - 2)));
      assert.equal(recovered.digest(), full.digest(), `snapshot at ${k}`);
      assert.deepEqual(answers(recovered, ids), answers(full, ids), `snapshot at ${k}`);
    }
  });

  it("replaces the whole previous state, derived index included", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([register("old-1"), register("old-2"), generate("old-topic", [["old-1", "old-2"]])]),
    );
    assert.deepEqual(state.topicsOfBroker("old-1"), ["old-topic"]);
    const source = applyAll(new ClusterState(), HISTORY.slice(0, 12));
    state.restore(source.snapshot());
    assert.equal(state.broker("old-1"), undefined);
    assert.equal(state.topic("old-topic"), undefined);
    assert.deepEqual(state.topicsOfBroker("old-1"), []);
    assert.equal(state.appliedId, 12);
    assert.equal(state.digest(), source.digest());
  });

  it("hands out copies: mutating a snapshot never changes a state", () => {
    const state = applyAll(new ClusterState(), HISTORY);
    const digest = state.digest();
    const snap = state.snapshot();
    (snap.brokers[0] as { status: string }).status = "down";
    (snap.topics[0] as TopicRecord).partitions[0]?.replicas.push("mutant");
    snap.topics.pop();
    assert.equal(state.digest(), digest, "taking a snapshot then editing it");

    const restored = new ClusterState();
    const clean = state.snapshot();
    restored.restore(clean);
    (clean.topics[0] as TopicRecord).partitions[0]?.replicas.push("mutant");
    (clean.brokers[0] as { address: string }).address = "elsewhere:1";
    assert.equal(restored.digest(), digest, "editing the snapshot after restoring it");
  });

  it("is canonical: the order of brokers and topics in a snapshot does not matter", () => {
    const state = applyAll(new ClusterState(), HISTORY);
    const snap = state.snapshot();
    const shuffled: StateSnapshot = {
      ...snap,
      brokers: [...snap.brokers].reverse(),
      topics: [...snap.topics].reverse(),
    };
    const restored = new ClusterState();
    restored.restore(shuffled);
    assert.equal(restored.digest(), state.digest());
    assert.deepEqual(restored.snapshot(), snap);
  });

  it("rejects a snapshot of an unknown format", () => {
    const state = new ClusterState();
    const snap = { ...state.snapshot(), format: 2 } as unknown as StateSnapshot;
    assert.throws(() => state.restore(snap), /unsupported snapshot format 2/);
  });
});

describe("ClusterState.apply effects", () => {
  it("registerBroker records a healthy broker in the ring; re-registering updates the address", () => {
    const state = new ClusterState();
    const effect = state.apply(makeOp(1, register("b1", "10.0.0.1:7000")));
    assert.deepEqual(effect, { changedTopics: [], changedBrokers: ["b1"] });
    assert.deepEqual(state.broker("b1"), {
      brokerId: "b1",
      address: "10.0.0.1:7000",
      status: "healthy",
      version: 1,
    });
    state.apply(makeOp(2, register("a0")));
    assert.deepEqual(state.ringMembers(), ["a0", "b1"]);
    assert.deepEqual(state.healthyBrokerIds(), ["a0", "b1"]);

    state.apply(
      makeOp(3, {
        type: "handleUnreachableBrokers",
        data: { brokerIds: ["b1"], reason: "pod-failed", changes: [] },
      }),
    );
    state.apply(makeOp(4, register("b1", "10.0.0.9:7000")));
    assert.deepEqual(state.broker("b1"), {
      brokerId: "b1",
      address: "10.0.0.9:7000",
      status: "healthy",
      version: 4,
    });
    assert.equal(state.appliedId, 4);
  });

  it("addBrokerToHashRing brings a down broker back without touching its topics", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        generate("t", [["b1", "b2"]]),
        {
          type: "handleUnreachableBrokers",
          data: { brokerIds: ["b2"], reason: "heartbeat-expired", changes: [] },
        },
      ]),
    );
    assert.equal(state.broker("b2")?.status, "down");
    assert.deepEqual(state.healthyBrokerIds(), ["b1"]);
    assert.deepEqual(state.ringMembers(), ["b1", "b2"], "down brokers stay on the ring");
    const topicBefore = state.topic("t");
    const effect = state.apply(
      makeOp(5, { type: "addBrokerToHashRing", data: { brokerId: "b2", address: "b2.local:7000" } }),
    );
    assert.deepEqual(effect, { changedTopics: [], changedBrokers: ["b2"] });
    assert.deepEqual(state.broker("b2"), {
      brokerId: "b2",
      address: "b2.local:7000",
      status: "healthy",
      version: 5,
    });
    assert.deepEqual(state.topic("t"), topicBefore);
  });

  it("handleUnreachableBrokers marks known brokers down, ignores unknown ones and moves replicas", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        register("b3"),
        generate("t", [
          ["b1", "b2"],
          ["b2", "b3"],
          ["b3", "b1"],
        ]),
        generate("u", [["b3", "b1"]]),
      ]),
    );
    const effect = state.apply(
      makeOp(6, {
        type: "handleUnreachableBrokers",
        data: {
          brokerIds: ["b2", "ghost"],
          reason: "client-report",
          changes: [
            {
              topic: "t",
              partitions: [
                { partition: 0, replicas: ["b1", "b3"] },
                { partition: 1, replicas: ["b3", "b1"] },
              ],
            },
          ],
        },
      }),
    );
    assert.deepEqual(effect, { changedTopics: ["t"], changedBrokers: ["b2"] });
    assert.equal(state.broker("b2")?.status, "down");
    assert.equal(state.broker("b2")?.version, 6);
    assert.equal(state.broker("ghost"), undefined);
    const t = state.topic("t") as TopicRecord;
    assert.deepEqual(
      t.partitions.map((p) => [p.replicas, p.epoch]),
      [
        [["b1", "b3"], 2],
        [["b3", "b1"], 2],
        [["b3", "b1"], 1],
      ],
    );
    assert.equal(t.version, 6);
    assert.equal(t.timestamp, T0 + 6000);
    assert.equal(state.topic("u")?.version, 5, "an untouched topic keeps its version");
    assert.deepEqual(state.topicsOfBroker("b2"), []);
    assert.deepEqual(state.topicsOfBroker("b3"), ["t", "u"]);
  });

  it("unregisterBroker removes the broker and applies its moves", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        register("b3"),
        generate("t", [
          ["b2", "b1"],
          ["b1", "b3"],
        ]),
      ]),
    );
    const effect = state.apply(
      makeOp(5, {
        type: "unregisterBroker",
        data: {
          brokerId: "b2",
          changes: [{ topic: "t", partitions: [{ partition: 0, replicas: ["b1", "b3"] }] }],
        },
      }),
    );
    assert.deepEqual(effect, { changedTopics: ["t"], changedBrokers: ["b2"] });
    assert.equal(state.broker("b2"), undefined);
    assert.deepEqual(state.ringMembers(), ["b1", "b3"]);
    assert.deepEqual(state.topicsOfBroker("b2"), []);
    assert.deepEqual(state.topicsOfBroker("b3"), ["t"]);
    assert.deepEqual(
      state.topic("t")?.partitions.map((p) => [p.replicas, p.epoch]),
      [
        [["b1", "b3"], 2],
        [["b1", "b3"], 1],
      ],
    );
  });

  it("reassignPartitions bumps epochs only where the replica list changed (a new leader is a change)", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        register("b3"),
        generate("t", [
          ["b1", "b2"],
          ["b2", "b3"],
          ["b3", "b1"],
          ["b1", "b3"],
        ]),
      ]),
    );
    const effect = state.apply(
      makeOp(5, {
        type: "reassignPartitions",
        data: {
          changes: [
            {
              topic: "t",
              partitions: [
                { partition: 0, replicas: ["b1", "b2"] }, // same list
                { partition: 1, replicas: ["b3", "b2"] }, // same brokers, new leader
                { partition: 2, replicas: ["b3", "b1", "b2"] }, // one more replica
              ],
            },
            { topic: "no-such-topic", partitions: [{ partition: 0, replicas: ["b1"] }] },
          ],
        },
      }),
    );
    assert.deepEqual(effect?.changedTopics, ["t"], "a change for an unknown topic is ignored");
    assert.equal(state.topic("no-such-topic"), undefined);
    assert.deepEqual(
      state.topic("t")?.partitions.map((p) => [p.partition, p.replicas, p.epoch]),
      [
        [0, ["b1", "b2"], 1],
        [1, ["b3", "b2"], 2],
        [2, ["b3", "b1", "b2"], 2],
        [3, ["b1", "b3"], 1],
      ],
    );
    state.apply(
      makeOp(6, {
        type: "reassignPartitions",
        data: { changes: [{ topic: "t", partitions: [{ partition: 1, replicas: ["b2", "b3"] }] }] },
      }),
    );
    assert.equal(state.topic("t")?.partitions[1]?.epoch, 3, "epochs keep counting up");
    assert.equal(
      leaderOf(state.topic("t")?.partitions[1] as { partition: number; replicas: string[] }),
      "b2",
    );
  });

  it("generateTopicReplicas for an existing topic is a no-op", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([register("b1"), register("b2"), generate("t", [["b1", "b2"]])]),
    );
    const before = state.topic("t");
    const effect = state.apply(makeOp(4, generate("t", [["b2"], ["b1"], ["b2"]], 1)));
    assert.deepEqual(effect, { changedTopics: [], changedBrokers: [] });
    assert.deepEqual(state.topic("t"), before);
    assert.deepEqual(state.topicsOfBroker("b1"), ["t"]);
    assert.equal(state.appliedId, 4, "the operation still counts as applied");
  });

  it("generateTopicReplicas copies the replica lists (editing the operation later changes nothing)", () => {
    const state = new ClusterState();
    const op = makeOp(1, generate("t", [["b1", "b2"]]));
    state.apply(op);
    const digest = state.digest();
    if (op.type === "generateTopicReplicas") op.data.partitions[0]?.replicas.push("b3");
    assert.equal(state.digest(), digest);
    assert.deepEqual(state.topic("t")?.partitions[0], { partition: 0, replicas: ["b1", "b2"], epoch: 1 });
  });

  it("deleteTopic removes the topic and its index entries; deleting an unknown topic changes nothing", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([register("b1"), register("b2"), generate("t", [["b1", "b2"]]), generate("u", [["b2"]])]),
    );
    assert.deepEqual(state.topicsOfBroker("b2"), ["t", "u"]);
    assert.deepEqual(state.apply(makeOp(5, { type: "deleteTopic", data: { topic: "t" } })), {
      changedTopics: ["t"],
      changedBrokers: [],
    });
    assert.equal(state.topic("t"), undefined);
    assert.deepEqual(state.topicNames(), ["u"]);
    assert.deepEqual(state.topicsOfBroker("b1"), []);
    assert.deepEqual(state.topicsOfBroker("b2"), ["u"]);
    const digest = state.digest();
    assert.deepEqual(state.apply(makeOp(6, { type: "deleteTopic", data: { topic: "t" } })), {
      changedTopics: [],
      changedBrokers: [],
    });
    assert.equal(state.appliedId, 6);
    assert.notEqual(state.digest(), digest, "only the applied id moved");
    // A topic created again after deletion starts over at epoch 1.
    state.apply(makeOp(7, generate("t", [["b2", "b1"]])));
    assert.deepEqual(state.topic("t")?.partitions[0], { partition: 0, replicas: ["b2", "b1"], epoch: 1 });
    assert.deepEqual(state.topicsOfBroker("b1"), ["t"]);
  });

  it("keeps topicsOfBroker equal to a recomputation after every operation of the history", () => {
    const ids = brokerIdsOf(HISTORY);
    const state = new ClusterState();
    for (const op of HISTORY) {
      state.apply(op);
      assertIndexConsistent(state, ids, `after op ${op.id} (${op.type})`);
    }
  });

  it("keeps topicsOfBroker right when an unregistered broker still holds replicas the operation did not move", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        generate("t", [["b1", "b2"]]),
        { type: "unregisterBroker", data: { brokerId: "b2", changes: [] } },
      ]),
    );
    const restored = new ClusterState();
    restored.restore(state.snapshot());
    assert.deepEqual(state.topicsOfBroker("b2"), restored.topicsOfBroker("b2"));
    assertIndexConsistent(state, ["b1", "b2"]);
  });
});

describe("withPlacements", () => {
  const record: TopicRecord = {
    topic: "t",
    replicaCount: 2,
    partitions: [
      { partition: 0, replicas: ["a", "b"], epoch: 3 },
      { partition: 1, replicas: ["b", "c"], epoch: 1 },
      { partition: 2, replicas: ["c", "a"], epoch: 7 },
    ],
    version: 4,
    timestamp: T0,
  };

  it("replaces the named partitions, bumps their epochs only if their list changed, and stamps the op", () => {
    const frozen = structuredClone(record);
    const op = makeOp(9, { type: "reassignPartitions", data: { changes: [] } });
    const updated = withPlacements(
      record,
      [
        { partition: 0, replicas: ["a", "b"] },
        { partition: 2, replicas: ["a", "c"] },
        { partition: 5, replicas: ["z"] },
      ],
      op,
    );
    assert.deepEqual(updated, {
      ...record,
      partitions: [
        { partition: 0, replicas: ["a", "b"], epoch: 3 },
        { partition: 1, replicas: ["b", "c"], epoch: 1 },
        { partition: 2, replicas: ["a", "c"], epoch: 8 },
      ],
      version: 9,
      timestamp: T0 + 9000,
    });
    assert.deepEqual(record, frozen, "the input record is not mutated");
  });
});

describe("projectTopics", () => {
  it("predicts exactly the topic records apply produces, for every operation of the history", () => {
    const state = new ClusterState();
    for (const op of HISTORY) {
      const digest = state.digest();
      const projected = projectTopics(state, op);
      assert.equal(state.digest(), digest, "projecting does not change the state");
      const effect = state.apply(op);
      const where = `op ${op.id} (${op.type})`;
      for (const record of projected.put) assert.deepEqual(record, state.topic(record.topic), where);
      for (const name of projected.deleted) assert.equal(state.topic(name), undefined, where);
      const projectedNames = [...projected.put.map((r) => r.topic), ...projected.deleted].sort();
      assert.deepEqual(projectedNames, [...(effect?.changedTopics ?? [])].sort(), where);
    }
  });

  it("covers every changed topic of hand-written reassignments, deletions and creations", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([
        register("b1"),
        register("b2"),
        register("b3"),
        generate("t", [
          ["b1", "b2"],
          ["b2", "b3"],
        ]),
        generate("u", [["b3"]]),
      ]),
    );
    const ops: Operation[] = logOf(
      [
        {
          type: "reassignPartitions",
          data: {
            changes: [
              { topic: "t", partitions: [{ partition: 1, replicas: ["b3", "b1"] }] },
              { topic: "u", partitions: [{ partition: 0, replicas: ["b3"] }] },
            ],
          },
        },
        { type: "deleteTopic", data: { topic: "u" } },
        generate("v", [
          ["b2", "b1"],
          ["b1", "b3"],
        ]),
        {
          type: "unregisterBroker",
          data: {
            brokerId: "b3",
            changes: [{ topic: "t", partitions: [{ partition: 1, replicas: ["b1", "b2"] }] }],
          },
        },
      ],
      6,
    );
    for (const op of ops) {
      const projected = projectTopics(state, op);
      state.apply(op);
      for (const record of projected.put) assert.deepEqual(record, state.topic(record.topic), `op ${op.id}`);
      for (const name of projected.deleted) assert.equal(state.topic(name), undefined, `op ${op.id}`);
    }
    assert.deepEqual(state.topicNames(), ["t", "v"]);
  });

  it("projects nothing for broker-only operations", () => {
    const state = new ClusterState();
    assert.deepEqual(projectTopics(state, makeOp(1, register("b1"))), { put: [], deleted: [] });
    assert.deepEqual(
      projectTopics(
        state,
        makeOp(1, { type: "addBrokerToHashRing", data: { brokerId: "b1", address: "h:1" } }),
      ),
      { put: [], deleted: [] },
    );
  });

  it("agrees with apply for generateTopicReplicas of a topic that already exists", () => {
    const state = applyAll(
      new ClusterState(),
      logOf([register("b1"), register("b2"), generate("t", [["b1", "b2"]])]),
    );
    const op = makeOp(4, generate("t", [["b2"], ["b1"]], 1));
    const projected = projectTopics(state, op);
    state.apply(op);
    for (const record of projected.put) assert.deepEqual(record, state.topic(record.topic));
  });
});

describe("configureRing", () => {
  const configure = (virtualNodes: number): Command => ({ type: "configureRing", data: { virtualNodes } });

  it("is absent until recorded; apply sets it without touching brokers or topics", () => {
    const state = applyAll(new ClusterState(), logOf([register("b1"), generate("t", [["b1"]])]));
    assert.equal(state.ringConfig, undefined);
    const before = state.snapshot();
    const effect = state.apply(makeOp(3, configure(200)));
    assert.deepEqual(effect, { changedTopics: [], changedBrokers: [] });
    assert.deepEqual(state.ringConfig, { virtualNodes: 200 });
    assert.equal(state.appliedId, 3);
    const after = state.snapshot();
    assert.deepEqual(after.brokers, before.brokers);
    assert.deepEqual(after.topics, before.topics);
  });

  it("leaves the snapshot and digest of a log without it exactly as before (no ring field)", () => {
    const state = applyAll(new ClusterState(), logOf([register("b1"), generate("t", [["b1"]])]));
    const snap = state.snapshot();
    assert.equal("ring" in snap, false, "older snapshots have no ring field");
    assert.deepEqual(Object.keys(snap), ["format", "appliedId", "brokers", "topics"]);
    // A snapshot written before configureRing existed restores to the same state and digest.
    const restored = new ClusterState();
    restored.restore(JSON.parse(JSON.stringify(snap)) as StateSnapshot);
    assert.equal(restored.ringConfig, undefined);
    assert.equal(restored.digest(), state.digest());
  });

  it("is carried in snapshots, restored, and part of the digest", () => {
    const ops = logOf([configure(64), register("b1"), generate("t", [["b1"]])]);
    const state = applyAll(new ClusterState(), ops);
    const snap = state.snapshot();
    assert.deepEqual(snap.ring, { virtualNodes: 64 });
    const restored = new ClusterState();
    restored.restore(JSON.parse(JSON.stringify(snap)) as StateSnapshot);
    assert.deepEqual(restored.ringConfig, { virtualNodes: 64 });
    assert.equal(restored.digest(), state.digest());

    // Restoring a snapshot without the field clears a previously recorded value.
    restored.restore(applyAll(new ClusterState(), logOf([register("b1")])).snapshot());
    assert.equal(restored.ringConfig, undefined);

    // Same brokers, topics and applied id, different (or no) ring configuration: different digests.
    const other = new ClusterState();
    other.restore({ ...snap, ring: { virtualNodes: 65 } });
    const { ring: _dropped, ...withoutRing } = snap;
    const none = new ClusterState();
    none.restore(withoutRing);
    assert.equal(none.appliedId, state.appliedId);
    assert.notEqual(other.digest(), state.digest());
    assert.notEqual(none.digest(), state.digest());
  });

  it("hands out copies and travels through replaceWith", () => {
    const state = applyAll(new ClusterState(), logOf([configure(10)]));
    const snap = state.snapshot();
    (snap.ring as { virtualNodes: number }).virtualNodes = 11;
    assert.deepEqual(state.ringConfig, { virtualNodes: 10 });
    const target = applyAll(new ClusterState(), logOf([register("x")]));
    target.replaceWith(state);
    assert.deepEqual(target.ringConfig, { virtualNodes: 10 });
    assert.equal(target.digest(), state.digest());
  });

  it("projects no topic writes", () => {
    assert.deepEqual(projectTopics(new ClusterState(), makeOp(1, configure(150))), { put: [], deleted: [] });
  });
});
