import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  Acks,
  MessageRequestSchema,
  ProduceError,
  type BrokerService,
  type Message,
  type MessageRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { Pushable, brokerClient, pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const SENTINEL_ARGS = ["--heartbeat-ttl", "3", "--probe-timeout", "500"];
const BROKER_ARGS = ["--fsync", "always"];

/** The partition-0 leader as the sentinels see it, reporting `unreachable` brokers first. */
async function leaderOf(cluster: TestCluster, topic: string, unreachable: string[] = []): Promise<string> {
  const res = await cluster.sentinel().getBrokers({ topic, unreachableBrokers: unreachable });
  const leader = res.partitions[0]?.leader;
  if (!leader) throw new Error(`${topic} has no leader`);
  return leader;
}

/** Every message of partition 0 below the high watermark of `brokerId` (which must lead it). */
async function readAll(client: Client<typeof BrokerService>, topic: string): Promise<Message[]> {
  const [first] = await pullMessages(client, { topic, partition: 0, offset: 0n }, 1);
  const hw = Number(first?.highWatermark ?? 0n);
  return hw === 0 ? [] : pullMessages(client, { topic, partition: 0, offset: 0n }, hw, 20_000);
}

/**
 * A producer that survives leader failures the way a client SDK would: one SendMessage stream to the
 * leader, ids 1..total in order, a window of requests in flight, each naming the id before its first
 * (previous_message_id); on any error it asks the sentinels for the leader again (naming the broker it
 * could not reach) and resends everything not yet acknowledged from the lowest id, with the same ids.
 */
class FailoverProducer {
  readonly acked = new Map<bigint, bigint>();
  duplicates = 0;
  failovers = 0;
  readonly done: Promise<void>;

  constructor(
    private readonly cluster: TestCluster,
    private readonly topic: string,
    private readonly total: number,
  ) {
    this.done = this.#run();
  }

  async #run(): Promise<void> {
    let unreachable: string[] = [];
    const deadline = Date.now() + 60_000;
    while (this.acked.size < this.total) {
      if (Date.now() > deadline) throw new Error(`only ${this.acked.size}/${this.total} acknowledged`);
      let leader: string;
      try {
        leader = await leaderOf(this.cluster, this.topic, unreachable);
      } catch {
        await sleep(100);
        continue;
      }
      unreachable = [];
      const outcome = await this.#stream(brokerClient(this.cluster.brokerAddress(leader)));
      if (outcome === "broken") {
        unreachable = [leader];
        this.failovers++;
      }
      if (outcome !== "finished") await sleep(50);
    }
  }

  async #stream(client: Client<typeof BrokerService>): Promise<"finished" | "retry" | "broken"> {
    const pending: bigint[] = [];
    for (let id = 1n; id <= BigInt(this.total); id++) if (!this.acked.has(id)) pending.push(id);
    const requests = new Pushable<MessageRequest>();
    let next = 0;
    let inflight = 0;
    const sendBatch = () => {
      if (next >= pending.length) return;
      const ids = pending.slice(next, next + 10);
      next += ids.length;
      inflight++;
      requests.push(
        create(MessageRequestSchema, {
          topic: this.topic,
          partition: 0,
          producerId: "failover-producer",
          acks: Acks.ALL,
          records: ids.map((messageId) => ({ messageId, payload: text(`msg-${messageId}`) })),
          // As the SDK does: a batch whose predecessor is not stored is refused (OUT_OF_ORDER), never
          // appended ahead of it when an earlier batch in flight failed (e.g. on a new leader not ready).
          previousMessageId: (ids[0] as bigint) - 1n,
        }),
      );
    };
    for (let i = 0; i < 4; i++) sendBatch();
    try {
      for await (const res of client.sendMessage(requests, { timeoutMs: 15_000 })) {
        inflight--;
        let failed = false;
        for (const a of res.acks) {
          if (a.error === ProduceError.NONE) {
            this.acked.set(a.messageId, a.offset);
            if (a.duplicate) this.duplicates++;
          } else {
            failed = true;
          }
        }
        if (failed) return "retry";
        sendBatch();
        if (inflight === 0) return "finished";
      }
      return "retry";
    } catch {
      return "broken";
    } finally {
      requests.end();
    }
  }
}

describe("broker: replication, acks=all and leader failover (3 brokers, replication factor 3)", () => {
  let cluster: TestCluster;
  let firstLeader: string;
  let secondLeader: string;
  const TOTAL = 1500;

  before(async () => {
    cluster = await startCluster({ brokers: 3, sentinelArgs: SENTINEL_ARGS, brokerArgs: BROKER_ARGS });
    const layout = await cluster.createTopic("payments", { partitions: 1, replicas: 3 });
    firstLeader = layout.partitions[0]?.leader as string;
  });
  after(async () => {
    await cluster?.stop();
  });

  it("kill the leader while producing: nothing acknowledged is lost or duplicated, order is kept", async () => {
    const producer = new FailoverProducer(cluster, "payments", TOTAL);
    await waitFor(() => producer.acked.size >= 200, { what: "200 acknowledged messages" });
    // A consumer group reads 120 messages and commits, before the failure.
    const group = { topic: "payments", partition: 0, consumerGroup: "audit" };
    const leaderClient = cluster.broker(firstLeader).client;
    const read = await pullMessages(leaderClient, { ...group, offset: -1n }, 120);
    assert.equal(read.length, 120);
    await leaderClient.commitOffset({ ...group, offset: 120n });

    await waitFor(() => producer.acked.size >= 500, { what: "500 acknowledged messages" });
    await cluster.killBroker(firstLeader, "SIGKILL");
    await producer.done;
    assert.ok(producer.failovers >= 1, "the producer saw the leader die");

    secondLeader = await leaderOf(cluster, "payments");
    assert.notEqual(secondLeader, firstLeader, "the sentinel moved leadership");
    const messages = await readAll(cluster.broker(secondLeader).client, "payments");
    assert.deepEqual(
      messages.map((m) => Number(m.messageId)),
      Array.from({ length: TOTAL }, (_, i) => i + 1),
      "every message once, in the order produced",
    );
    messages.forEach((m, i) => {
      assert.equal(m.offset, BigInt(i));
      assert.equal(untext(m.payload), `msg-${m.messageId}`);
    });
    for (const [id, offset] of producer.acked) {
      assert.equal(messages[Number(offset)]?.messageId, id, `acknowledged message ${id} is at its offset`);
    }
    // The new leader rebuilt its producer table from its log: retries of old ids are not appended.
    // Ids within the window (the last 1024) get their offsets; older ones are known duplicates (-1).
    const retry = await sendOnce(cluster.broker(secondLeader).client, {
      topic: "payments",
      partition: 0,
      producerId: "failover-producer",
      acks: Acks.ALL,
      records: [1n, 1400n, 1500n].map((messageId) => ({ messageId, payload: text(`msg-${messageId}`) })),
    });
    assert.deepEqual(
      retry.acks.map((a) => [a.messageId, a.offset, a.duplicate, a.error]),
      [
        [1n, -1n, true, ProduceError.NONE],
        [1400n, 1399n, true, ProduceError.NONE],
        [1500n, 1499n, true, ProduceError.NONE],
      ],
    );
    const after = await readAll(cluster.broker(secondLeader).client, "payments");
    assert.equal(after.length, TOTAL, "nothing was appended by the retry");
  });

  it("the consumer group resumes exactly after its committed offset on the new leader", async () => {
    const group = { topic: "payments", partition: 0, consumerGroup: "audit" };
    const client = cluster.broker(secondLeader).client;
    assert.equal((await client.getCommittedOffset(group)).offset, 120n, "the commit was replicated");
    const next = await pullMessages(client, { ...group, offset: -1n }, 5);
    assert.deepEqual(
      next.map((m) => m.offset),
      [120n, 121n, 122n, 123n, 124n],
    );
    // A commit on the new leader, then a consumer restart: it resumes there.
    await client.commitOffset({ ...group, offset: 125n });
    const resumed = await pullMessages(
      brokerClient(cluster.brokerAddress(secondLeader)),
      { ...group, offset: -1n },
      1,
    );
    assert.equal(resumed[0]?.offset, 125n);
  });

  it("the old leader comes back, catches up, and holds the same log", async () => {
    await cluster.restartBroker(firstLeader);
    await waitFor(
      async () => {
        const res = await cluster.sentinel().getBrokers({ topic: "payments" });
        return res.partitions[0]?.replicas.includes(firstLeader);
      },
      { what: `${firstLeader} to be a replica again` },
    );
    await waitFor(
      async () =>
        (await readMetric(cluster.broker(secondLeader).url, "goulette_broker_in_sync_replicas")) === 3,
      { what: "all three replicas in sync", timeoutMs: 15_000 },
    );
    // Make the returned broker the only replica left, then read its copy.
    const others = cluster.liveBrokers().filter((id) => id !== firstLeader);
    for (const id of others) await cluster.killBroker(id, "SIGKILL");
    const leader = await waitFor(
      async () => {
        const l = await leaderOf(cluster, "payments", others);
        return l === firstLeader ? l : undefined;
      },
      { what: `${firstLeader} to lead again` },
    );
    const client = cluster.broker(leader).client;
    const messages = await waitFor(
      async () => {
        const all = await readAll(client, "payments");
        return all.length >= TOTAL ? all : undefined;
      },
      { what: "the high watermark on the returned broker" },
    );
    assert.deepEqual(
      messages.map((m) => Number(m.messageId)),
      Array.from({ length: TOTAL }, (_, i) => i + 1),
    );
    assert.equal(
      (await client.getCommittedOffset({ topic: "payments", partition: 0, consumerGroup: "audit" })).offset,
      125n,
      "consumer offsets were replicated to it too",
    );
  });
});

describe("broker: a returning broker truncates its divergent tail (2 brokers)", () => {
  let cluster: TestCluster;

  before(async () => {
    // A longer heartbeat TTL: failover is driven by the test's unreachable reports, not by timing.
    cluster = await startCluster({
      brokers: 2,
      sentinelArgs: [...SENTINEL_ARGS, "--heartbeat-ttl", "10"],
      brokerArgs: BROKER_ARGS,
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("records only the dead leader had are cut when it returns as a follower", async () => {
    const layout = await cluster.createTopic("diverge", { partitions: 1, replicas: 2 });
    const a = layout.partitions[0]?.leader as string;
    const b = a === "b1" ? "b2" : "b1";
    const send = (broker: string, payloads: string[], acks: Acks) =>
      sendOnce(cluster.broker(broker).client, {
        topic: "diverge",
        partition: 0,
        acks,
        records: payloads.map((p, i) => ({ messageId: BigInt(i + 1), payload: text(p) })),
      });
    const common = Array.from({ length: 10 }, (_, i) => `common-${i}`);
    const res = await send(a, common, Acks.ALL);
    assert.ok(res.acks.every((x) => x.error === ProduceError.NONE));

    // The follower freezes; the leader takes records (acks=leader) that never reach it (the follower
    // dies frozen, losing what sat in its socket), then the leader dies too and the follower returns.
    cluster.broker(b).pause();
    const aOnly = await send(a, ["a-only-0", "a-only-1", "a-only-2", "a-only-3", "a-only-4"], Acks.LEADER);
    assert.deepEqual(
      aOnly.acks.map((x) => x.offset),
      [10n, 11n, 12n, 13n, 14n],
    );
    await cluster.killBroker(b, "SIGKILL");
    await cluster.killBroker(a, "SIGKILL");
    await cluster.restartBroker(b);

    await waitFor(async () => (await leaderOf(cluster, "diverge", [a])) === b, { what: `${b} to lead` });
    const bRecords = Array.from({ length: 7 }, (_, i) => `b-${i}`);
    const written = await waitFor(
      async () => {
        const r = await send(b, bRecords, Acks.LEADER);
        return r.acks.every((x) => x.error === ProduceError.NONE) ? r : undefined;
      },
      { what: `${b} to accept writes` },
    );
    assert.equal(written.acks[0]?.offset, 10n, "the new leader continues from its own log end");

    // A comes back: it must cut offsets 10..14 (written under the old epoch) and copy B's.
    await cluster.restartBroker(a);
    await waitFor(
      async () => (await readMetric(cluster.broker(b).url, "goulette_broker_in_sync_replicas")) === 2,
      { what: `${a} back in sync`, timeoutMs: 15_000 },
    );
    await cluster.killBroker(b, "SIGKILL");
    await waitFor(async () => (await leaderOf(cluster, "diverge", [b])) === a, {
      what: `${a} to lead again`,
    });
    const messages = await waitFor(
      async () => {
        const all = await readAll(cluster.broker(a).client, "diverge");
        return all.length >= 17 ? all : undefined;
      },
      { what: `${a} to serve the partition` },
    );
    assert.deepEqual(
      messages.map((m) => untext(m.payload)),
      [...common, ...bRecords],
    );
  });
});
