import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Operation } from "../../src/fsm/operations.js";
import type { TopicRecord } from "../../src/fsm/state.js";
import { TxnBatch } from "../../src/oplog/txn-batch.js";

const op = (id: number): Operation => ({
  id,
  type: "deleteTopic",
  timestamp: 1,
  leaderId: "s",
  data: { topic: `t${id}` },
});
const record = (topic: string, version: number): TopicRecord => ({
  topic,
  replicaCount: 1,
  partitions: [{ partition: 0, replicas: ["b0"], epoch: version }],
  version,
  timestamp: 1,
});

describe("TxnBatch", () => {
  it("writes each topic key once, with its final value", () => {
    const batch = new TxnBatch({ maxOps: 100, maxBytes: 1e6 });
    const add = (id: number, topics: { put: TopicRecord[]; deleted: string[] }) =>
      batch.add(op(id), topics, batch.cost(op(id), topics));
    add(1, { put: [record("a", 1), record("b", 1)], deleted: [] });
    add(2, { put: [record("a", 2)], deleted: ["b"] });
    add(3, { put: [record("c", 3)], deleted: [] });
    const writes = batch.topicWrites();
    assert.deepEqual(
      writes.put.map((r) => [r.topic, r.version]),
      [
        ["a", 2],
        ["c", 3],
      ],
    );
    assert.deepEqual(writes.deleted, ["b"]);
  });

  it("counts a topic key already in the batch as no extra write", () => {
    const batch = new TxnBatch({ maxOps: 4, maxBytes: 1e6 });
    const topics = { put: [record("a", 1)], deleted: [] };
    batch.add(op(1), topics, batch.cost(op(1), topics)); // head + op + a = 3
    const again = batch.cost(op(2), { put: [record("a", 2)], deleted: [] });
    assert.equal(again.writes, 1);
    assert.ok(batch.fits(again));
    batch.add(op(2), { put: [record("a", 2)], deleted: [] }, again);
    assert.ok(!batch.fits(batch.cost(op(3), { put: [], deleted: [] })), "5 writes > 4");
  });

  it("an empty batch takes an operation of any size", () => {
    const batch = new TxnBatch({ maxOps: 1, maxBytes: 1 });
    assert.ok(batch.fits(batch.cost(op(1), { put: [record("a", 1)], deleted: [] })));
  });
});
