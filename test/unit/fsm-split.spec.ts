import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, Operation, TopicChange } from "../../src/fsm/operations.js";
import { planNewTopic, planUnreachable } from "../../src/fsm/planner.js";
import { chunkChanges, splitCommand } from "../../src/fsm/split.js";
import { ClusterState } from "../../src/fsm/state.js";
import { createHashRing } from "../../src/ring/hash-ring.js";

const change = (topic: string): TopicChange => ({ topic, partitions: [{ partition: 0, replicas: ["a"] }] });
const changes = (n: number) => Array.from({ length: n }, (_, i) => change(`t${i}`));

describe("splitCommand", () => {
  it("leaves a command within the limits alone", () => {
    const command: Command = { type: "reassignPartitions", data: { changes: changes(5) } };
    assert.deepEqual(
      splitCommand(command, { maxTopics: 5, maxBytes: 1e9 }, () => 1),
      [command],
    );
    const create: Command = { type: "deleteTopic", data: { topic: "x" } };
    assert.deepEqual(
      splitCommand(create, { maxTopics: 1, maxBytes: 1 }, () => 10),
      [create],
    );
  });

  it("splits by topic count: reassignments first, the original type (and its brokers) last", () => {
    const command: Command = {
      type: "handleUnreachableBrokers",
      data: { brokerIds: ["b"], reason: "heartbeat-expired", changes: changes(250) },
    };
    const parts = splitCommand(command, { maxTopics: 100, maxBytes: 1e9 }, () => 1);
    assert.deepEqual(
      parts.map((p) => p.type),
      ["reassignPartitions", "reassignPartitions", "handleUnreachableBrokers"],
    );
    const sizes = parts.map((p) => ("changes" in p.data ? p.data.changes.length : -1));
    assert.deepEqual(sizes, [100, 100, 50]);
    const last = parts[2];
    assert.ok(last?.type === "handleUnreachableBrokers");
    assert.deepEqual(last.data.brokerIds, ["b"]);
    assert.deepEqual(
      parts.flatMap((p) => ("changes" in p.data ? p.data.changes.map((c) => c.topic) : [])),
      changes(250).map((c) => c.topic),
      "every change once, in order",
    );
  });

  it("splits by bytes; a single oversized change goes alone", () => {
    const sizes = [40, 40, 40, 500, 10];
    const list = changes(5);
    const chunks = chunkChanges(list, { maxTopics: 100, maxBytes: 100 }, (c) => sizes[list.indexOf(c)] ?? 0);
    assert.deepEqual(
      chunks.map((c) => c.length),
      [2, 1, 1, 1],
    );
  });

  it("applying the parts in order gives the state of the whole command", () => {
    const build = () => {
      const state = new ClusterState();
      let id = 0;
      const apply = (command: Command) =>
        state.apply({ ...command, id: ++id, timestamp: 1, leaderId: "s" } as Operation);
      for (const b of ["b0", "b1", "b2", "b3", "b4"])
        apply({ type: "registerBroker", data: { brokerId: b, address: `${b}:1` } });
      const ring = () => createHashRing({ brokers: state.ringMembers() });
      for (let i = 0; i < 60; i++)
        apply(planNewTopic(state, ring(), { topic: `t${i}`, partitions: 2, replicaCount: 3 }));
      return { state, apply, ring };
    };
    const whole = build();
    const command = planUnreachable(whole.state, whole.ring(), ["b0"], "client-report");
    whole.apply(command);
    const split = build();
    const parts = splitCommand(command, { maxTopics: 7, maxBytes: 1e9 }, () => 1);
    assert.ok(parts.length > 3);
    for (const part of parts) split.apply(part);
    const strip = (s: ClusterState) =>
      s.topicNames().map((name) => s.topic(name)?.partitions.map((p) => [p.replicas, p.epoch]));
    assert.deepEqual(strip(split.state), strip(whole.state));
    assert.equal(split.state.broker("b0")?.status, "down");
  });
});
