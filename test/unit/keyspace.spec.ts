import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createKeyspace, OPERATION_ID_DIGITS } from "../../src/coordination/keyspace.js";

describe("createKeyspace", () => {
  it("lays out the contract keys under /goulette by default", () => {
    const ks = createKeyspace();
    assert.equal(ks.prefix, "/goulette");
    assert.equal(ks.operationsPrefix, "/goulette/operations/");
    assert.equal(ks.head, "/goulette/increment/operation");
    assert.equal(ks.topicsPrefix, "/goulette/topics/");
    assert.equal(ks.topic("orders"), "/goulette/topics/orders");
    assert.equal(ks.brokersPrefix, "/goulette/brokers/");
    assert.equal(ks.broker("broker-0"), "/goulette/brokers/broker-0");
    assert.equal(ks.electionPrefix, "/goulette/election/leader/");
    // etcd3's Election appends "election/<name>/" to its namespace: the two must meet.
    assert.equal(`${ks.electionNamespace}election/${ks.electionName}/`, ks.electionPrefix);
    assert.equal(ks.snapshotMeta, "/goulette/snapshot/meta");
  });

  it("honours a custom prefix and drops trailing slashes", () => {
    for (const prefix of ["/prod/mq", "/prod/mq/", "/prod/mq///"]) {
      const ks = createKeyspace(prefix);
      assert.equal(ks.prefix, "/prod/mq", prefix);
      assert.equal(ks.operation(7), "/prod/mq/operations/00000000000000000007", prefix);
      assert.equal(ks.topic("t"), "/prod/mq/topics/t", prefix);
      assert.equal(ks.head, "/prod/mq/increment/operation", prefix);
    }
  });

  it("keys operations with 20 zero-padded digits", () => {
    const ks = createKeyspace();
    assert.equal(OPERATION_ID_DIGITS, 20);
    assert.equal(ks.operation(1), "/goulette/operations/00000000000000000001");
    assert.equal(ks.operation(1234567), "/goulette/operations/00000000000001234567");
    for (const id of [0, 1, 9, 10, 99_999, Number.MAX_SAFE_INTEGER]) {
      const digits = ks.operation(id).slice(ks.operationsPrefix.length);
      assert.equal(digits.length, 20, String(id));
      assert.match(digits, /^\d{20}$/);
    }
  });

  it("sorts operation keys by id, so an etcd range read returns the log in order", () => {
    const ks = createKeyspace();
    const ids = [1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 10_000, 123_456_789, Number.MAX_SAFE_INTEGER];
    const keys = [...ids].reverse().map((id) => ks.operation(id));
    const sorted = [...keys].sort();
    assert.deepEqual(
      sorted.map((key) => ks.operationId(key)),
      ids,
    );
  });

  it("parses the id back out of an operation key", () => {
    for (const prefix of ["/goulette", "/other/prefix"]) {
      const ks = createKeyspace(prefix);
      for (const id of [0, 1, 42, 10_000, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
        assert.equal(ks.operationId(ks.operation(id)), id, `${prefix} ${id}`);
      }
    }
  });

  it("returns undefined for keys that are not operations", () => {
    const ks = createKeyspace();
    const notOperations = [
      "",
      "/goulette/operations/",
      "/goulette/operations",
      "/goulette/operations/12a",
      "/goulette/operations/-1",
      "/goulette/operations/1.5",
      "/goulette/operations/00000000000000000001/extra",
      "/goulette/operations/ 1",
      "/goulette/increment/operation",
      "/goulette/topics/00000000000000000001",
      "/other/operations/00000000000000000001",
      "/goulette-b/operations/00000000000000000001",
      "goulette/operations/00000000000000000001",
    ];
    for (const key of notOperations) assert.equal(ks.operationId(key), undefined, JSON.stringify(key));
    // Another prefix's keyspace does not claim this one's operations.
    assert.equal(createKeyspace("/other").operationId(ks.operation(5)), undefined);
  });

  it("keys snapshot chunks under their snapshot, in order", () => {
    const ks = createKeyspace();
    assert.equal(ks.snapshotChunksRoot, "/goulette/snapshot/chunks/");
    assert.equal(ks.snapshotChunksPrefix(42), "/goulette/snapshot/chunks/00000000000000000042/");
    assert.equal(ks.snapshotChunk(42, 3), "/goulette/snapshot/chunks/00000000000000000042/000003");
    const chunks = [0, 1, 9, 10, 100, 999].map((n) => ks.snapshotChunk(42, n));
    assert.deepEqual([...chunks].reverse().sort(), chunks);
    for (const key of chunks) {
      assert.ok(key.startsWith(ks.snapshotChunksPrefix(42)));
      assert.ok(key.startsWith(ks.snapshotChunksRoot));
      assert.ok(
        !key.startsWith(ks.snapshotChunksPrefix(4)),
        "snapshot 4's prefix is not a prefix of 42's keys",
      );
    }
  });
});
