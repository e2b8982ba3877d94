import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
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
