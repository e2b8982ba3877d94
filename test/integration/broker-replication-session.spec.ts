import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster, type TopicLayout } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const PARTITIONS = 12;
const RECORDS_PER_PARTITION = 20;

/** A gauge of a broker's /metrics (summed over its label sets; `labels` filters, e.g. side="leader"). */
async function gauge(cluster: TestCluster, broker: string, name: string, labels = ""): Promise<number> {
  const body = await (await fetch(`${cluster.broker(broker).url}/metrics`)).text();
  let sum = 0;
  let found = false;
  for (const line of body.split("\n")) {
    const match = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (labels !== "" && !(match[2] ?? "").includes(labels)) continue;
    found = true;
    sum += Number(match[3]);
  }
  assert.ok(found, `${name}${labels ? `{${labels}}` : ""} is exported by ${broker}`);
  return sum;
}

/** Distinct follower brokers of the partitions `broker` leads, and distinct leaders it follows. */
function pairs(layout: TopicLayout, broker: string): { followers: number; leaders: number } {
  const followers = new Set<string>();
  const leaders = new Set<string>();
  for (const p of layout.partitions) {
    if (p.leader === broker) for (const r of p.replicas) if (r !== broker) followers.add(r);
    if (p.leader !== broker && p.replicas.includes(broker)) leaders.add(p.leader);
  }
  return { followers: followers.size, leaders: leaders.size };
}

/** acks=all to every partition; each must be acknowledged (so every in-sync replica has it). */
async function produceEverywhere(cluster: TestCluster, layout: TopicLayout, round: number): Promise<void> {
  await Promise.all(
    layout.partitions.map(async (p) => {
      const res = await sendOnce(cluster.broker(p.leader).client, {
        topic: layout.topic,
        partition: p.partition,
        producerId: `session-${p.partition}`,
        acks: Acks.ALL,
        records: Array.from({ length: RECORDS_PER_PARTITION }, (_, i) => ({
          messageId: BigInt(round * RECORDS_PER_PARTITION + i + 1),
          payload: text(`r${round}-p${p.partition}-${i}`),
        })),
      });
      for (const ack of res.acks) assert.equal(ack.error, ProduceError.NONE, ack.errorMessage);
    }),
  );
}

/** Waits until every replica of every partition has `end` records and knows the high watermark. */
async function waitReplicated(cluster: TestCluster, layout: TopicLayout, end: number): Promise<void> {
  const refs = layout.partitions.map((p) => ({ topic: layout.topic, partition: p.partition }));
  await waitFor(
    async () => {
      for (const id of cluster.liveBrokers()) {
        const health = await cluster.broker(id).client.health({ partitions: refs });
        for (const p of health.partitions) {
          if (Number(p.logEndOffset) !== end || Number(p.highWatermark) !== end) return false;
        }
      }
      return true;
    },
    { timeoutMs: 20_000, what: `every replica to hold ${end} records with the high watermark at ${end}` },
  );
}

/**
 * One ReplicateSession stream per (follower, leader) pair, on real processes: a follower of many
 * partitions from one leader uses one stream for all of them, replicates, keeps idle partitions in the
 * in-sync set, drops out of it when frozen and rejoins when it resumes.
 */
describe("broker: replication sessions", () => {
  let cluster: TestCluster;
  let layout: TopicLayout;

  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      // The frozen follower must stay a replica (not declared dead) while it is out of the ISR.
      sentinelArgs: ["--heartbeat-ttl", "30"],
      brokerArgs: ["--replica-lag-max", "1500"],
      logLevel: process.env.GOULETTE_TEST_LOG ?? "warn",
    });
    layout = await cluster.createTopic("sessions", { partitions: PARTITIONS, replicas: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("carries every partition between two brokers on one stream, and replicates them", async () => {
    await produceEverywhere(cluster, layout, 0);
    await waitReplicated(cluster, layout, RECORDS_PER_PARTITION);
    for (const id of ["b1", "b2", "b3"]) {
      const expected = pairs(layout, id);
      assert.ok(expected.leaders > 0, `${id} follows some partition (12 partitions over 3 brokers)`);
      assert.equal(
        await gauge(cluster, id, "goulette_broker_replication_sessions", 'side="leader"'),
        expected.followers,
      );
      assert.equal(
        await gauge(cluster, id, "goulette_broker_replication_sessions", 'side="follower"'),
        expected.leaders,
      );
      assert.equal(
        await gauge(cluster, id, "goulette_broker_replication_streams"),
        0,
        "no per-partition streams",
      );
    }
  });

  it("keeps idle caught-up followers in sync well past --replica-lag-max", async () => {
    // Nothing is produced for 3 lag periods; every led partition must keep all 3 replicas in sync.
    const until = Date.now() + 4_500;
    while (Date.now() < until) {
      for (const id of ["b1", "b2", "b3"]) {
        assert.equal(
          await gauge(cluster, id, "goulette_broker_under_replicated_partitions"),
          0,
          `${id}: ISR intact`,
        );
      }
      await sleep(300);
    }
  });

  it("a frozen follower leaves the in-sync set of every partition it follows, and rejoins after", async () => {
    const frozen = "b3";
    const led = (id: string) => layout.partitions.filter((p) => p.leader === id).length;
    const exposed = ["b1", "b2"].map((id) => ({ id, led: led(id) }));
    cluster.broker(frozen).pause();
    try {
      await waitFor(
        async () => {
          for (const { id, led: count } of exposed) {
            if ((await gauge(cluster, id, "goulette_broker_under_replicated_partitions")) !== count)
              return false;
          }
          return true;
        },
        { timeoutMs: 15_000, what: "b1 and b2 to drop frozen b3 from the ISR of every partition they lead" },
      );
      // acks=all goes on without b3 (min ISR 1), and b3 catches up after it resumes.
      await Promise.all(
        layout.partitions
          .filter((p) => p.leader !== frozen)
          .map(async (p) => {
            const res = await sendOnce(cluster.broker(p.leader).client, {
              topic: layout.topic,
              partition: p.partition,
              acks: Acks.ALL,
              records: [{ messageId: 0n, payload: text("while b3 was frozen") }],
            });
            assert.equal(res.acks[0]?.error, ProduceError.NONE, res.acks[0]?.errorMessage);
          }),
      );
    } finally {
      cluster.broker(frozen).resume();
    }
    await waitFor(
      async () => {
        for (const id of ["b1", "b2"]) {
          if ((await gauge(cluster, id, "goulette_broker_under_replicated_partitions")) !== 0) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, what: "b3 to rejoin the ISR of every partition" },
    );
  });
});

/** The broker that runs as an older one in the rolling-upgrade cases. */
const OLD = "b3";

/**
 * For the enclosing describe: 3 brokers, OLD started with `flag` (behaving as a broker older than the
 * feature), and a topic of PARTITIONS partitions on all three. Call the result inside a test.
 */
function clusterWithOldBroker(
  flag: string,
  topic: string,
): () => { cluster: TestCluster; layout: TopicLayout } {
  let cluster: TestCluster | undefined;
  let layout: TopicLayout | undefined;
  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      brokerArgsFor: (id) => (id === OLD ? [flag] : []),
      logLevel: process.env.GOULETTE_TEST_LOG ?? "warn",
    });
    layout = await cluster.createTopic(topic, { partitions: PARTITIONS, replicas: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });
  return () => {
    if (cluster === undefined || layout === undefined) throw new Error("the cluster did not start");
    return { cluster, layout };
  };
}

/**
 * Rolling upgrade: a broker started with --no-replication-sessions answers ReplicateSession with
 * UNIMPLEMENTED (as a broker older than it) and replicates with one Replicate stream per partition.
 * Its followers fall back to per-partition streams, and everything replicates both ways.
 */
describe("broker: replication sessions fall back to Replicate for older leaders", () => {
  const mixed = clusterWithOldBroker("--no-replication-sessions", "fallback");

  it("replicates every partition, with per-partition streams to and from the old broker only", async () => {
    const { cluster, layout } = mixed();
    await produceEverywhere(cluster, layout, 0);
    await waitReplicated(cluster, layout, RECORDS_PER_PARTITION);
    await produceEverywhere(cluster, layout, 1);
    await waitReplicated(cluster, layout, 2 * RECORDS_PER_PARTITION);
    const ledBy = (id: string) => layout.partitions.filter((p) => p.leader === id).length;
    assert.ok(ledBy(OLD) > 0, "the old broker leads some partitions");
    // The old broker serves one stream per (partition it leads, follower); the new ones serve it one per
    // partition they lead (it follows everything here) and a session to each other.
    await waitFor(
      async () =>
        (await gauge(cluster, OLD, "goulette_broker_replication_streams")) === 2 * ledBy(OLD) &&
        (await gauge(cluster, "b1", "goulette_broker_replication_streams")) === ledBy("b1") &&
        (await gauge(cluster, "b2", "goulette_broker_replication_streams")) === ledBy("b2"),
      { timeoutMs: 10_000, what: "the per-partition stream counts" },
    );
    assert.equal(await gauge(cluster, OLD, "goulette_broker_replication_sessions"), 0);
    for (const id of ["b1", "b2"]) {
      const other = id === "b1" ? "b2" : "b1";
      const expected = ledBy(id) > 0 ? 1 : 0;
      assert.equal(
        await gauge(cluster, id, "goulette_broker_replication_sessions", 'side="leader"'),
        expected,
      );
      assert.equal(
        await gauge(cluster, id, "goulette_broker_replication_sessions", 'side="follower"'),
        ledBy(other) > 0 ? 1 : 0,
        `${id} keeps a session only to ${other}`,
      );
    }
  });

  it("DeleteRecords is confirmed by every replica over sessions and per-partition streams alike", async () => {
    const { cluster, layout } = mixed();
    const before = BigInt(RECORDS_PER_PARTITION);
    for (const p of layout.partitions) {
      const res = await cluster
        .broker(p.leader)
        .client.deleteRecords({ topic: layout.topic, partition: p.partition, beforeOffset: before });
      assert.equal(res.logStartOffset, before);
      // Answered only once every in-sync replica reported deleting them, whatever the stream.
      for (const id of p.replicas) {
        const health = await cluster
          .broker(id)
          .client.health({ partitions: [{ topic: layout.topic, partition: p.partition }] });
        assert.equal(health.partitions[0]?.logStartOffset, before, `${id}'s log start of p${p.partition}`);
      }
    }
  });
});

/** Every segment file of a partition replica, concatenated: what its log holds, byte for byte. */
async function logBytes(
  cluster: TestCluster,
  broker: string,
  topic: string,
  partition: number,
): Promise<Buffer> {
  const dir = path.join(cluster.root, "brokers", broker, topic, String(partition), "log");
  const names = (await readdir(dir)).filter((n) => n.endsWith(".log")).sort();
  return Buffer.concat(await Promise.all(names.map((n) => readFile(path.join(dir, n)))));
}

/**
 * Rolling upgrade of the record encoding: a broker started with --no-replication-frames asks its leaders
 * for records and answers its followers with records (as a broker older than frames); the others ship
 * frames between themselves. Every replica still ends with the leader's log, byte for byte.
 */
describe("broker: replication frames negotiated with brokers that predate them", () => {
  const mixed = clusterWithOldBroker("--no-replication-frames", "frames-mixed");

  it("ships records to and from the old broker, frames between the new ones, and every log matches", async () => {
    const { cluster, layout } = mixed();
    await produceEverywhere(cluster, layout, 0);
    await produceEverywhere(cluster, layout, 1);
    const total = 2 * RECORDS_PER_PARTITION;
    await waitReplicated(cluster, layout, total);
    const ledBy = (id: string) => layout.partitions.filter((p) => p.leader === id).length;
    assert.ok(ledBy(OLD) > 0 && ledBy("b1") > 0 && ledBy("b2") > 0, "each broker leads some partitions");
    const shipped = (id: string, encoding: string) =>
      gauge(cluster, id, "goulette_broker_replicated_records_total", `encoding="${encoding}"`);
    // The old broker sends records to both its followers, never frames.
    assert.equal(await shipped(OLD, "frames"), 0);
    assert.ok((await shipped(OLD, "records")) >= 2 * ledBy(OLD) * total);
    // A new leader sends frames to the other new broker and records to the old one.
    for (const id of ["b1", "b2"]) {
      assert.ok((await shipped(id, "frames")) >= ledBy(id) * total, `${id} ships frames to the new follower`);
      assert.ok((await shipped(id, "records")) >= ledBy(id) * total, `${id} ships records to ${OLD}`);
    }
    for (const p of layout.partitions) {
      const leader = await logBytes(cluster, p.leader, layout.topic, p.partition);
      assert.ok(leader.length > 0);
      for (const replica of p.replicas) {
        if (replica === p.leader) continue;
        assert.ok(
          leader.equals(await logBytes(cluster, replica, layout.topic, p.partition)),
          `partition ${p.partition}: ${replica}'s log is ${p.leader}'s, byte for byte`,
        );
      }
    }
  });
});
