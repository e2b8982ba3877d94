import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Acks,
  BatchesRequestSchema,
  ProduceError,
  type BatchesResponse,
  type MessageResponse,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const TOPIC = "min-isr";
const PRODUCER = "min-isr-producer";

/**
 * --min-insync-replicas 2 on real processes: a 2-replica partition takes acks=all while both replicas
 * are in sync; once the follower (frozen with SIGSTOP) drops out of the in-sync set, acks=all waiting
 * for it fails and new acks=all is refused before anything is appended, while acks=leader still works;
 * after the follower resumes and catches up, acks=all works again and retries are deduplicated. A
 * multi-partition request (SendBatches / ProduceBatches) answers each partition on its own.
 */
describe("broker: --min-insync-replicas", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 2,
      // Long enough that the frozen follower is never declared dead (it must stay a replica).
      sentinelArgs: ["--heartbeat-ttl", "30"],
      brokerArgs: ["--fsync", "always", "--min-insync-replicas", "2", "--replica-lag-max", "1500"],
      logLevel: process.env.GOULETTE_TEST_LOG ?? "warn",
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  const send = (broker: string, acks: Acks, from: number, count: number): Promise<MessageResponse> =>
    sendOnce(cluster.broker(broker).client, {
      topic: TOPIC,
      partition: 0,
      producerId: PRODUCER,
      acks,
      records: Array.from({ length: count }, (_, i) => ({
        messageId: BigInt(from + i),
        payload: text(`m-${from + i}`),
      })),
    });

  const progress = async (broker: string) => {
    const res = await cluster.broker(broker).client.health({ partitions: [{ topic: TOPIC, partition: 0 }] });
    const p = res.partitions[0];
    assert.ok(p, `${broker} holds ${TOPIC}#0`);
    return { logEnd: Number(p.logEndOffset), hw: Number(p.highWatermark) };
  };

  /** The leader's goulette_broker_in_sync_replicas gauge (summed over the partitions it leads: one). */
  const inSyncOn = async (broker: string): Promise<number> => {
    const body = await (await fetch(`${cluster.broker(broker).url}/metrics`)).text();
    const match = /^goulette_broker_in_sync_replicas(?:\{[^}]*\})? (\d+)$/m.exec(body);
    assert.ok(match, "the in-sync replicas gauge is exported");
    return Number(match[1]);
  };

  /** The broker's goulette_broker_under_min_insync_partitions gauge. */
  const underMinInsyncOn = async (broker: string): Promise<number> => {
    const body = await (await fetch(`${cluster.broker(broker).url}/metrics`)).text();
    const match = /^goulette_broker_under_min_insync_partitions(?:\{[^}]*\})? (\d+)$/m.exec(body);
    assert.ok(match, "the under-min-insync gauge is exported");
    return Number(match[1]);
  };

  const errors = (res: MessageResponse) => res.acks.map((a) => a.error);

  it("refuses acks=all below the minimum, keeps acks=leader, and recovers when the follower returns", async () => {
    const layout = await cluster.createTopic(TOPIC, { partitions: 1, replicas: 2 });
    const [leader, follower] = layout.partitions[0]?.replicas ?? [];
    assert.ok(leader && follower, "two replicas");

    // Both replicas in sync: acks=all works.
    const first = await send(leader, Acks.ALL, 1, 5);
    assert.deepEqual(errors(first), Array(5).fill(ProduceError.NONE));
    assert.deepEqual(await progress(leader), { logEnd: 5, hw: 5 });
    assert.equal(await underMinInsyncOn(leader), 0);

    cluster.broker(follower).pause();
    let waited: MessageResponse;
    try {
      // Sent right after the freeze, long before the follower's 1500 ms lag is up: appended, then waiting
      // for the follower; when it leaves the in-sync set the records fail instead of being acknowledged.
      waited = await send(leader, Acks.ALL, 6, 2);
      assert.deepEqual(errors(waited), [ProduceError.NOT_ENOUGH_REPLICAS, ProduceError.NOT_ENOUGH_REPLICAS]);
      assert.match(waited.acks[0]?.errorMessage ?? "", /1 in-sync replica .*requires 2/);
      await waitFor(async () => (await inSyncOn(leader)) === 1, {
        timeoutMs: 10_000,
        what: `${follower} to leave the in-sync replicas`,
      });
      assert.equal(await underMinInsyncOn(leader), 1, "the partition is counted below the minimum");
      // They were stored on the leader (the in-sync set is the leader alone now, so the hw covers them).
      const stored = await waitFor(
        async () => {
          const now = await progress(leader);
          return now.hw === 7 ? now : undefined;
        },
        { what: "the high watermark to cover the 2 records that waited" },
      );
      assert.equal(stored.logEnd, 7);

      // Refused before anything is appended.
      const refused = await send(leader, Acks.ALL, 8, 3);
      assert.deepEqual(errors(refused), Array(3).fill(ProduceError.NOT_ENOUGH_REPLICAS));
      assert.match(
        refused.acks[0]?.errorMessage ?? "",
        /^min-isr#0 has 1 in-sync replica \(leader included\); acks=all requires 2/,
      );
      assert.deepEqual(
        refused.acks.map((a) => a.offset),
        [-1n, -1n, -1n],
      );
      assert.deepEqual(await progress(leader), { logEnd: 7, hw: 7 }, "nothing appended");
      const body = await (await fetch(`${cluster.broker(leader).url}/metrics`)).text();
      const counted =
        /^goulette_broker_produce_errors_total\{[^}]*error="not_enough_replicas"[^}]*\} (\d+)$/m.exec(body);
      assert.equal(Number(counted?.[1]), 5, "every refused record is counted under not_enough_replicas");

      // acks=leader is unaffected.
      const leaderOnly = await send(leader, Acks.LEADER, 100, 2);
      assert.deepEqual(errors(leaderOnly), [ProduceError.NONE, ProduceError.NONE]);
      assert.deepEqual(
        leaderOnly.acks.map((a) => a.offset),
        [7n, 8n],
      );
    } finally {
      cluster.broker(follower).resume();
    }

    // The follower catches up and rejoins: acks=all works again. Refused attempts append nothing, so
    // polling with a produce is safe; anything but NOT_ENOUGH_REPLICAS meanwhile is a failure.
    const seen = new Set<ProduceError>();
    const again = await waitFor(
      async () => {
        const res = await send(leader, Acks.ALL, 8, 3);
        if (res.acks[0]?.error === ProduceError.NONE) return res;
        for (const error of errors(res)) seen.add(error);
        return undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `acks=all to succeed once ${follower} is back in sync` },
    );
    assert.deepEqual(
      [...seen].filter((e) => e !== ProduceError.NOT_ENOUGH_REPLICAS),
      [],
    );
    assert.deepEqual(errors(again), Array(3).fill(ProduceError.NONE));
    assert.equal(await underMinInsyncOn(leader), 0, "back at the minimum");
    assert.deepEqual(
      again.acks.map((a) => a.offset),
      [9n, 10n, 11n],
    );

    // The records that failed while waiting were stored: their retry is deduplicated, same offsets.
    const retried = await send(leader, Acks.ALL, 6, 2);
    assert.deepEqual(errors(retried), [ProduceError.NONE, ProduceError.NONE]);
    assert.deepEqual(
      retried.acks.map((a) => [a.offset, a.duplicate]),
      [
        [5n, true],
        [6n, true],
      ],
    );

    // The follower holds exactly the log: no refused record, nothing twice.
    const expected = [1, 2, 3, 4, 5, 6, 7, 100, 101, 8, 9, 10].map((id) => `m-${id}`);
    const messages = await pullMessages(
      cluster.broker(leader).client,
      { topic: TOPIC, partition: 0, offset: 0n },
      expected.length,
    );
    assert.deepEqual(
      messages.map((m) => untext(m.payload)),
      expected,
    );
    await waitFor(async () => (await progress(follower)).logEnd === expected.length, {
      what: `${follower} to copy every record`,
    });
  });

  it("refuses acks=all on a partition with fewer replicas than the minimum, not acks=leader", async () => {
    const layout = await cluster.createTopic("single", { partitions: 1, replicas: 1 });
    const leader = layout.partitions[0]?.leader;
    assert.ok(leader);
    const client = cluster.broker(leader).client;
    const all = await sendOnce(client, {
      topic: "single",
      partition: 0,
      acks: Acks.ALL,
      records: [{ messageId: 1n, payload: text("x") }],
    });
    assert.equal(all.acks[0]?.error, ProduceError.NOT_ENOUGH_REPLICAS);
    const one = await sendOnce(client, {
      topic: "single",
      partition: 0,
      acks: Acks.LEADER,
      records: [{ messageId: 1n, payload: text("x") }],
    });
    assert.equal(one.acks[0]?.error, ProduceError.NONE);
    assert.equal(one.acks[0]?.offset, 0n, "the refused acks=all record was not appended");
    // One replica can never reach the minimum of 2: the leader counts the partition for as long as it lasts.
    assert.equal(await underMinInsyncOn(leader), 1);
  });

  it("a multi-partition request (SendBatches, ProduceBatches) answers every partition on its own and loses nothing", async () => {
    // RF 2 on 2 brokers: each broker leads some partitions and follows the others. RF 1: below the
    // minimum of 2 in-sync replicas, so acks=all is refused there.
    const both = await cluster.createTopic("batches", { partitions: 4, replicas: 2 });
    const lonely = await cluster.createTopic("batches-rf1", { partitions: 2, replicas: 1 });
    const broker = both.partitions[0]?.leader as string;
    const led = both.partitions.filter((p) => p.leader === broker).map((p) => p.partition);
    const elsewhere = both.partitions.find((p) => p.leader !== broker);
    const underMin = lonely.partitions.find((p) => p.leader === broker);
    assert.ok(elsewhere && underMin, "the leaders are spread over both brokers");
    const producerId = "batches-producer";
    const batch = (topic: string, partition: number, first: number) => ({
      topic,
      partition,
      records: [first, first + 1].map((id) => ({
        messageId: BigInt(id),
        payload: text(`${topic}/${partition}/${id}`),
      })),
    });
    const request = {
      requestId: 7n,
      producerId,
      acks: Acks.ALL,
      batches: [
        ...led.map((partition) => batch("batches", partition, 1)),
        batch("batches", elsewhere.partition, 1),
        batch("batches-rf1", underMin.partition, 1),
        batch("no-such-topic", 0, 1),
      ],
    };
    const client = cluster.broker(broker).client;
    const res = await client.produceBatches(request);
    assert.equal(res.requestId, 7n);
    assert.deepEqual(
      res.responses.map((r) => [r.topic, r.partition, errors(r)]),
      [
        ...led.map((partition) => ["batches", partition, [ProduceError.NONE, ProduceError.NONE]]),
        ["batches", elsewhere.partition, [ProduceError.NOT_LEADER, ProduceError.NOT_LEADER]],
        [
          "batches-rf1",
          underMin.partition,
          [ProduceError.NOT_ENOUGH_REPLICAS, ProduceError.NOT_ENOUGH_REPLICAS],
        ],
        ["no-such-topic", 0, [ProduceError.UNKNOWN_PARTITION, ProduceError.UNKNOWN_PARTITION]],
      ],
    );
    const notLeader = res.responses[led.length]?.acks[0];
    assert.equal(notLeader?.leaderId, elsewhere.leader, "the refusal names the leader");
    for (const r of res.responses.slice(0, led.length)) {
      assert.deepEqual(
        r.acks.map((a) => [a.offset, a.duplicate]),
        [
          [0n, false],
          [1n, false],
        ],
      );
    }

    // The same request again on a SendBatches stream: the stored batches are deduplicated (same
    // offsets), the refused ones are still refused, nothing is written twice.
    async function* one() {
      yield create(BatchesRequestSchema, { ...request, requestId: 8n });
    }
    const answers = [];
    for await (const answer of client.sendBatches(one(), { timeoutMs: 10_000 })) answers.push(answer);
    assert.equal(answers.length, 1);
    const again = answers[0] as BatchesResponse;
    assert.equal(again.requestId, 8n);
    assert.deepEqual(
      again.responses.slice(0, led.length).map((r) => r.acks.map((a) => [a.offset, a.duplicate])),
      led.map(() => [
        [0n, true],
        [1n, true],
      ]),
    );
    assert.deepEqual(
      again.responses.slice(led.length).map((r) => errors(r)[0]),
      [ProduceError.NOT_LEADER, ProduceError.NOT_ENOUGH_REPLICAS, ProduceError.UNKNOWN_PARTITION],
    );

    // Each led partition holds exactly its two records; the refused partitions hold nothing.
    for (const partition of led) {
      const messages = await pullMessages(client, { topic: "batches", partition, offset: 0n }, 2);
      assert.deepEqual(
        messages.map((m) => untext(m.payload)),
        [`batches/${partition}/1`, `batches/${partition}/2`],
      );
    }
    const health = await client.health({
      partitions: [{ topic: "batches-rf1", partition: underMin.partition }],
    });
    assert.equal(health.partitions[0]?.logEndOffset, 0n, "acks=all below the minimum appended nothing");
    const other = await cluster.broker(elsewhere.leader).client.health({
      partitions: [{ topic: "batches", partition: elsewhere.partition }],
    });
    assert.equal(other.partitions[0]?.logEndOffset, 0n, "the partition led elsewhere got nothing");

    // A malformed request (two batches of one partition) is refused as a whole: nothing is stored.
    const twice = {
      ...request,
      batches: [batch("batches", led[0] as number, 10), batch("batches", led[0] as number, 12)],
    };
    await assert.rejects(client.produceBatches(twice), (err: unknown) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.InvalidArgument);
      assert.match(err.rawMessage, /two batches for batches#/);
      return true;
    });
    const after = await client.health({ partitions: [{ topic: "batches", partition: led[0] as number }] });
    assert.equal(after.partitions[0]?.logEndOffset, 2n, "the refused request stored nothing");
  });
});
