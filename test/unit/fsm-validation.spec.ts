import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors.js";
import {
  MAX_PARTITIONS,
  MAX_REPLICA_COUNT,
  MAX_TOPIC_NAME_LENGTH,
  validateAddress,
  validateBrokerId,
  validateTopicName,
  validateTopicShape,
} from "../../src/fsm/validation.js";

type ErrorClass = typeof InvalidArgumentError | typeof FailedPreconditionError;

/** Asserts `fn` throws exactly `kind` (with its Connect code) and a message matching `pattern`. */
function assertFails(fn: () => void, kind: ErrorClass, pattern: RegExp, what: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof kind, `${what}: expected ${kind.name}, got ${String(err)}`);
      assert.equal(err.code, kind === InvalidArgumentError ? Code.InvalidArgument : Code.FailedPrecondition);
      assert.equal(err.retryable, false);
      assert.match(err.message, pattern, what);
      return true;
    },
    what,
  );
}

describe("validateTopicName", () => {
  it("accepts letters, digits, '.', '_' and '-' up to the length limit", () => {
    for (const name of [
      "t",
      "orders",
      "Orders.v1_eu-west-2",
      "...",
      ".hidden",
      "a".repeat(MAX_TOPIC_NAME_LENGTH),
    ]) {
      assert.doesNotThrow(() => validateTopicName(name), name);
    }
  });

  it("rejects an empty name", () => {
    assertFails(() => validateTopicName(""), InvalidArgumentError, /empty/, "empty");
  });

  it("rejects a name over the limit, saying both lengths", () => {
    const name = "a".repeat(MAX_TOPIC_NAME_LENGTH + 1);
    assertFails(
      () => validateTopicName(name),
      InvalidArgumentError,
      new RegExp(`${MAX_TOPIC_NAME_LENGTH + 1} characters.*limit is ${MAX_TOPIC_NAME_LENGTH}`),
      "too long",
    );
  });

  it("rejects '.' and '..' as reserved (they are directory names)", () => {
    for (const name of [".", ".."]) {
      assertFails(() => validateTopicName(name), InvalidArgumentError, /reserved/, name);
    }
  });

  it("rejects bad characters, naming the first one", () => {
    const cases: Array<[string, string]> = [
      ["orders/eu", "/"],
      ["a b", " "],
      ["tópico", "ó"],
      ["x#0", "#"],
      ["emoji🙂", "🙂"],
      ["tab\there", "\t"],
      ["new\nline", "\n"],
      ["../etc", "/"],
      ["a:b", ":"],
    ];
    for (const [name, bad] of cases) {
      assertFails(
        () => validateTopicName(name),
        InvalidArgumentError,
        new RegExp(`contains ${escape(JSON.stringify(bad))}.*letters, digits`),
        name,
      );
    }
  });
});

describe("validateTopicShape", () => {
  it("accepts a shape the cluster can host", () => {
    assert.doesNotThrow(() => validateTopicShape("t", 1, 1, 1));
    assert.doesNotThrow(() => validateTopicShape("t", MAX_PARTITIONS, 3, 3));
    assert.doesNotThrow(() => validateTopicShape("t", 3, MAX_REPLICA_COUNT, 20));
  });

  it("rejects replica_count 0 (and below) as an invalid argument naming the topic", () => {
    for (const replicas of [0, -1]) {
      assertFails(
        () => validateTopicShape("orders", 3, replicas, 5),
        InvalidArgumentError,
        new RegExp(`replica_count must be at least 1.*'orders', got ${replicas}`),
        `replica_count ${replicas}`,
      );
    }
    // Even on an empty cluster, 0 is a bad argument, not a precondition.
    assertFails(
      () => validateTopicShape("orders", 3, 0, 0),
      InvalidArgumentError,
      /at least 1/,
      "empty cluster",
    );
  });

  it("rejects a replica_count above the maximum", () => {
    assertFails(
      () => validateTopicShape("t", 3, MAX_REPLICA_COUNT + 1, 100),
      InvalidArgumentError,
      new RegExp(`at most ${MAX_REPLICA_COUNT}, got ${MAX_REPLICA_COUNT + 1}`),
      "too many replicas",
    );
  });

  it("rejects partition counts out of range", () => {
    for (const partitions of [0, -3, MAX_PARTITIONS + 1]) {
      assertFails(
        () => validateTopicShape("t", partitions, 1, 3),
        InvalidArgumentError,
        new RegExp(`partitions must be between 1 and ${MAX_PARTITIONS}, got ${partitions}`),
        `partitions ${partitions}`,
      );
    }
  });

  it("rejects replica_count above the healthy brokers as a failed precondition", () => {
    assertFails(
      () => validateTopicShape("orders", 3, 3, 2),
      FailedPreconditionError,
      /replica_count 3 for topic 'orders' exceeds the 2 healthy broker/,
      "3 replicas on 2 brokers",
    );
    assertFails(
      () => validateTopicShape("orders", 1, 1, 0),
      FailedPreconditionError,
      /exceeds the 0/,
      "no brokers",
    );
  });
});

describe("validateAddress", () => {
  it("accepts host:port with a name, IPv4 or bracketed IPv6", () => {
    for (const address of [
      "localhost:7000",
      "broker-0.broker.goulette.svc.cluster.local:9092",
      "10.0.0.1:1",
      "127.0.0.1:65535",
      "[::1]:7000",
      "[fe80::1:2]:80",
    ]) {
      assert.doesNotThrow(() => validateAddress(address), address);
    }
  });

  it("rejects anything that is not host:port, quoting it", () => {
    for (const address of [
      "",
      "localhost",
      "localhost:",
      ":7000",
      "localhost:0",
      "localhost:65536",
      "localhost:123456",
      "localhost:port",
      "::1:7000",
      "http://localhost:7000",
      "host name:7000",
      "host:70 00",
      "host:7000/path",
      "[::1]",
    ]) {
      assertFails(
        () => validateAddress(address),
        InvalidArgumentError,
        new RegExp(`${escape(JSON.stringify(address))} is not host:port`),
        address,
      );
    }
  });
});

describe("validateBrokerId", () => {
  it("accepts 1-128 letters, digits, '.', '_' and '-'", () => {
    for (const id of ["b", "broker-0", "goulette-broker-2.goulette", "B_9", "x".repeat(128)]) {
      assert.doesNotThrow(() => validateBrokerId(id), id);
    }
  });

  it("rejects an empty id", () => {
    assertFails(() => validateBrokerId(""), InvalidArgumentError, /broker_id is empty/, "empty");
  });

  it("rejects bad characters and ids over 128 characters", () => {
    for (const id of ["x".repeat(129), "broker/0", "broker 0", "broker#0", "brøker", "a\nb"]) {
      assertFails(
        () => validateBrokerId(id),
        InvalidArgumentError,
        /broker_id .* is invalid: use 1-128 letters/,
        JSON.stringify(id),
      );
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
