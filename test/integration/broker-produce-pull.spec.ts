import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Acks, PartitionRole, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster, type TopicLayout } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/** One sentinel and two broker processes: produce, pull, idempotency, errors, groups, roles. */
describe("broker: produce and pull", () => {
  let cluster: TestCluster;
  let orders: TopicLayout;
  let leaderId: string;
  let followerId: string;

  before(async () => {
    cluster = await startCluster({ brokers: 2 });
    orders = await cluster.createTopic("orders", { partitions: 1, replicas: 2 });
    const p0 = orders.partitions[0];
    assert.ok(p0);
    leaderId = p0.leader;
    followerId = p0.replicas.find((id) => id !== leaderId) as string;
  });
  after(async () => {
    await cluster?.stop();
  });

  const leader = () => cluster.broker(leaderId);
  const follower = () => cluster.broker(followerId);

  it("registers with the sentinels, keeps alive and serves /healthz, /readyz and /metrics", async () => {
    const status = await cluster.sentinel().getClusterStatus({});
    for (const id of ["b1", "b2"]) {
      const info = status.brokers.find((b) => b.brokerId === id);
      assert.ok(info, `broker ${id} is registered`);
      assert.equal(info.address, cluster.brokerAddress(id));
      assert.equal(info.status, BrokerStatus.HEALTHY);
      assert.ok(info.lastHeartbeat > 0n, "KeepAlive recorded a heartbeat");
    }
    const b1 = cluster.broker("b1");
    assert.equal((await fetch(`${b1.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${b1.url}/readyz`)).status, 200);
    assert.equal(await readMetric(leader().url, "goulette_broker_ready"), 1);
    assert.equal(await readMetric(leader().url, "goulette_broker_partitions_led"), 1);
    assert.equal(await readMetric(follower().url, "goulette_broker_partitions_followed"), 1);
    const health = await leader().client.health({});
    assert.deepEqual([health.brokerId, health.ready, health.partitionsLed], [leaderId, true, 1]);
  });

  it("acks carry offsets; a retry of the same producer and message ids is not appended twice", async () => {
    const records = (ids: number[]) =>
      ids.map((id) => ({ messageId: BigInt(id), payload: text(`m${id}`), key: text(`k${id}`) }));
    const first = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      producerId: "p-1",
      acks: Acks.ALL,
      records: records([1, 2, 3]),
    });
    assert.deepEqual(
      first.acks.map((a) => [a.messageId, a.offset, a.error, a.duplicate]),
      [
        [1n, 0n, ProduceError.NONE, false],
        [2n, 1n, ProduceError.NONE, false],
        [3n, 2n, ProduceError.NONE, false],
      ],
    );
    const retry = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      producerId: "p-1",
      acks: Acks.LEADER,
      records: records([2, 3, 4]),
    });
    assert.deepEqual(
      retry.acks.map((a) => [a.messageId, a.offset, a.duplicate]),
      [
        [2n, 1n, true],
        [3n, 2n, true],
        [4n, 3n, false],
      ],
    );
    // Another producer may use the same message ids.
    const other = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      producerId: "p-2",
      records: records([1]),
    });
    assert.deepEqual([other.acks[0]?.offset, other.acks[0]?.duplicate], [4n, false]);
    const messages = await pullMessages(leader().client, { topic: "orders", partition: 0, offset: 0n }, 5);
    assert.deepEqual(
      messages.map((m) => [m.offset, m.producerId, m.messageId, untext(m.payload), untext(m.key)]),
      [
        [0n, "p-1", 1n, "m1", "k1"],
        [1n, "p-1", 2n, "m2", "k2"],
        [2n, "p-1", 3n, "m3", "k3"],
        [3n, "p-1", 4n, "m4", "k4"],
        [4n, "p-2", 1n, "m1", "k1"],
      ],
    );
    assert.ok(
      messages.every((m) => m.highWatermark > m.offset),
      "served only below the high watermark",
    );
  });

  it("keeps an idempotent producer's order: a record whose predecessor is not stored is refused OUT_OF_ORDER", async () => {
    const layout = await cluster.createTopic("ordered", { partitions: 1, replicas: 2 });
    const client = cluster.broker(layout.partitions[0]?.leader as string).client;
    const send = (producerId: string, ids: number[], previousMessageId: number) =>
      sendOnce(client, {
        topic: "ordered",
        partition: 0,
        producerId,
        acks: Acks.ALL,
        previousMessageId: BigInt(previousMessageId),
        records: ids.map((id) => ({ messageId: BigInt(id), payload: text(`${producerId}/${id}`) })),
      });
    const outcome = (res: Awaited<ReturnType<typeof send>>) =>
      res.acks.map((a) => [a.messageId, a.error === ProduceError.NONE ? a.offset : ProduceError[a.error]]);
    assert.deepEqual(outcome(await send("p-o", [1, 2], 0)), [
      [1n, 0n],
      [2n, 1n],
    ]);
    // The request of 3 and 4 was lost (or refused) on the way; the next one arrives: refused, not stored.
    assert.deepEqual(outcome(await send("p-o", [5, 6], 4)), [
      [5n, "OUT_OF_ORDER"],
      [6n, "OUT_OF_ORDER"],
    ]);
    // Sent again in order, both requests go through, at consecutive offsets.
    assert.deepEqual(outcome(await send("p-o", [3, 4], 2)), [
      [3n, 2n],
      [4n, 3n],
    ]);
    assert.deepEqual(outcome(await send("p-o", [5, 6], 4)), [
      [5n, 4n],
      [6n, 5n],
    ]);
    // 7 was given up on by the producer: 8 names 6 as its predecessor and is not held up.
    assert.deepEqual(outcome(await send("p-o", [8], 6)), [[8n, 6n]]);
    // A retry that starts with stored records is answered from the table, the new ones follow them.
    assert.deepEqual(outcome(await send("p-o", [8, 9], 6)), [
      [8n, 6n],
      [9n, 7n],
    ]);
    // A client without the check (no previous_message_id) keeps the old behaviour: not refused.
    assert.deepEqual(outcome(await send("p-o", [12], 0)), [[12n, 8n]]);
    const stored = await pullMessages(client, { topic: "ordered", partition: 0, offset: 0n }, 9);
    assert.deepEqual(
      stored.map((m) => m.messageId),
      [1n, 2n, 3n, 4n, 5n, 6n, 8n, 9n, 12n],
    );
  });

  it("answers NOT_LEADER (naming the leader), UNKNOWN_PARTITION and MESSAGE_TOO_LARGE per record", async () => {
    const notLeader = await sendOnce(follower().client, {
      topic: "orders",
      partition: 0,
      records: [{ messageId: 1n, payload: text("x") }],
    });
    const ack = notLeader.acks[0];
    assert.equal(ack?.error, ProduceError.NOT_LEADER);
    assert.equal(ack?.leaderId, leaderId);
    assert.equal(ack?.leaderAddress, cluster.brokerAddress(leaderId));

    const unknown = await sendOnce(leader().client, {
      topic: "no-such-topic",
      partition: 0,
      records: [{ messageId: 1n, payload: text("x") }],
    });
    assert.equal(unknown.acks[0]?.error, ProduceError.UNKNOWN_PARTITION);
    const unknownPartition = await sendOnce(leader().client, {
      topic: "orders",
      partition: 7,
      records: [{ messageId: 1n, payload: text("x") }],
    });
    assert.equal(unknownPartition.acks[0]?.error, ProduceError.UNKNOWN_PARTITION);

    const big = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      producerId: "p-big",
      records: [
        { messageId: 1n, payload: new Uint8Array(1024 * 1024 + 1) },
        { messageId: 2n, payload: text("small") },
      ],
    });
    assert.equal(big.acks[0]?.error, ProduceError.MESSAGE_TOO_LARGE);
    assert.match(big.acks[0]?.errorMessage ?? "", /max-message-bytes/);
    assert.equal(big.acks[1]?.error, ProduceError.NONE, "the other record of the batch is appended");
  });

  it("fails a stream with malformed input with InvalidArgument", async () => {
    for (const bad of [
      { topic: "bad topic!", partition: 0, records: [{ messageId: 1n, payload: text("x") }] },
      { topic: "orders", partition: 0, records: [] },
    ]) {
      await assert.rejects(sendOnce(leader().client, bad), (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.InvalidArgument);
        return true;
      });
    }
    await assert.rejects(
      pullMessages(leader().client, { topic: "orders", partition: 0, offset: -1n }, 1),
      (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument,
    );
  });

  it("long-polls: a pull at the end waits for new data without spinning, then max_messages ends it", async () => {
    // An acks=all record: once it is acknowledged the high watermark covers everything before it.
    const marker = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      acks: Acks.ALL,
      records: [{ messageId: 1n, payload: text("marker") }],
    });
    const from = (marker.acks[0]?.offset ?? -1n) + 1n;
    assert.ok(from > 0n);
    const cpuBefore = (await readMetric(leader().url, "process_cpu_seconds_total")) ?? 0;
    // Twenty consumers wait at the end of the log.
    const waiting = Array.from({ length: 20 }, () =>
      pullMessages(leader().client, { topic: "orders", partition: 0, offset: from }, 2, 20_000),
    );
    let settled = false;
    void Promise.all(waiting).finally(() => (settled = true));
    await sleep(1_000);
    assert.equal(settled, false, "nothing to read: the pulls are still waiting");
    const cpuAfter = (await readMetric(leader().url, "process_cpu_seconds_total")) ?? 0;
    assert.ok(cpuAfter - cpuBefore < 0.5, `waiting pulls burn no CPU (used ${cpuAfter - cpuBefore} s)`);
    const produced = Date.now();
    await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      acks: Acks.ALL,
      records: [
        { messageId: 1n, payload: text("late-1") },
        { messageId: 2n, payload: text("late-2") },
      ],
    });
    const results = await Promise.all(waiting);
    assert.ok(Date.now() - produced < 2_000, "woken by the append, not by a poll period");
    for (const messages of results) {
      assert.deepEqual(
        messages.map((m) => untext(m.payload)),
        ["late-1", "late-2"],
      );
    }
  });

  it("consumers only see records every in-sync replica has (the high watermark)", async () => {
    const marker = await sendOnce(leader().client, {
      topic: "orders",
      partition: 0,
      acks: Acks.ALL,
      records: [{ messageId: 1n, payload: text("marker") }],
    });
    const end = (marker.acks[0]?.offset ?? -1n) + 1n;
    follower().pause();
    try {
      const res = await sendOnce(leader().client, {
        topic: "orders",
        partition: 0,
        acks: Acks.LEADER,
        records: [{ messageId: 1n, payload: text("unreplicated") }],
      });
      assert.equal(res.acks[0]?.offset, end, "stored on the leader");
      await assert.rejects(
        pullMessages(leader().client, { topic: "orders", partition: 0, offset: end }, 1, 500),
        (err: unknown) => err instanceof ConnectError && err.code === Code.DeadlineExceeded,
        "not readable while the follower lacks it",
      );
    } finally {
      follower().resume();
    }
    const [visible] = await pullMessages(leader().client, { topic: "orders", partition: 0, offset: end }, 1);
    assert.equal(untext(visible?.payload ?? new Uint8Array()), "unreplicated");
  });

  it("consumer groups: offset -1 starts at the log start, then resumes after the committed offset", async () => {
    const group = { topic: "orders", partition: 0, consumerGroup: "billing" };
    assert.equal((await leader().client.getCommittedOffset(group)).offset, -1n);
    const firstTwo = await pullMessages(leader().client, { ...group, offset: -1n }, 2);
    assert.deepEqual(
      firstTwo.map((m) => m.offset),
      [0n, 1n],
    );
    await leader().client.commitOffset({ ...group, offset: 2n });
    assert.equal((await leader().client.getCommittedOffset(group)).offset, 2n);
    const next = await pullMessages(leader().client, { ...group, offset: -1n }, 1);
    assert.equal(next[0]?.offset, 2n, "a restarted consumer resumes exactly after its commit");
    await assert.rejects(
      follower().client.commitOffset({ ...group, offset: 3n }),
      (err: unknown) =>
        err instanceof ConnectError && err.code === Code.Unavailable && /does not lead/.test(err.message),
    );
    await assert.rejects(
      leader().client.commitOffset({ ...group, offset: 1_000_000n }),
      (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument,
    );
  });

  it("ignores a role with an older epoch; a demoted leader refuses produce at once", async () => {
    const roles = await cluster.createTopic("roles", { partitions: 1, replicas: 2 });
    const p0 = roles.partitions[0];
    assert.ok(p0);
    const lead = cluster.broker(p0.leader);
    const other = p0.replicas.find((id) => id !== p0.leader) as string;
    const refs = [p0.leader, other].map((id) => ({ brokerId: id, address: cluster.brokerAddress(id) }));
    const otherRef = refs[1] as { brokerId: string; address: string };
    const send = () =>
      sendOnce(lead.client, {
        topic: "roles",
        partition: 0,
        records: [{ messageId: 1n, payload: text("r") }],
      });
    assert.equal((await send()).acks[0]?.error, ProduceError.NONE);

    await lead.client.setTopicRole({
      topic: "roles",
      partition: 0,
      role: PartitionRole.FOLLOWER,
      leader: otherRef,
      replicas: [otherRef, refs[0] as { brokerId: string; address: string }],
      epoch: p0.epoch - 1n,
    });
    assert.equal((await send()).acks[0]?.error, ProduceError.NONE, "the stale role was ignored");

    await lead.client.setTopicRole({
      topic: "roles",
      partition: 0,
      role: PartitionRole.FOLLOWER,
      leader: otherRef,
      replicas: [otherRef, refs[0] as { brokerId: string; address: string }],
      epoch: p0.epoch + 100n,
    });
    const refused = (await send()).acks[0];
    assert.equal(refused?.error, ProduceError.NOT_LEADER);
    assert.equal(refused?.leaderId, other);
    // The sentinel's KeepAlive still lists the old (lower) epoch: the broker must not flip back.
    await sleep(1_000);
    assert.equal((await send()).acks[0]?.error, ProduceError.NOT_LEADER);
  });

  it("exports broker metrics", async () => {
    await waitFor(
      async () => ((await readMetric(leader().url, "goulette_broker_messages_in_total")) ?? 0) >= 5,
      {
        what: "messages_in",
      },
    );
    assert.ok(((await readMetric(leader().url, "goulette_broker_messages_out_total")) ?? 0) > 0);
    assert.ok(((await readMetric(leader().url, "goulette_broker_fsync_duration_seconds_count")) ?? 0) > 0);
    assert.ok(((await readMetric(leader().url, "goulette_broker_log_bytes")) ?? 0) > 0);
    assert.ok(((await readMetric(leader().url, "goulette_broker_produce_errors_total")) ?? 0) >= 3);
  });
});
