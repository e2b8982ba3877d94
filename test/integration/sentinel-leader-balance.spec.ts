import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Producer } from "../../src/index.js";
import { pullMessages, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster, type TopicLayout } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const TOPIC = "balanced";

const leaderCounts = (layout: TopicLayout) => {
  const counts = new Map<string, number>();
  for (const p of layout.partitions) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
  return counts;
};

/**
 * Leadership within a topic is spread over the brokers when the topic is created, and after a broker
 * fails and returns, the leader hands leadership back to it once it is in sync — without losing or
 * duplicating an acknowledged message.
 */
describe("sentinel: partition leaders spread evenly within a topic", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      sentinelArgs: ["--heartbeat-ttl", "3", "--leader-balance-interval", "500"],
      brokerArgs: ["--min-insync-replicas", "2"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("a new topic's leaders are on three brokers; after a failover and return they are again", async () => {
    const created = await cluster.createTopic(TOPIC, { partitions: 3, replicas: 3 });
    assert.deepEqual(
      [...leaderCounts(created).values()],
      [1, 1, 1],
      created.partitions.map((p) => p.leader).join(","),
    );

    const producer = new Producer({ sentinels: cluster.sentinelUrls, topic: TOPIC, acks: "all" });
    const acked = new Set<string>();
    let stop = false;
    const sending = (async () => {
      for (let i = 0; !stop && i < 20_000; i++) {
        const value = `m-${i}`;
        await producer.send({ key: `k-${i % 30}`, value });
        acked.add(value);
      }
    })();
    await waitFor(() => acked.size >= 100, { what: "100 acknowledged messages" });

    const victim = created.partitions[0]!.leader;
    await cluster.killBroker(victim);
    const failedOver = await waitFor(
      async () => {
        const layout = await cluster.layout(TOPIC);
        return layout.partitions.every((p) => p.leader !== victim) ? layout : undefined;
      },
      { what: `leadership to leave ${victim}`, timeoutMs: 30_000 },
    );
    assert.ok(
      Math.max(...leaderCounts(failedOver).values()) >= 2,
      "a survivor leads two partitions meanwhile",
    );
    const ackedDuringFailover = acked.size;

    await cluster.restartBroker(victim);
    const rebalanced = await waitFor(
      async () => {
        const layout = await cluster.layout(TOPIC);
        const counts = leaderCounts(layout);
        return counts.size === 3 && [...counts.values()].every((n) => n === 1) ? layout : undefined;
      },
      { what: `${victim} to lead one partition again`, timeoutMs: 60_000 },
    );
    assert.ok(rebalanced.partitions.some((p) => p.leader === victim));
    await waitFor(() => acked.size >= ackedDuringFailover + 100, {
      what: "100 more acks after the hand-back",
    });
    stop = true;
    await sending;
    await producer.close();

    // Every acknowledged message is stored once, on the partitions' current leaders.
    const seen = new Map<string, number>();
    for (const p of rebalanced.partitions) {
      const client = cluster.broker(p.leader).client;
      const [first] = await pullMessages(client, { topic: TOPIC, partition: p.partition, offset: 0n }, 1);
      const hw = Number(first?.highWatermark ?? 0n);
      const messages =
        hw === 0 ? [] : await pullMessages(client, { topic: TOPIC, partition: p.partition, offset: 0n }, hw);
      assert.equal(messages.length, hw, `partition ${p.partition}: every record below the high watermark`);
      for (const m of messages) seen.set(untext(m.payload), (seen.get(untext(m.payload)) ?? 0) + 1);
    }
    for (const value of acked) assert.equal(seen.get(value), 1, `${value}: acknowledged, stored once`);
    const duplicated = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(duplicated, [], "no message stored twice");
  });
});
