import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { Admin } from "../../src/client/node.js";
import { Acks, type BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { runGoulette } from "../helpers/goulette-process.js";
import { waitFor } from "../helpers/wait.js";

/** Produces `count` records (acks=all) to partition 0 of `topic` on its leader. */
async function produce(client: Client<typeof BrokerService>, topic: string, count: number, partition = 0) {
  const res = await sendOnce(client, {
    topic,
    partition,
    producerId: `delete-records-${topic}-${partition}-${count}`,
    acks: Acks.ALL,
    records: Array.from({ length: count }, (_, i) => ({ messageId: BigInt(i + 1), payload: text(`m${i}`) })),
  });
  assert.equal(res.acks.length, count);
  for (const a of res.acks) assert.equal(a.errorMessage, "");
}

/** The offsets FetchMessages returns from `offset` (at most `limit`). */
async function fetchOffsets(
  client: Client<typeof BrokerService>,
  topic: string,
  offset: bigint,
  limit: bigint,
): Promise<bigint[]> {
  const offsets: bigint[] = [];
  const batches = client.fetchMessages(
    { topic, partition: 0, offset, maxMessages: 500, limit },
    { timeoutMs: 10_000 },
  );
  for await (const batch of batches) for (const m of batch.messages) offsets.push(m.offset);
  return offsets;
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  assert.fail("the call succeeded");
}

/** Each replica's log start, as its Health answer reports it. */
async function logStarts(cluster: TestCluster, topic: string, replicas: string[]): Promise<bigint[]> {
  return Promise.all(
    replicas.map(async (id) => {
      const res = await cluster.broker(id).client.health({ partitions: [{ topic, partition: 0 }] });
      return res.partitions[0]?.logStartOffset ?? -1n;
    }),
  );
}

describe("DeleteRecords", () => {
  let cluster: TestCluster;
  before(async () => {
    // Small segments, so a deletion removes whole files as well as hiding records inside one.
    cluster = await startCluster({ sentinels: 1, brokers: 3, brokerArgs: ["--segment-bytes", "4096"] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("deletes on the leader, the followers follow, and a new leader keeps them deleted", async () => {
    const topic = "purge-rf3";
    const layout = await cluster.createTopic(topic, { partitions: 1, replicas: 3 });
    const { leader, replicas } = layout.partitions[0] as { leader: string; replicas: string[] };
    const client = cluster.broker(leader).client;
    await produce(client, topic, 200);

    const res = await client.deleteRecords({ topic, partition: 0, beforeOffset: 150n });
    assert.equal(res.logStartOffset, 150n);
    assert.equal(await codeOf(fetchOffsets(client, topic, 0n, 10n)), Code.OutOfRange);
    assert.equal(await codeOf(fetchOffsets(client, topic, 149n, 10n)), Code.OutOfRange);
    assert.deepEqual(await fetchOffsets(client, topic, 150n, 3n), [150n, 151n, 152n]);
    // Answered only once every in-sync follower deleted them too.
    assert.deepEqual(await logStarts(cluster, topic, replicas), [150n, 150n, 150n]);

    await cluster.killBroker(leader, "SIGKILL");
    const next = await waitFor(
      async () => {
        const l = (await cluster.layout(topic)).partitions[0]?.leader;
        return l !== undefined && l !== "" && l !== leader ? l : undefined;
      },
      { what: "a new leader", timeoutMs: 30_000 },
    );
    const nextClient = cluster.broker(next).client;
    const kept = await waitFor(() => fetchOffsets(nextClient, topic, 150n, 50n).catch(() => undefined), {
      what: "the new leader serving",
      timeoutMs: 30_000,
    });
    assert.equal(kept.length, 50);
    assert.equal(await codeOf(fetchOffsets(nextClient, topic, 0n, 10n)), Code.OutOfRange);
    await cluster.restartBroker(leader);
  });

  it("waits for an in-sync follower that has not deleted them yet; repeating the call waits again", async () => {
    const topic = "purge-frozen";
    const layout = await cluster.createTopic(topic, { partitions: 1, replicas: 3 });
    const { leader, replicas } = layout.partitions[0] as { leader: string; replicas: string[] };
    const frozen = replicas.find((id) => id !== leader) as string;
    const client = cluster.broker(leader).client;
    await produce(client, topic, 200);

    // Frozen far shorter than --replica-lag-max (10 s): it stays in sync and holds the deletion.
    cluster.broker(frozen).pause();
    try {
      const held = client.deleteRecords({ topic, partition: 0, beforeOffset: 150n }, { timeoutMs: 1_500 });
      assert.equal(await codeOf(held), Code.DeadlineExceeded);
      // Gone on the leader all the same.
      assert.equal(await codeOf(fetchOffsets(client, topic, 149n, 1n)), Code.OutOfRange);
    } finally {
      cluster.broker(frozen).resume();
    }
    const res = await client.deleteRecords(
      { topic, partition: 0, beforeOffset: 150n },
      { timeoutMs: 10_000 },
    );
    assert.equal(res.logStartOffset, 150n);
    assert.deepEqual(await logStarts(cluster, topic, replicas), [150n, 150n, 150n]);
  });

  it("refuses malformed or impossible requests with a clear code and deletes nothing", async () => {
    const topic = "purge-bad";
    const layout = await cluster.createTopic(topic, { partitions: 1, replicas: 2 });
    const { leader, replicas } = layout.partitions[0] as { leader: string; replicas: string[] };
    const client = cluster.broker(leader).client;
    await produce(client, topic, 20);
    const follower = cluster.broker(replicas.find((r) => r !== leader) as string).client;
    const cases: [string, () => Promise<unknown>, Code, RegExp][] = [
      [
        "negative",
        () => client.deleteRecords({ topic, partition: 0, beforeOffset: -2n }),
        Code.InvalidArgument,
        /-1 for the high watermark/,
      ],
      [
        "past the end",
        () => client.deleteRecords({ topic, partition: 0, beforeOffset: 21n }),
        Code.InvalidArgument,
        /past the end/,
      ],
      [
        "unknown topic",
        () => client.deleteRecords({ topic: "no-such-topic", partition: 0, beforeOffset: 1n }),
        Code.NotFound,
        /holds no replica/,
      ],
      [
        "bad topic name",
        () => client.deleteRecords({ topic: "bad name!", partition: 0, beforeOffset: 1n }),
        Code.InvalidArgument,
        /topic/,
      ],
      [
        "on a follower",
        () => follower.deleteRecords({ topic, partition: 0, beforeOffset: 5n }),
        Code.Unavailable,
        /does not lead/,
      ],
    ];
    for (const [what, call, code, message] of cases) {
      const err = await call().then(
        () => assert.fail(`${what}: the call succeeded`),
        (e: unknown) => ConnectError.from(e),
      );
      assert.equal(err.code, code, `${what}: ${err.message}`);
      assert.match(err.rawMessage, message, what);
    }
    assert.deepEqual(await logStarts(cluster, topic, replicas), [0n, 0n]);
    assert.deepEqual(await fetchOffsets(client, topic, 0n, 2n), [0n, 1n]);
  });

  it("Admin.deleteRecords purges every partition; `goulette admin delete-records --before` one of them", async () => {
    const topic = "purge-admin";
    const layout = await cluster.createTopic(topic, { partitions: 2, replicas: 1 });
    for (const p of layout.partitions)
      await produce(cluster.broker(p.leader).client, topic, 10 + p.partition, p.partition);
    const leader0 = cluster.broker((layout.partitions[0] as { leader: string }).leader).client;
    // A group that read two records: after the purge it reads from the new start, so it has no lag.
    await leader0.commitOffset({ consumerGroup: "g", topic, partition: 0, offset: 2n, memberEpoch: 0n });
    const admin = new Admin({ sentinels: cluster.sentinelUrls });
    const lagOf = async () =>
      (await admin.describeGroup("g", { topics: [topic] })).partitions.find((p) => p.partition === 0)?.lag;
    try {
      assert.equal(await lagOf(), 8);
      const deleted = await admin.deleteRecords({ topic });
      assert.deepEqual(
        deleted.map((d) => [d.partition, d.logStart]),
        [
          [0, 10],
          [1, 11],
        ],
      );
      await assert.rejects(admin.deleteRecords({ topic, partitions: [7] }), /has no partition 7/);
      assert.equal(await lagOf(), 0);
    } finally {
      await admin.close();
    }
    await produce(leader0, topic, 5);
    const sentinels = cluster.sentinelUrls.join(",");
    const refused = await runGoulette([
      "admin",
      "delete-records",
      "--topic",
      topic,
      "--sentinels",
      sentinels,
    ]);
    assert.notEqual(refused.code, 0, "without --before or --all nothing is deleted");
    assert.match(refused.stderr, /needs either --before n .* or --all/);
    assert.deepEqual(await fetchOffsets(leader0, topic, 10n, 2n), [10n, 11n]);
    const run = await runGoulette([
      "admin",
      "delete-records",
      "--topic",
      topic,
      "--partition",
      "0",
      "--before",
      "12",
      "--json",
      "--sentinels",
      cluster.sentinelUrls.join(","),
    ]);
    assert.equal(run.code, 0, `${run.stderr}\n${run.stdout}`);
    assert.deepEqual(JSON.parse(run.stdout), { topic, partitions: [{ partition: 0, logStart: 12 }] });
    assert.deepEqual(await fetchOffsets(leader0, topic, 12n, 3n), [12n, 13n, 14n]);
  });
});
