import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  COMMAND_TYPES,
  decodeOperation,
  encodeOperation,
  type Command,
  type Operation,
} from "../../src/fsm/operations.js";

const T0 = 1_700_000_000_000;

/** One command of every type, with nested data, so the round trip covers every shape. */
const COMMANDS: Command[] = [
  { type: "registerBroker", data: { brokerId: "b1", address: "10.0.0.1:7000" } },
  { type: "addBrokerToHashRing", data: { brokerId: "b1", address: "[::1]:7000" } },
  {
    type: "unregisterBroker",
    data: {
      brokerId: "b2",
      changes: [{ topic: "orders", partitions: [{ partition: 0, replicas: ["b1", "b3"] }] }],
    },
  },
  {
    type: "generateTopicReplicas",
    data: {
      topic: "orders.v1_eu-west",
      replicaCount: 2,
      partitions: [
        { partition: 0, replicas: ["b1", "b2"] },
        { partition: 1, replicas: [] },
      ],
    },
  },
  {
    type: "handleUnreachableBrokers",
    data: {
      brokerIds: ["b2", "b3"],
      reason: "pod-not-ready",
      changes: [{ topic: "orders", partitions: [{ partition: 1, replicas: ["b1"] }] }],
    },
  },
  { type: "reassignPartitions", data: { changes: [] } },
  { type: "deleteTopic", data: { topic: "orders" } },
  { type: "configureRing", data: { virtualNodes: 150 } },
  {
    type: "putAcl",
    data: { principal: "application:orders", resource: "orders.*", permissions: ["read", "write"] },
  },
  { type: "deleteAcl", data: { principal: "*", resource: "news" } },
];

const ops: Operation[] = COMMANDS.map((command, i) => ({
  ...command,
  id: i + 1,
  timestamp: T0 + i,
  leaderId: "sentinel-0",
}));

/** Asserts decodeOperation throws a plain Error that quotes (the start of) the offending text. */
function assertRejected(text: string, pattern: RegExp): void {
  assert.throws(
    () => decodeOperation(text),
    (err: unknown) => {
      assert.ok(err instanceof Error, "throws an Error");
      assert.match(err.message, pattern);
      assert.ok(err.message.includes(text.slice(0, 40)), `message quotes the input: ${err.message}`);
      return true;
    },
    text,
  );
}

describe("encodeOperation / decodeOperation", () => {
  it("covers every command type in the test fixtures", () => {
    assert.deepEqual(new Set(ops.map((op) => op.type)), new Set(COMMAND_TYPES));
  });

  it("round-trips every command type unchanged", () => {
    for (const op of ops) {
      const text = encodeOperation(op);
      assert.equal(typeof text, "string");
      assert.deepEqual(decodeOperation(text), op, op.type);
      // Stable: encoding the decoded operation gives the same bytes (what etcd stores).
      assert.equal(encodeOperation(decodeOperation(text)), text, op.type);
    }
  });

  it("writes the envelope fields and nothing else", () => {
    const op = Object.assign(structuredClone(ops[0] as Operation), { extra: "not persisted" });
    const parsed = JSON.parse(encodeOperation(op)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed).sort(), ["data", "id", "leaderId", "timestamp", "type"]);
    assert.deepEqual(parsed.data, { brokerId: "b1", address: "10.0.0.1:7000" });
  });

  it("rejects text that is not JSON, quoting it", () => {
    for (const text of ["", "{", "not json", "{'id':1}", "\u0000\u0001binary"]) {
      assertRejected(text, /not JSON/);
    }
  });

  it("truncates a long offending text in the message", () => {
    const text = "x".repeat(10_000);
    assert.throws(
      () => decodeOperation(text),
      (err: unknown) => err instanceof Error && err.message.length < 400,
    );
  });

  it("rejects JSON of the wrong shape", () => {
    const valid = { id: 1, type: "deleteTopic", timestamp: T0, leaderId: "s", data: { topic: "t" } };
    const bad: Record<string, unknown> = {
      null: null,
      number: 42,
      string: "registerBroker",
      array: [valid],
      "no id": { ...valid, id: undefined },
      "string id": { ...valid, id: "1" },
      "no type": { ...valid, type: undefined },
      "unknown type": { ...valid, type: "dropDatabase" },
      "type of another case": { ...valid, type: "DeleteTopic" },
      "no data": { ...valid, data: undefined },
      "string data": { ...valid, data: "t" },
    };
    for (const [name, value] of Object.entries(bad)) {
      const text = JSON.stringify(value);
      assert.throws(() => decodeOperation(text), /malformed/, name);
    }
  });

  it("rejects a configureRing whose virtual-node count the hash ring would refuse", () => {
    const envelope = { id: 1, type: "configureRing", timestamp: T0, leaderId: "s" };
    for (const virtualNodes of [0, -1, 1.5, "150", null, 10_001]) {
      assertRejected(JSON.stringify({ ...envelope, data: { virtualNodes } }), /virtualNodes/);
    }
    assertRejected(JSON.stringify({ ...envelope, data: {} }), /virtualNodes/);
    for (const virtualNodes of [1, 10_000]) {
      const op = decodeOperation(JSON.stringify({ ...envelope, data: { virtualNodes } }));
      assert.deepEqual(op.data, { virtualNodes });
    }
  });

  it("rejects an envelope whose data is null", () => {
    assertRejected(
      JSON.stringify({ id: 1, type: "registerBroker", timestamp: T0, leaderId: "s", data: null }),
      /data must be an object/,
    );
  });
});
