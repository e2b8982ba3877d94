import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import {
  Consumer,
  Producer,
  partitionForKey,
  type ClientEvent,
  type ConsumedMessage,
  type ProduceAck,
  type ProducerStats,
} from "../../src/index.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The SDK against real processes (etcd, 3 sentinels, 3 brokers, as `goulette dev` runs them): a
 * 100,000-message round trip, then the same kind of run with a broker killed, and with sentinels
 * killed, in the middle. The failure runs use 30,000 messages each to keep the suite quick; what they
 * check does not depend on the volume.
 *
 * The clients run in a worker thread (this same file), the cluster and the faults in the test: the test
 * runner tracks every promise of the test's own thread, which would cost more than the clients do.
 */

/** What a worker is asked to do. */
interface Job {
  sentinelUrls: string[];
  topic: string;
  count: number;
  /** One consumer per group reads while the producer writes. */
  groups: string[];
  /** After the run, a new group reads the whole topic from the start. */
  rereadGroup?: string;
  /** Int32[1]: messages acknowledged so far, for the test's fault injection. */
  acked: SharedArrayBuffer;
}

/** What a worker reports: everything was checked there; failures come back as `error`. */
interface JobResult {
  error?: string;
  /** [partition, number of messages] (the topics are new: the partition's end offset). */
  ends: [number, number][];
  producerStats: ProducerStats;
  /** Every event but retries (Errors become messages). */
  events: Array<Record<string, unknown>>;
  timings: string[];
}

if (isMainThread) {
  describe("client SDK: producer/consumer round trips through a cluster", () => {
    let cluster: TestCluster;

    before(async () => {
      // Like `goulette dev` (fsync interval). Failure detection keeps its defaults: the clients' reports
      // (verified by the sentinel leader) are what moves partitions here, not heartbeat expiry.
      cluster = await startCluster({ sentinels: 3, brokers: 3, brokerArgs: ["--fsync", "interval"] });
    });
    after(async () => {
      await cluster?.stop();
    });

    it("100,000 messages over 3 partitions: each group consumes every message exactly once, in order per partition", async (t) => {
      const run = await roundTrip(cluster, { topic: "orders", count: 100_000, groups: ["billing", "audit"] });
      for (const line of run.timings) t.diagnostic(line);
      // The groups committed the end of every partition on the leaders (so a restart resumes there).
      const layout = await cluster.layout("orders");
      const ends = new Map(run.ends);
      for (const p of layout.partitions) {
        const end = ends.get(p.partition) ?? 0;
        assert.ok(end > 20_000, `partition ${p.partition} holds about a third of the messages, got ${end}`);
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
        // A new group reading the whole topic afterwards finds exactly the acknowledged messages.
        rereadGroup: "reread",
        during: async (acked) => {
          await waitFor(() => acked() >= 10_000, { timeoutMs: 60_000, what: "a third of the acks" });
          await cluster.killBroker(victim);
        },
      });
      const reported = run.producerStats.unreachableBrokers;
      assert.ok(
        reported.includes(victim),
        `the producer reported ${victim} (it reported ${reported.join(",")})`,
      );
      assert.ok(run.producerStats.unreachableReports >= 1, "GetBrokers carried unreachable_brokers");
      assert.ok(
        run.events.some(
          (e) =>
            e.type === "assignment" &&
            (e.reported as string[]).includes(victim) &&
            !(e.leaders as string[]).includes(victim),
        ),
        "an assignment without the killed broker came back for the report",
      );
      const afterKill = await cluster.layout(topic);
      for (const p of afterKill.partitions) {
        assert.notEqual(p.leader, victim, `partition ${p.partition} was reassigned away from ${victim}`);
        assert.ok(!p.replicas.includes(victim), `partition ${p.partition} no longer lists ${victim}`);
      }
      await cluster.restartBroker(victim);
    });

    it("sentinels killed mid-run (the one in use and the leader): clients move to another sentinel, the run completes", async () => {
      const topic = "shipments";
      // The broker killed by the previous test is back: wait until every sentinel counts it healthy.
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
      const first = cluster.sentinelUrls[0] as string;
      const run = await roundTrip(cluster, {
        topic,
        count: 30_000,
        groups: ["tracking"],
        during: async (acked) => {
          await waitFor(() => acked() >= 10_000, { timeoutMs: 60_000, what: "a third of the acks" });
          // The first sentinel of the clients' list (the one they use) and the leader go down...
          for (const [id, s] of cluster.sentinels) {
            if (s.url === first || s.url === status.leaderUrl) await cluster.killSentinel(id);
          }
          // ...then a partition leader dies: the clients must ask a sentinel where its partitions went.
          const layout = await cluster.layout(topic);
          await cluster.killBroker((layout.partitions[1] as { leader: string }).leader);
        },
      });
      assert.ok(run.producerStats.sentinelFailovers >= 1, "the producer moved to another sentinel");
      assert.ok(run.producerStats.unreachableReports >= 1, "and reported the dead broker through it");
    });
  });
}

/** Runs a job in a worker while `during` injects faults; fails the test with the worker's findings. */
async function roundTrip(
  cluster: TestCluster,
  options: Omit<Job, "sentinelUrls" | "acked"> & { during?: (acked: () => number) => Promise<void> },
): Promise<JobResult> {
  const { during, ...rest } = options;
  const acked = new SharedArrayBuffer(4);
  const counter = new Int32Array(acked);
  const job: Job = { ...rest, sentinelUrls: cluster.sentinelUrls, acked };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  try {
    const result = new Promise<JobResult>((resolve, reject) => {
      worker.once("message", (message: JobResult) => resolve(message));
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the client worker exited with ${code}`)));
    });
    const [outcome] = await Promise.all([result, during?.(() => Atomics.load(counter, 0))]);
    if (outcome.error) assert.fail(outcome.error);
    return outcome;
  } finally {
    await worker.terminate();
  }
}

// ---- the worker side ------------------------------------------------------------------------------

function keyOf(seq: number): string {
  return `customer-${seq % 101}`;
}

/** Produces `count` keyed messages while one consumer per group reads them, and checks the outcome. */
async function runJob(job: Job): Promise<JobResult> {
  const { topic, count } = job;
  const counter = new Int32Array(job.acked);
  const events: ClientEvent[] = [];
  const timings: string[] = [];
  const started = Date.now();
  const producer = new Producer({
    sentinels: job.sentinelUrls,
    topic,
    createTopic: { partitions: 3, replicas: 3 },
    onEvent: (e) => events.push(e),
  });
  const acks = new Map<number, ProduceAck>();
  const failures: string[] = [];
  const produce = async () => {
    const pending: Promise<void>[] = [];
    for (let seq = 0; seq < count; seq++) {
      if (producer.pending >= 20_000) await producer.waitForRoom();
      pending.push(
        producer.send({ key: keyOf(seq), value: String(seq) }).then(
          (ack) => {
            acks.set(seq, ack);
            Atomics.store(counter, 0, acks.size);
          },
          (err: unknown) => void failures.push(`${seq}: ${String(err)}`),
        ),
      );
    }
    await Promise.all(pending);
    await producer.close();
    timings.push(`produced in ${Date.now() - started} ms`);
  };
  const consumed = new Map<string, ConsumedMessage[]>();
  const result = (error?: string): JobResult => {
    const ends = new Map<number, number>();
    for (const ack of acks.values()) ends.set(ack.partition, (ends.get(ack.partition) ?? 0) + 1);
    return {
      ...(error ? { error } : {}),
      ends: [...ends],
      producerStats: producer.stats(),
      events: events.filter((e) => e.type !== "retry").map(plainEvent),
      timings,
    };
  };
  try {
    await Promise.all([
      produce(),
      ...job.groups.map(async (group) => {
        consumed.set(group, await consumeAll(job.sentinelUrls, topic, group, count, events));
        timings.push(`${group} consumed in ${Date.now() - started} ms`);
      }),
    ]);
    assert.deepEqual(failures, [], "every send was acknowledged");
    assert.equal(acks.size, count);
    assertAcksInSendOrder(acks);
    for (const [seq, ack] of acks) {
      assert.equal(ack.partition, partitionForKey(keyOf(seq), 3), `message ${seq} is in its key's partition`);
    }
    for (const [group, messages] of consumed) {
      assert.equal(messages.length, count, `group ${group} received ${count} messages`);
      assertExactlyOnce(messages, count, acks);
    }
    if (job.rereadGroup) {
      const reread = await consumeAll(job.sentinelUrls, topic, job.rereadGroup, count, events);
      assertExactlyOnce(reread, count, acks);
    }
    return result();
  } catch (err) {
    const trail = events
      .filter((e) => e.type !== "retry")
      .slice(-20)
      .map((e) => JSON.stringify(plainEvent(e)))
      .join("\n  ");
    return result(`${err instanceof Error ? err.message : String(err)}\nlast events:\n  ${trail}`);
  } finally {
    await producer.close();
  }
}

function plainEvent(event: ClientEvent): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    plain[key] =
      value instanceof Error ? value.message : typeof value === "bigint" ? Number(value) : (value as unknown);
  }
  return plain;
}

/** Reads `count` messages of a new group from the beginning (fails after a deadline). */
async function consumeAll(
  sentinels: string[],
  topic: string,
  group: string,
  count: number,
  events: ClientEvent[],
): Promise<ConsumedMessage[]> {
  const consumer = new Consumer({
    sentinels,
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
      const batch = await consumer.receiveBatch({ timeoutMs: Math.max(1, deadline - Date.now()) });
      if (batch.length === 0) {
        throw new Error(
          `group ${group} received ${messages.length} of ${count} messages before the deadline`,
        );
      }
      messages.push(...batch);
    }
    // No extra message may follow (a duplicate would).
    assert.equal(messages.length, count, `group ${group} received more than the ${count} produced`);
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

// In the worker: run the job given, report back.
if (!isMainThread) void runJob(workerData as Job).then((result) => parentPort?.postMessage(result));
