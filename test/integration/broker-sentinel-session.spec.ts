import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/** A leader cut off from the sentinels for longer than the heartbeat TTL stops taking writes. */
describe("broker: leader fencing by the heartbeat TTL", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({ brokers: 1, sentinelArgs: ["--heartbeat-ttl", "2"] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("refuses produce while it cannot reach a sentinel, and takes writes again once it can", async () => {
    await cluster.createTopic("fenced", { partitions: 1, replicas: 1 });
    let id = 0n;
    const produce = () =>
      sendOnce(cluster.broker("b1").client, {
        topic: "fenced",
        partition: 0,
        producerId: "fence-test",
        records: [{ messageId: ++id, payload: text("x") }],
      });
    assert.equal((await produce()).acks[0]?.error, ProduceError.NONE);

    await cluster.killSentinel("s1");
    const refused = await waitFor(
      async () => {
        const ack = (await produce()).acks[0];
        return ack?.error === ProduceError.NOT_LEADER ? ack : undefined;
      },
      { what: "the leader to fence itself", timeoutMs: 6_000 },
    );
    assert.match(refused.errorMessage, /heartbeat TTL/);

    await cluster.restartSentinel("s1");
    await waitFor(async () => (await produce()).acks[0]?.error === ProduceError.NONE, {
      what: "writes to be accepted again",
      timeoutMs: 15_000,
    });
  });
});

/** Two sentinels: the broker moves to the other URL when one dies, and registers again when forgotten. */
describe("broker: sentinel session", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({ sentinels: 2, brokers: 1, sentinelArgs: ["--heartbeat-ttl", "2"] });
  });
  after(async () => {
    await cluster?.stop();
  });

  const produce = (id: bigint) =>
    sendOnce(cluster.broker("b1").client, {
      topic: "session",
      partition: 0,
      producerId: "session-test",
      records: [{ messageId: id, payload: text("x") }],
    });

  it("keeps its heartbeat through the other sentinel when the first one dies", async () => {
    await cluster.createTopic("session", { partitions: 1, replicas: 1 });
    await cluster.killSentinel("s1");
    // Twice the heartbeat TTL: a broker stuck on the dead sentinel would fence itself (and expire).
    const until = Date.now() + 4_000;
    for (let id = 1n; Date.now() < until; id++) {
      const ack = (await produce(id)).acks[0];
      assert.equal(ack?.error, ProduceError.NONE, ack?.errorMessage);
      await sleep(200);
    }
    const status = await cluster.sentinel().getClusterStatus({});
    assert.equal(status.brokers.find((b) => b.brokerId === "b1")?.status, BrokerStatus.HEALTHY);
  });

  it("registers again when the sentinels no longer know it", async () => {
    await cluster.sentinel().unregisterBroker({ brokerId: "b1" });
    await waitFor(
      async () => {
        const status = await cluster.sentinel().getClusterStatus({});
        return status.brokers.find((b) => b.brokerId === "b1")?.status === BrokerStatus.HEALTHY;
      },
      { what: "b1 to register again" },
    );
    await waitFor(async () => (await produce(1000n)).acks[0]?.error === ProduceError.NONE, {
      what: "b1 to lead its partition again",
    });
  });
});
