import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Consumer,
  Producer,
  partitionForKey,
  type ClientEvent,
  type ConsumedMessage,
  type ProduceAck,
} from "../../src/index.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The SDK against real processes (etcd, 3 sentinels, 3 brokers): a 100,000-message round trip, then the
 * same kind of run with a broker killed, and with sentinels killed, in the middle. The failure runs use
 * 30,000 messages each to keep the suite quick; what they check does not depend on the volume.
 */
describe("client SDK: producer/consumer round trips through a cluster", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({ sentinels: 3, brokers: 3, sentinelArgs: ["--heartbeat-ttl", "3"] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("100,000 messages over 3 partitions: each group consumes every message exactly once, in order per partition", async () => {
    const run = await roundTrip(cluster, { topic: "orders", count: 100_000, groups: ["billing", "audit"] });
    run.verify();
    // Keys are spread by the stable hash: every message sits in its key's partition.
    for (const [seq, ack] of run.acks) assert.equal(ack.partition, partitionForKey(keyOf(seq), 3));
    // The groups committed the end of every partition on the leaders (so a restart resumes there).
    const layout = await cluster.layout("orders");
    for (const p of layout.partitions) {
      const end = run.ends.get(p.partition) ?? 0;
      assert.ok(end > 20_000, `partition ${p.partition} holds a third of the messages, got ${end}`);
      for (const group of ["billing", "audit"]) {
        const res = await cluster.broker(p.leader).client.getCommittedOffset({
          topic: "orders",
          partition: p.partition,
          consumerGroup: group,
        });
        assert.equal(Number(res.offset), end, `${group} committed the end of partition ${p.partition}`);
      }
    }
  });

  it("a broker killed mid-run is reported unreachable, its partitions get a new leader, nothing acknowledged is lost", async () => {
    const topic = "payments";
    const before = await cluster.createTopic(topic, { partitions: 3, replicas: 3 });
    const victim = (before.partitions[0] as { leader: string }).leader;
    const run = await roundTrip(cluster, {
      topic,
      count: 30_000,
      groups: ["ledger"],
      during: async (progress) => {
        await waitFor(() => progress.acked() >= 10_000, { timeoutMs: 60_000, what: "a third of the acks" });
        await cluster.killBroker(victim);
      },
    });
    run.verify();
    assert.ok(
      run.producerStats.unreachableBrokers.includes(victim),
      `the producer reported ${victim} unreachable (it reported ${run.producerStats.unreachableBrokers.join(",") || "none"})`,
    );
    assert.ok(run.producerStats.unreachableReports >= 1, "GetBrokers carried unreachable_brokers");
    assert.ok(
      run.events.some(
        (e) => e.type === "assignment" && e.reported.includes(victim) && !e.leaders.includes(victim),
      ),
      "an assignment without the killed broker came back for the report",
    );
    const afterKill = await cluster.layout(topic);
    for (const p of afterKill.partitions) {
      assert.notEqual(p.leader, victim, `partition ${p.partition} was reassigned away from ${victim}`);
      assert.ok(!p.replicas.includes(victim), `partition ${p.partition} no longer lists ${victim}`);
    }
    // A new group reading the whole topic finds exactly the acknowledged messages.
    const reread = await consumeAll(cluster, topic, "reread", run.count, []);
    assertExactlyOnce(reread, run.count, run.acks);
    await cluster.restartBroker(victim);
  });

  it("sentinels killed mid-run (the one in use and the leader): clients move to another sentinel, the run completes", async () => {
    const topic = "shipments";
    // The broker killed by the previous test is back: wait until every sentinel counts it healthy again.
    await waitFor(
      async () => {
        for (const s of cluster.sentinels.values()) {
          const res = await s.client.getClusterStatus({});
          if (res.brokers.filter((b) => b.status === BrokerStatus.HEALTHY).length < 3) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, what: "3 healthy brokers on every sentinel" },
    );
    await cluster.createTopic(topic, { partitions: 3, replicas: 3 });
    const status = await cluster.sentinel().getClusterStatus({});
    const leaderUrl = status.leaderUrl;
    const first = cluster.sentinelUrls[0] as string;
    const run = await roundTrip(cluster, {
      topic,
      count: 30_000,
      groups: ["tracking"],
      during: async (progress) => {
        await waitFor(() => progress.acked() >= 10_000, { timeoutMs: 60_000, what: "a third of the acks" });
        // The first sentinel of the clients' list (the one they use) and the leader go down...
        for (const [id, s] of cluster.sentinels) {
          if (s.url === first || s.url === leaderUrl) await cluster.killSentinel(id);
        }
        // ...then a partition leader dies, so the clients must ask a sentinel where its partitions went.
        const layout = await cluster.layout(topic);
        await cluster.killBroker((layout.partitions[1] as { leader: string }).leader);
      },
    });
    run.verify();
    assert.ok(run.producerStats.sentinelFailovers >= 1, "the producer moved to another sentinel");
    assert.ok(run.producerStats.unreachableReports >= 1, "and reported the dead broker through it");
  });
});

const keyOf = (seq: number) => `customer-${seq % 101}`;

interface RoundTripOptions {
  topic: string;
  count: number;
  groups: string[];
  /** Runs while messages flow (kill something). */
  during?: (progress: { acked: () => number }) => Promise<void>;
}

interface RoundTrip {
  count: number;
  /** seq → its ack. */
  acks: Map<number, ProduceAck>;
  /** partition → messages in it (its end offset: the topic is new). */
  ends: Map<number, number>;
  consumed: Map<string, ConsumedMessage[]>;
  producerStats: ReturnType<Producer["stats"]>;
  events: ClientEvent[];
  verify(): void;
}

/** Produces `count` keyed messages while one consumer per group reads them; returns what happened. */
async function roundTrip(cluster: TestCluster, options: RoundTripOptions): Promise<RoundTrip> {
  const { topic, count } = options;
  const events: ClientEvent[] = [];
  const producer = new Producer({
    sentinels: cluster.sentinelUrls,
    topic,
    createTopic: { partitions: 3, replicas: 3 },
    onEvent: (e) => events.push(e),
  });
  const acks = new Map<number, ProduceAck>();
  const failures: unknown[] = [];
  const produce = async () => {
    const pending: Promise<void>[] = [];
    for (let seq = 0; seq < count; seq++) {
      await producer.waitForRoom();
      pending.push(
        producer.send({ key: keyOf(seq), value: String(seq) }).then(
          (ack) => void acks.set(seq, ack),
          (err: unknown) => void failures.push(err),
        ),
      );
    }
    await Promise.all(pending);
    await producer.close();
  };
  const consumed = new Map<string, ConsumedMessage[]>();
  try {
    await Promise.all([
      produce(),
      ...options.groups.map(async (group) =>
        consumed.set(group, await consumeAll(cluster, topic, group, count, events)),
      ),
      options.during?.({ acked: () => acks.size }),
    ]);
  } catch (err) {
    const summary = events.map((e) => `${e.type}${"reason" in e ? `:${e.reason}` : ""}`).slice(-40);
    throw new Error(`round trip of ${topic} failed: ${String(err)}\nlast events: ${summary.join(" ")}`, {
      cause: err,
    });
  } finally {
    await producer.close();
  }
  const ends = new Map<number, number>();
  for (const ack of acks.values()) ends.set(ack.partition, (ends.get(ack.partition) ?? 0) + 1);
  return {
    count,
    acks,
    ends,
    consumed,
    producerStats: producer.stats(),
    events,
    verify() {
      assert.deepEqual(failures, [], "every send was acknowledged");
      assert.equal(acks.size, count);
      assertAcksInSendOrder(acks);
      for (const [group, messages] of consumed) {
        assert.equal(messages.length, count, `group ${group} received ${count} messages`);
        assertExactlyOnce(messages, count, acks);
      }
    },
  };
}

/** Reads `count` messages of a new group from the beginning (fails after a deadline). */
async function consumeAll(
  cluster: TestCluster,
  topic: string,
  group: string,
  count: number,
  events: ClientEvent[],
): Promise<ConsumedMessage[]> {
  const consumer = new Consumer({
    sentinels: cluster.sentinelUrls,
    topic,
    group,
    from: "earliest",
    createTopic: { partitions: 3, replicas: 3 },
    onEvent: (e) => events.push(e),
  });
  const messages: ConsumedMessage[] = [];
  const deadline = Date.now() + 120_000;
  try {
    while (messages.length < count) {
      const message = await consumer.receive({ timeoutMs: Math.max(1, deadline - Date.now()) });
      if (message === undefined) {
        throw new Error(
          `group ${group} received ${messages.length} of ${count} messages before the deadline`,
        );
      }
      messages.push(message);
    }
    // No extra message may follow (a duplicate would).
    const extra = await consumer.receive({ timeoutMs: 300 });
    assert.equal(extra, undefined, `group ${group} received a message beyond the ${count} produced`);
    await consumer.commit();
  } finally {
    await consumer.close();
  }
  return messages;
}

/** Per partition, the acks' offsets rise with the send order: the log holds the messages in send order. */
function assertAcksInSendOrder(acks: Map<number, ProduceAck>): void {
  const last = new Map<number, number>();
  for (const seq of [...acks.keys()].sort((a, b) => a - b)) {
    const ack = acks.get(seq) as ProduceAck;
    const previous = last.get(ack.partition) ?? -1;
    assert.ok(
      ack.offset > previous,
      `seq ${seq}: offset ${ack.offset} after ${previous} in partition ${ack.partition}`,
    );
    last.set(ack.partition, ack.offset);
  }
}

/** Every acknowledged message exactly once, at its acknowledged offset, in send order per partition. */
function assertExactlyOnce(messages: ConsumedMessage[], count: number, acks: Map<number, ProduceAck>): void {
  const seen = new Set<number>();
  const lastSeq = new Map<number, number>();
  for (const m of messages) {
    const seq = Number(m.text());
    assert.ok(!seen.has(seq), `message ${seq} delivered twice`);
    seen.add(seq);
    const previous = lastSeq.get(m.partition) ?? -1;
    assert.ok(seq > previous, `partition ${m.partition}: message ${seq} after ${previous} (out of order)`);
    lastSeq.set(m.partition, seq);
    const ack = acks.get(seq);
    assert.ok(ack, `message ${seq} was consumed but never acknowledged`);
    assert.deepEqual(
      [m.partition, m.offset],
      [ack.partition, ack.offset],
      `message ${seq} is where its ack said`,
    );
  }
  assert.equal(seen.size, count, "every message was consumed");
}
