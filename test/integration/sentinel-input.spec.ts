import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";

/** Bad input gets a clear error with the right code, and changes nothing. */
describe("sentinel input validation", () => {
  let etcd: TestEtcd;
  let s: InProcessSentinel;

  before(async () => {
    etcd = await startEtcd();
    s = await startInProcessSentinel(etcd, "v1");
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    await s.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:30001" });
    await s.client.registerBroker({ brokerId: "b2", address: "127.0.0.1:30002" });
    await s.client.getBrokers({ topic: "existing", replicaCount: 2 });
  });
  after(async () => {
    await s.stop();
    await etcd.stop();
  });

  const unchanged = async (action: () => Promise<unknown>, code: Code, message: RegExp) => {
    const before = await s.client.getClusterStatus({});
    const err = await action().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    assert.equal(Code[err.code], Code[code], `code for: ${err.rawMessage}`);
    assert.match(err.rawMessage, message);
    const afterStatus = await s.client.getClusterStatus({});
    assert.equal(afterStatus.oplogHeadId, before.oplogHeadId, "no operation appended");
    assert.equal(afterStatus.stateDigest, before.stateDigest, "state unchanged");
  };

  it("rejects empty, oversized and invalid topic names", async () => {
    await unchanged(
      () => s.client.getBrokers({ topic: "", replicaCount: 1 }),
      Code.InvalidArgument,
      /topic name is empty/,
    );
    await unchanged(
      () => s.client.getBrokers({ topic: "x".repeat(201), replicaCount: 1 }),
      Code.InvalidArgument,
      /201 characters long; the limit is 200/,
    );
    await unchanged(
      () => s.client.getBrokers({ topic: "a/b", replicaCount: 1 }),
      Code.InvalidArgument,
      /contains "\/"/,
    );
    await unchanged(
      () => s.client.getBrokers({ topic: "..", replicaCount: 1 }),
      Code.InvalidArgument,
      /reserved/,
    );
    await unchanged(
      () => s.client.getBrokers({ topic: "t#1", replicaCount: 1 }),
      Code.InvalidArgument,
      /contains "#"/,
    );
  });

  it("rejects replica_count above the number of brokers", async () => {
    await unchanged(
      () => s.client.getBrokers({ topic: "fresh", replicaCount: 3 }),
      Code.FailedPrecondition,
      /replica_count 3 .* exceeds the 2 healthy broker/,
    );
    await unchanged(
      () => s.client.getBrokers({ topic: "fresh", replicaCount: 1, partitions: 5000 }),
      Code.InvalidArgument,
      /partitions must be between 1 and 1024/,
    );
  });

  it("takes replica_count 0 as the sentinel's default: 3, or fewer healthy brokers", async () => {
    // One sentinel, 2 healthy brokers: 2 replicas per partition.
    const res = await s.client.getBrokers({ topic: "defaulted", replicaCount: 0, partitions: 2 });
    assert.deepEqual(
      res.partitions.map((p) => p.replicas.length),
      [2, 2],
    );
  });

  it("rejects unknown broker ids", async () => {
    await unchanged(
      () => s.client.getBrokers({ topic: "existing", unreachableBrokers: ["nope"] }),
      Code.NotFound,
      /unknown broker 'nope'/,
    );
    await unchanged(
      () => s.client.unregisterBroker({ brokerId: "nope" }),
      Code.NotFound,
      /'nope' is not registered/,
    );
    await unchanged(
      () => s.client.registerBroker({ brokerId: "b 3", address: "127.0.0.1:1" }),
      Code.InvalidArgument,
      /broker_id/,
    );
    await unchanged(
      () => s.client.registerBroker({ brokerId: "b3", address: "nowhere" }),
      Code.InvalidArgument,
      /not host:port/,
    );
  });

  it("rejects malformed JSON and wrong types over Connect (HTTP/1.1)", async () => {
    const post = (body: string) =>
      fetch(`${s.sentinel.url}/goulette.v1.SentinelService/GetBrokers`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const before = await s.client.getClusterStatus({});
    for (const body of [
      '{"topic":',
      '{"topic": 5}',
      '{"replicaCount": -1, "topic": "x"}',
      "[]",
      '{"topic":"x","nope":1}',
    ]) {
      const res = await post(body);
      assert.equal(res.status, 400, `HTTP status for ${body}`);
      const json = (await res.json()) as { code: string; message: string };
      assert.equal(json.code, "invalid_argument", `code for ${body}`);
      assert.ok(json.message.length > 10, "a message a person can read");
    }
    const afterStatus = await s.client.getClusterStatus({});
    assert.equal(afterStatus.stateDigest, before.stateDigest);
  });

  it("serves Connect JSON over HTTP/1.1 to plain HTTP clients", async () => {
    const res = await fetch(`${s.sentinel.url}/goulette.v1.SentinelService/GetBrokers`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "existing" }),
    });
    assert.equal(res.status, 200);
    const json = (await res.json()) as { partitions: { replicas: string[] }[] };
    assert.equal(json.partitions.length, 3);
  });
});
