import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Producer, type ProduceAck } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";

/**
 * Where messages without key or partition go, through a real cluster: sticky (the default) fills one
 * partition's batch at a time and so sends full batches over many partitions; round-robin spreads each
 * message.
 */
describe("producer: keyless messages (sticky and round-robin partitioning)", () => {
  let cluster: TestCluster;
  const PARTITIONS = 8;

  before(async () => {
    cluster = await startCluster({ sentinels: 1, brokers: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  const producerFor = (topic: string, partitioner?: "sticky" | "round-robin") =>
    new Producer({
      sentinels: cluster.sentinelUrls,
      topic,
      createTopic: { partitions: PARTITIONS, replicas: 1 },
      ...(partitioner ? { partitioner } : {}),
    });

  const byPartition = (acks: readonly ProduceAck[]) => {
    const out = new Map<number, ProduceAck[]>();
    for (const ack of acks) out.set(ack.partition, [...(out.get(ack.partition) ?? []), ack]);
    return out;
  };

  it("sticky (default): a burst fills whole batches, one partition after another", async () => {
    const producer = producerFor("sticky-burst");
    try {
      const values = Array.from({ length: 2000 }, (_, i) => `m${i}`);
      const acks = await Promise.all(values.map((value) => producer.send({ value })));
      const partitions = byPartition(acks);
      // 2,000 records, batches of at most 500 (maxBatchMessages): four partitions, 500 each.
      assert.equal(partitions.size, 4, `partitions used: ${[...partitions.keys()].join(",")}`);
      for (const [partition, list] of partitions) {
        assert.equal(list.length, 500, `partition ${partition}`);
        // Consecutive sends, consecutive offsets: one batch.
        const first = acks.indexOf(list[0] as ProduceAck);
        assert.deepEqual(
          list.map((a) => a.offset),
          list.map((_, i) => (list[0] as ProduceAck).offset + i),
        );
        assert.deepEqual(
          list.map((a) => acks.indexOf(a)),
          list.map((_, i) => first + i),
        );
      }
    } finally {
      await producer.close();
    }
  });

  it("sticky: once a batch is sent, the next messages go to the next partition; over time every partition gets its share", async () => {
    const producer = producerFor("sticky-waves");
    try {
      const waves: ProduceAck[][] = [];
      for (let w = 0; w < 2 * PARTITIONS; w++) {
        waves.push(
          await Promise.all(Array.from({ length: 50 }, (_, i) => producer.send({ value: `${w}:${i}` }))),
        );
      }
      const order = waves.map((wave) => {
        assert.equal(new Set(wave.map((a) => a.partition)).size, 1, "a wave is one batch");
        return (wave[0] as ProduceAck).partition;
      });
      for (let w = 1; w < order.length; w++) {
        assert.equal(order[w], ((order[w - 1] as number) + 1) % PARTITIONS, `wave ${w} moved on in turn`);
      }
      const counts = [...byPartition(waves.flat()).values()].map((list) => list.length);
      assert.deepEqual(counts, new Array<number>(PARTITIONS).fill(100), "an even spread");
    } finally {
      await producer.close();
    }
  });

  it("round-robin: each message goes to the next partition", async () => {
    const producer = producerFor("round-robin", "round-robin");
    try {
      const acks = await Promise.all(
        Array.from({ length: 2000 }, (_, i) => producer.send({ value: `r${i}` })),
      );
      const partitions = byPartition(acks);
      assert.equal(partitions.size, PARTITIONS);
      for (const list of partitions.values()) assert.equal(list.length, 2000 / PARTITIONS);
      for (let i = 1; i < acks.length; i++) {
        assert.equal(
          (acks[i] as ProduceAck).partition,
          ((acks[i - 1] as ProduceAck).partition + 1) % PARTITIONS,
        );
      }
    } finally {
      await producer.close();
    }
  });

  it("an unknown partitioner is refused when the producer is made", () => {
    assert.throws(
      () => new Producer({ sentinels: cluster.sentinelUrls, partitioner: "random" as "sticky" }),
      /partitioner must be "sticky" or "round-robin", got random/,
    );
  });
});
