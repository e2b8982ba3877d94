import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PartitionRole } from "../../src/gen/goulette/v1/broker_pb.js";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { roleMessages } from "../../src/sentinel/role-messages.js";

describe("roleMessages", () => {
  function cluster() {
    const state = new ClusterState();
    let id = 0;
    const apply = (command: Command) =>
      state.apply({ ...command, id: ++id, timestamp: 1, leaderId: "s" } as Operation);
    for (const b of ["b0", "b1", "b2", "b3"])
      apply({ type: "registerBroker", data: { brokerId: b, address: `${b}:9000` } });
    apply({
      type: "generateTopicReplicas",
      data: {
        topic: "t",
        replicaCount: 2,
        partitions: [
          { partition: 0, replicas: ["b0", "b1"] },
          { partition: 1, replicas: ["b1", "b2"] },
        ],
      },
    });
    return { state, apply };
  }

  it("tells every replica of a new topic its role, the leader first in the list", () => {
    const { state } = cluster();
    const messages = roleMessages(state, "t", undefined);
    assert.deepEqual(
      messages.map((m) => [m.address, m.message.key, m.message.role?.role]),
      [
        ["b0:9000", "t#0", PartitionRole.LEADER],
        ["b1:9000", "t#0", PartitionRole.FOLLOWER],
        ["b1:9000", "t#1", PartitionRole.LEADER],
        ["b2:9000", "t#1", PartitionRole.FOLLOWER],
      ],
    );
    assert.ok(messages.every((m) => !m.dropsTopic));
  });

  it("after a move: roles only for the partition whose epoch moved, RemoveTopic to the replica that lost it", () => {
    const { state, apply } = cluster();
    const before = state.topic("t");
    apply({
      type: "reassignPartitions",
      data: { changes: [{ topic: "t", partitions: [{ partition: 0, replicas: ["b3", "b1"] }] }] },
    });
    const messages = roleMessages(state, "t", before);
    assert.deepEqual(
      messages.map((m) => [m.address, m.message.what]),
      [
        ["b3:9000", "role t#0"],
        ["b1:9000", "role t#0"],
        ["b0:9000", "RemoveTopic t#0"],
      ],
    );
  });

  it("a deleted topic: RemoveTopic of the whole topic to each former replica, superseding its partitions", () => {
    const { state, apply } = cluster();
    const before = state.topic("t");
    apply({ type: "deleteTopic", data: { topic: "t" } });
    const messages = roleMessages(state, "t", before);
    assert.deepEqual(messages.map((m) => [m.address, m.message.key, m.dropsTopic]).sort(), [
      ["b0:9000", "t", true],
      ["b1:9000", "t", true],
      ["b2:9000", "t", true],
    ]);
  });
});
