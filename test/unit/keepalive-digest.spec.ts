import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { assignmentsDigest, assignmentsOf } from "../../src/sentinel/convert.js";

function stateOf(commands: readonly Command[]): ClusterState {
  const state = new ClusterState();
  commands.forEach((command, i) => {
    const op: Operation = { ...command, id: i + 1, timestamp: 1_700_000_000_000 + i, leaderId: "s1" };
    state.apply(op);
  });
  return state;
}

const register = (brokerId: string, address = `${brokerId}.local:7000`): Command => ({
  type: "registerBroker",
  data: { brokerId, address },
});

const topic = (name: string, replicas: string[][]): Command => ({
  type: "generateTopicReplicas",
  data: {
    topic: name,
    replicaCount: replicas[0]?.length ?? 1,
    partitions: replicas.map((r, partition) => ({ partition, replicas: r })),
  },
});

const BROKERS = [register("b1"), register("b2"), register("b3")];

describe("KeepAlive assignments digest", () => {
  it("is the same for the same role list, whatever history or snapshot led to it", () => {
    const direct = stateOf([...BROKERS, topic("a", [["b1", "b2"]]), topic("b", [["b2", "b1"]])]);
    // Another order of operations, a topic b3 holds alone in between: b1's list is the same.
    const other = stateOf([
      ...BROKERS,
      topic("b", [["b2", "b1"]]),
      topic("c", [["b3"]]),
      topic("a", [["b1", "b2"]]),
    ]);
    const restored = new ClusterState();
    restored.restore(direct.snapshot());
    const digest = assignmentsDigest(direct, "b1");
    assert.match(digest, /^v1\.[A-Za-z0-9_-]{32}$/);
    assert.equal(assignmentsDigest(other, "b1"), digest);
    assert.equal(assignmentsDigest(restored, "b1"), digest);
    assert.notEqual(assignmentsDigest(other, "b3"), assignmentsDigest(direct, "b3"), "b3's lists differ");
  });

  it("changes with anything the broker reconciles: a partition, a role, an epoch, a replica's address", () => {
    const base = [...BROKERS, topic("a", [["b1", "b2"]])];
    const digest = assignmentsDigest(stateOf(base), "b1");
    const variants: Record<string, Command[]> = {
      "one more partition": [
        ...BROKERS,
        topic("a", [
          ["b1", "b2"],
          ["b2", "b1"],
        ]),
      ],
      "another leader": [...BROKERS, topic("a", [["b2", "b1"]])],
      "another replica": [...BROKERS, topic("a", [["b1", "b3"]])],
      "a new epoch": [
        ...base,
        {
          type: "reassignPartitions",
          data: { changes: [{ topic: "a", partitions: [{ partition: 0, replicas: ["b1", "b3"] }] }] },
        },
        {
          type: "reassignPartitions",
          data: { changes: [{ topic: "a", partitions: [{ partition: 0, replicas: ["b1", "b2"] }] }] },
        },
      ],
      "a replica moved to another address": [...base, register("b2", "b2.elsewhere:7000")],
    };
    for (const [what, commands] of Object.entries(variants)) {
      const state = stateOf(commands);
      assert.notEqual(assignmentsDigest(state, "b1"), digest, what);
    }
    // The reassignment back to the same replicas bumped the epoch: the list really differs.
    const epochs = assignmentsOf(stateOf(variants["a new epoch"] as Command[]), "b1").map((r) => r.epoch);
    assert.deepEqual(epochs, [3n]);
  });

  it("of a broker without partitions is a digest of the empty list, not a match for anything else", () => {
    const state = stateOf([...BROKERS, topic("a", [["b1"]])]);
    assert.deepEqual(assignmentsOf(state, "b2"), []);
    assert.equal(assignmentsDigest(state, "b2"), assignmentsDigest(new ClusterState(), "b2"));
    assert.notEqual(assignmentsDigest(state, "b2"), assignmentsDigest(state, "b1"));
  });
});
