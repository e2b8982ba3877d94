import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/** A recognisable payload of `bytes` bytes for message `id`. */
function payload(id: bigint, bytes: number): Uint8Array {
  return text(`m-${id}-`.padEnd(bytes, "x"));
}

/**
 * Failover must not lose acknowledged records when the first surviving replica is behind: the sentinel
 * asks the survivors how far their logs go and makes the most up-to-date one the leader.
 *
 * Layout [L, F1, F2]. F1 is paused, so acks=all records written next are acknowledged by L and F2 once
 * F1 drops out of the in-sync set. L is killed and F1 resumed at once: F1 is alive, healthy and
 * behind, and it comes first in the replica list, so "first survivor leads" would lose those records.
 */
describe("sentinel: a new partition leader is the most up-to-date surviving replica", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      sentinelArgs: ["--heartbeat-ttl", "4", "--probe-timeout", "1000"],
      brokerArgs: ["--fsync", "always", "--replica-lag-max", "800"],
      logLevel: process.env.GOULETTE_TEST_LOG ?? "warn",
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("elects the survivor holding every acknowledged record, not the first one", async () => {
    const layout = await cluster.createTopic("choice", { partitions: 1, replicas: 3 });
    const [leader, behind, upToDate] = layout.partitions[0]?.replicas ?? [];
    assert.ok(leader && behind && upToDate, "three replicas");

    const produce = async (from: number, count: number, payloadBytes = 16) => {
      const ids = Array.from({ length: count }, (_, i) => BigInt(from + i));
      const res = await sendOnce(
        cluster.broker(leader).client,
        {
          topic: "choice",
          partition: 0,
          producerId: "choice-producer",
          acks: Acks.ALL,
          records: ids.map((id) => ({ messageId: id, payload: payload(id, payloadBytes) })),
        },
        15_000,
      );
      assert.deepEqual(
        res.acks.map((a) => a.error),
        ids.map(() => ProduceError.NONE),
        "acknowledged by every in-sync replica",
      );
      return ids;
    };

    const acked = await produce(1, 20);
    cluster.broker(behind).pause();
    try {
      // Acknowledged once `behind` falls out of the in-sync set (replica-lag-max): on L and F2 only.
      // More than HTTP/2 flow control lets the leader push into the paused follower's socket buffers
      // (a response already in flight would reach it after SIGCONT), so it really stays behind.
      for (let from = 21; from < 101; from += 10) acked.push(...(await produce(from, 10, 32 * 1024)));
      await cluster.killBroker(leader, "SIGKILL");
    } finally {
      cluster.broker(behind).resume();
    }

    const after = await waitFor(
      async () => {
        const now = await cluster.layout("choice");
        const p = now.partitions[0];
        return p && p.leader !== leader && !p.replicas.includes(leader) ? p : undefined;
      },
      { timeoutMs: 30_000, what: `partition 0 to move off ${leader}` },
    );
    assert.equal(after.leader, upToDate, `the up-to-date replica ${upToDate} leads, not ${behind}`);
    assert.equal(after.replicas[1], behind, "the lagging survivor follows");

    const client = cluster.broker(upToDate).client;
    const messages = await waitFor(
      async () => {
        const got = await pullMessages(client, { topic: "choice", partition: 0, offset: 0n }, acked.length);
        return got.length >= acked.length ? got : undefined;
      },
      { timeoutMs: 20_000, what: "every acknowledged record to be readable from the new leader" },
    );
    assert.deepEqual(
      messages.slice(0, acked.length).map((m) => [m.messageId, untext(m.payload)]),
      acked.map((id) => [id, untext(payload(id, id <= 20n ? 16 : 32 * 1024))]),
    );
  });
});
