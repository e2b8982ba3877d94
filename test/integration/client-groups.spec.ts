import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import {
  Consumer,
  FailedPreconditionError,
  Producer,
  createNodeTransport,
  type ClientEvent,
  type ClientTransport,
  type ConsumedMessage,
  type ConsumerOptions,
} from "../../src/index.js";
import { RANGE_PROBE_GROUP } from "../../src/client/partition-fetcher.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Consumer groups through the SDK on a real cluster (1 sentinel, 2 brokers): in-process Consumers of
 * one group share a topic's partitions, hand them over cooperatively when members join and leave, and
 * consume every message once, in order per partition; a consumer without a group commits nothing;
 * pause/resume/seek; run() with partitionsConcurrently.
 */

type Options = Omit<ConsumerOptions, "transport" | "ownsTransport" | "sentinels">;

/** Who consumed what, and who held which partition when (from the members' events). */
class GroupWatch {
  readonly consumed = new Map<string, Array<{ member: string; offset: number; value: string }>>();
  /** partition key → member holding it (between its `assigned` and `revoked`/`lost` events). */
  readonly holders = new Map<string, string>();
  readonly violations: string[] = [];
  readonly events: Array<{ member: string; event: ClientEvent }> = [];

  onEvent(member: string): (event: ClientEvent) => void {
    return (event) => {
      this.events.push({ member, event });
      if (event.type === "assigned") {
        for (const p of event.partitions) {
          const key = `${p.topic}/${p.partition}`;
          const holder = this.holders.get(key);
          if (holder !== undefined) this.violations.push(`${key} given to ${member} while ${holder} held it`);
          this.holders.set(key, member);
        }
      } else if (event.type === "revoked" || event.type === "lost") {
        for (const p of event.partitions) {
          const key = `${p.topic}/${p.partition}`;
          if (this.holders.get(key) === member) this.holders.delete(key);
        }
      }
    };
  }

  record(member: string, m: ConsumedMessage): void {
    const key = `${m.topic}/${m.partition}`;
    if (this.holders.get(key) !== member)
      this.violations.push(`${member} consumed ${key}@${m.offset} without holding it`);
    const list = this.consumed.get(key) ?? [];
    list.push({ member, offset: m.offset, value: m.text() });
    this.consumed.set(key, list);
  }

  total(): number {
    let n = 0;
    for (const list of this.consumed.values()) n += list.length;
    return n;
  }

  /** Every partition's offsets 0..n-1 exactly once, in order (across members). */
  assertOncePerPartitionInOrder(expected: Map<string, number>): void {
    for (const [key, count] of expected) {
      const offsets = (this.consumed.get(key) ?? []).map((c) => c.offset);
      assert.deepEqual(offsets, [...Array(count).keys()], `${key}: each offset once, in order`);
    }
  }
}

describe("Consumer groups through the SDK", () => {
  let cluster: TestCluster;
  let transport: ClientTransport;
  let producer: Producer;
  const consumers: Consumer[] = [];

  const consumer = (options: Options): Consumer => {
    const c = new Consumer({ sentinels: cluster.sentinelUrls, transport, ...options });
    consumers.push(c);
    return c;
  };

  /** Produces `perPartition` messages to each partition; returns the expected count per partition key. */
  const produce = async (topic: string, partitions: number, perPartition: number, tag = "") => {
    const acks = [];
    for (let i = 0; i < perPartition; i++) {
      for (let p = 0; p < partitions; p++) {
        acks.push(producer.send({ topic, partition: p, value: `${tag}${p}:${i}` }));
      }
    }
    await Promise.all(acks);
  };

  before(async () => {
    cluster = await startCluster({ sentinels: 1, brokers: 2 });
    transport = createNodeTransport();
    producer = new Producer({ sentinels: cluster.sentinelUrls, transport });
  });
  after(async () => {
    await Promise.all(consumers.map((c) => c.close().catch(() => undefined)));
    await producer?.close();
    transport?.close();
    await cluster?.stop();
  });

  it("two, then three members split six partitions 3/3 then 2/2/2, each message once and in order", async () => {
    const topic = "orders";
    await cluster.createTopic(topic, { partitions: 6, replicas: 2 });
    await produce(topic, 6, 50, "a");
    const watch = new GroupWatch();
    const stops = new AbortController();
    const runs: Array<Promise<void>> = [];
    const member = (name: string) => {
      const c = consumer({ topic, group: "billing", from: "earliest", onEvent: watch.onEvent(name) });
      runs.push(c.run((m) => watch.record(name, m), { signal: stops.signal }));
      return c;
    };
    const a = member("a");
    const b = member("b");
    await waitFor(() => a.assignment().length === 3 && b.assignment().length === 3, {
      timeoutMs: 15_000,
      what: "a 3/3 split",
    });
    await waitFor(() => watch.total() === 300, { timeoutMs: 15_000, what: "the first 300 messages" });

    const c = member("c");
    await waitFor(() => [a, b, c].every((x) => x.assignment().length === 2), {
      timeoutMs: 15_000,
      what: "a 2/2/2 split",
    });
    const keys = [a, b, c].flatMap((x) => x.assignment().map((p) => `${p.topic}/${p.partition}`));
    assert.equal(new Set(keys).size, 6, `every partition once: ${keys.join(" ")}`);
    await produce(topic, 6, 50, "b");
    await waitFor(() => watch.total() === 600, { timeoutMs: 15_000, what: "all 600 messages" });

    assert.deepEqual(watch.violations, []);
    watch.assertOncePerPartitionInOrder(new Map([...Array(6).keys()].map((p) => [`${topic}/${p}`, 100])));
    for (const [key, list] of watch.consumed) {
      assert.deepEqual(
        list.map((x) => x.value),
        [...Array(100).keys()].map((i) =>
          i < 50 ? `a${key.split("/")[1]}:${i}` : `b${key.split("/")[1]}:${i - 50}`,
        ),
      );
    }
    // The members report the group in their stats.
    const stats = c.stats().group;
    assert.ok(stats);
    assert.equal(stats.partitions.length, 2);
    assert.ok(stats.memberId !== "" && stats.generation > 0 && stats.rebalances >= 1, JSON.stringify(stats));
    assert.ok(
      watch.events.some((e) => e.member === "a" && e.event.type === "revoked"),
      "a released partitions to c",
    );
    stops.abort();
    await Promise.all(runs);
  });

  it("moves a closing member's partitions to the others at once, after committing them", async () => {
    const topic = "moves";
    await cluster.createTopic(topic, { partitions: 6, replicas: 2 });
    await produce(topic, 6, 20);
    const watch = new GroupWatch();
    const stops = new AbortController();
    const runs: Array<Promise<void>> = [];
    const members = ["a", "b", "c"].map((name) => {
      const c = consumer({ topic, group: "movers", from: "earliest", onEvent: watch.onEvent(name) });
      runs.push(c.run((m) => watch.record(name, m), { signal: stops.signal }));
      return c;
    });
    await waitFor(() => members.every((m) => m.assignment().length === 2), {
      timeoutMs: 15_000,
      what: "2/2/2",
    });
    await waitFor(() => watch.total() === 120, { timeoutMs: 15_000, what: "the first 120 messages" });

    const [a, b, c] = members as [Consumer, Consumer, Consumer];
    const closedAt = Date.now();
    await c.close();
    await waitFor(() => a.assignment().length === 3 && b.assignment().length === 3, {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: "the closed member's partitions on the others",
    });
    const moveMs = Date.now() - closedAt;
    // The session timeout is 10 s: a leave moves the partitions without waiting for it.
    assert.ok(moveMs < 3_000, `moved in ${moveMs} ms`);
    const revoked = watch.events.find((e) => e.member === "c" && e.event.type === "revoked");
    assert.ok(revoked?.event.type === "revoked" && revoked.event.committed, "c committed what it consumed");

    await produce(topic, 6, 20);
    await waitFor(() => watch.total() === 240, { timeoutMs: 15_000, what: "all 240 messages" });
    assert.deepEqual(watch.violations, []);
    watch.assertOncePerPartitionInOrder(new Map([...Array(6).keys()].map((p) => [`${topic}/${p}`, 40])));
    stops.abort();
    await Promise.all(runs);
  });

  it("a static member's close() keeps its partitions for its restart: same partitions, no rebalance", async () => {
    const topic = "statics";
    await cluster.createTopic(topic, { partitions: 4, replicas: 2 });
    const sentinel = cluster.sentinel();
    const pod = consumer({ topic, group: "pods", instanceId: "pod-0", sessionTimeoutMs: 10_000 });
    const other = consumer({ topic, group: "pods" });
    await Promise.all([pod.start(), other.start()]);
    await waitFor(() => pod.assignment().length === 2 && other.assignment().length === 2, {
      timeoutMs: 15_000,
      what: "2/2",
    });
    const podPartitions = pod
      .assignment()
      .map((p) => p.partition)
      .sort();
    const generation = (await sentinel.describeGroup({ group: "pods" })).generation;
    await pod.close();
    // Still a member with its partitions: nothing moved to the other member.
    const described = await sentinel.describeGroup({ group: "pods" });
    assert.equal(described.members.length, 2, "the static member did not leave");
    assert.equal(described.generation, generation, "no rebalance");
    assert.equal(other.assignment().length, 2);

    const restarted = consumer({ topic, group: "pods", instanceId: "pod-0", sessionTimeoutMs: 10_000 });
    await restarted.start();
    await waitFor(() => restarted.assignment().length === 2, {
      timeoutMs: 10_000,
      what: "the restart's partitions",
    });
    assert.deepEqual(
      restarted
        .assignment()
        .map((p) => p.partition)
        .sort(),
      podPartitions,
    );
    assert.equal(other.assignment().length, 2, "the other member was not disturbed");
    // A dynamic member's close() leaves at once.
    await other.close();
    await waitFor(() => restarted.assignment().length === 4, {
      timeoutMs: 5_000,
      what: "the leaver's partitions",
    });
  });

  it("a revocation waits for the message being handled, calls onRevoked, commits, then hands over", async () => {
    const topic = "handover";
    await cluster.createTopic(topic, { partitions: 2, replicas: 2 });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const handled: string[] = [];
    const revokedCalls: Array<{ partitions: string[]; handledThen: string[] }> = [];
    const a = consumer({
      topic,
      group: "handover",
      from: "earliest",
      onRevoked: (partitions) => {
        revokedCalls.push({
          partitions: partitions.map((p) => `${p.topic}/${p.partition}`),
          handledThen: [...handled],
        });
      },
    });
    const stop = new AbortController();
    const running = a.run(
      async (m) => {
        await gate;
        handled.push(`${m.topic}/${m.partition}@${m.offset}`);
      },
      { signal: stop.signal, partitionsConcurrently: 2 },
    );
    await produce(topic, 2, 1);
    await waitFor(() => a.stats().delivered === 2, {
      timeoutMs: 15_000,
      what: "both messages in a's handlers",
    });

    const b = consumer({ topic, group: "handover", from: "earliest" });
    await b.start();
    await waitFor(() => a.stats().group?.revoking.length === 1, {
      timeoutMs: 15_000,
      what: "a revoking one",
    });
    const moving = `${topic}/${a.stats().group?.revoking[0]?.partition}`;
    assert.deepEqual(b.assignment(), [], "b waits while a's handler runs");
    assert.deepEqual(
      b.stats().group?.pending.map((p) => `${p.topic}/${p.partition}`),
      [moving],
    );
    assert.equal(revokedCalls.length, 0, "onRevoked only once the handler is done");

    open();
    await waitFor(() => b.assignment().length === 1, {
      timeoutMs: 15_000,
      what: "b taking the partition over",
    });
    assert.equal(revokedCalls.length, 1);
    assert.deepEqual(revokedCalls[0]?.partitions, [moving]);
    assert.ok(revokedCalls[0]?.handledThen.includes(`${moving}@0`), JSON.stringify(revokedCalls));
    const partition = Number(moving.split("/")[1]);
    const layout = await cluster.layout(topic);
    const leader = cluster.broker(layout.partitions[partition]?.leader as string).client;
    const committed = await leader.getCommittedOffset({ consumerGroup: "handover", topic, partition });
    assert.equal(committed.offset, 1n, "a committed the handled message before the release");

    await producer.send({ topic, partition, value: "next" });
    const next = await b.receive({ timeoutMs: 10_000 });
    assert.deepEqual([next?.partition, next?.offset, next?.text()], [partition, 1, "next"], "no duplicate");
    stop.abort();
    await running;
  });

  it("stops a partition whose commit is fenced (ABORTED) and reports it lost", async () => {
    const topic = "fenced";
    const layout = await cluster.createTopic(topic, { partitions: 2, replicas: 2 });
    const watch = new GroupWatch();
    const c = consumer({ topic, group: "fenced", from: "earliest", onEvent: watch.onEvent("c") });
    const stop = new AbortController();
    const running = c.run((m) => watch.record("c", m), { signal: stop.signal });
    await produce(topic, 2, 1);
    await waitFor(() => c.stats().committed[`${topic}/0`] === 1 && c.stats().committed[`${topic}/1`] === 1, {
      timeoutMs: 15_000,
      what: "both partitions committed",
    });
    // What a newer owner's take-over does: raise the group's fence on partition 0 past c's epoch.
    const leader = cluster.broker(layout.partitions[0]?.leader as string).client;
    await leader.getCommittedOffset({
      consumerGroup: "fenced",
      topic,
      partition: 0,
      memberEpoch: 1_000_000n,
    });
    await producer.send({ topic, partition: 0, value: "b" });
    await waitFor(() => watch.events.some((e) => e.event.type === "lost"), {
      timeoutMs: 15_000,
      what: "lost",
    });
    const lost = watch.events.find((e) => e.event.type === "lost")?.event;
    assert.ok(lost?.type === "lost");
    assert.deepEqual(lost.partitions, [{ topic, partition: 0 }]);
    assert.match(lost.reason, /newer owner/);
    assert.deepEqual(
      c.assignment().map((p) => p.partition),
      [1],
    );
    assert.equal(c.stats().group?.lostPartitions, 1);

    await producer.send({ topic, partition: 0, value: "c" });
    await producer.send({ topic, partition: 1, value: "b" });
    await waitFor(() => watch.consumed.get(`${topic}/1`)?.length === 2, { timeoutMs: 15_000, what: "1@1" });
    assert.deepEqual(
      watch.consumed.get(`${topic}/0`)?.map((m) => m.value),
      ["0:0", "b"],
      "nothing of the lost partition after the loss",
    );
    assert.ok(
      c.assignment().every((p) => p.partition !== 0),
      "not taken again at the fenced epoch",
    );
    stop.abort();
    await running;
  });

  it("shares several topics in one group and commits a message per topic", async () => {
    const topics = ["multi-a", "multi-b"];
    for (const topic of topics) await cluster.createTopic(topic, { partitions: 2, replicas: 2 });
    const options = { topics, group: "multi", from: "earliest" as const, autoCommit: false };
    const members = [consumer(options), consumer(options)];
    await Promise.all(members.map((m) => m.start()));
    await waitFor(() => members.every((m) => m.assignment().length === 2), {
      timeoutMs: 15_000,
      what: "2/2",
    });
    const held = members.flatMap((m) => m.assignment().map((p) => `${p.topic}/${p.partition}`));
    assert.equal(new Set(held).size, 4, held.join(" "));
    for (const topic of topics) await produce(topic, 2, 3);

    const last = new Map<string, { member: Consumer; message: ConsumedMessage }>();
    let total = 0;
    await Promise.all(
      members.map(async (member) => {
        const deadline = Date.now() + 15_000;
        while (total < 12 && Date.now() < deadline) {
          for (const m of await member.receiveBatch({ timeoutMs: 200 })) {
            const key = `${m.topic}/${m.partition}`;
            assert.ok(
              member.assignment().some((p) => `${p.topic}/${p.partition}` === key),
              `${key} from its owner`,
            );
            last.set(key, { member, message: m });
            total++;
          }
        }
      }),
    );
    assert.equal(total, 12);
    for (const { member, message } of last.values()) await member.commit(message);
    for (const topic of topics) {
      const layout = await cluster.layout(topic);
      for (const p of layout.partitions) {
        const res = await cluster.broker(p.leader).client.getCommittedOffset({
          consumerGroup: "multi",
          topic,
          partition: p.partition,
        });
        assert.equal(res.offset, 3n, `${topic}/${p.partition} committed through commit(message)`);
      }
    }
  });

  it("reads without a group from earliest, latest or an offset, and commits nothing", async () => {
    const topic = "peeks";
    const layout = await cluster.createTopic(topic, { partitions: 2, replicas: 2 });
    await produce(topic, 2, 10);

    const all = consumer({ topic, from: "earliest" });
    const seen: ConsumedMessage[] = [];
    while (seen.length < 20) {
      const batch = await all.receiveBatch({ timeoutMs: 10_000 });
      assert.ok(batch.length > 0, `peeked ${seen.length} of 20`);
      seen.push(...batch);
    }
    assert.equal(all.stats().group, undefined);
    await assert.rejects(all.commit(), FailedPreconditionError);

    const fromOffset = consumer({ topic, partitions: [1], from: 7 });
    const tail = [];
    for (let i = 0; i < 3; i++) tail.push(await fromOffset.receive({ timeoutMs: 10_000 }));
    assert.deepEqual(
      tail.map((m) => [m?.partition, m?.offset, m?.text()]),
      [
        [1, 7, "1:7"],
        [1, 8, "1:8"],
        [1, 9, "1:9"],
      ],
    );

    const latest = consumer({ topic, from: "latest" });
    await latest.start();
    await waitFor(() => Object.keys(latest.stats().positions).length === 2, { what: "latest positions" });
    await producer.send({ topic, partition: 0, value: "new" });
    const fresh = await latest.receive({ timeoutMs: 10_000 });
    assert.deepEqual([fresh?.partition, fresh?.offset, fresh?.text()], [0, 10, "new"]);

    await Promise.all([all.close(), fromOffset.close(), latest.close()]);
    for (const p of layout.partitions) {
      // The only group name such a consumer ever sends: the log-range lookup's.
      const res = await cluster.broker(p.leader).client.getCommittedOffset({
        consumerGroup: RANGE_PROBE_GROUP,
        topic,
        partition: p.partition,
      });
      assert.equal(res.offset, -1n, `nothing committed on ${topic}/${p.partition}`);
    }
  });

  it("pauses, resumes and seeks partitions of a group member", async () => {
    const topic = "controls";
    await cluster.createTopic(topic, { partitions: 2, replicas: 2 });
    await produce(topic, 2, 5);
    const c = consumer({ topic, group: "controls", from: "earliest", autoCommit: false });
    await c.start();
    await waitFor(() => c.assignment().length === 2, { timeoutMs: 15_000, what: "both partitions" });
    const take = async (n: number) => {
      const got: string[] = [];
      while (got.length < n) {
        const m = await c.receive({ timeoutMs: 10_000 });
        assert.ok(m, `received ${got.length} of ${n}`);
        got.push(`${m.partition}@${m.offset}`);
      }
      return got;
    };
    const first = await take(10);
    assert.deepEqual(
      first.filter((k) => k.startsWith("0@")),
      ["0@0", "0@1", "0@2", "0@3", "0@4"],
    );

    c.pause([{ topic, partition: 0 }]);
    assert.deepEqual(c.paused(), [{ topic, partition: 0 }]);
    assert.equal(c.assignment().length, 2, "a paused partition stays owned");
    await produce(topic, 2, 3);
    const whilePaused = await take(3);
    assert.deepEqual(whilePaused, ["1@5", "1@6", "1@7"]);
    assert.equal(await c.receive({ timeoutMs: 300 }), undefined, "nothing of the paused partition");

    // One partition active at a time from here, so that the order of what arrives is known.
    c.pause([{ topic, partition: 1 }]);
    c.resume([{ topic, partition: 0 }]);
    assert.deepEqual(await take(3), ["0@5", "0@6", "0@7"], "resumed after the last message handed out");
    c.seek({ topic, partition: 0 }, 6);
    assert.deepEqual(await take(2), ["0@6", "0@7"]);

    // A seek made while paused applies at resume.
    c.pause([{ topic, partition: 0 }]);
    c.seek({ topic, partition: 1 }, "earliest");
    c.resume([{ topic, partition: 1 }]);
    assert.deepEqual(
      await take(8),
      [...Array(8).keys()].map((o) => `1@${o}`),
    );
    c.seek({ topic, partition: 1 }, 4);
    assert.deepEqual(await take(4), ["1@4", "1@5", "1@6", "1@7"]);
    assert.equal(await c.receive({ timeoutMs: 300 }), undefined);
    assert.throws(() => c.pause([{ topic, partition: 9 }]), /not read by this consumer/);
  });

  it("run() with partitionsConcurrently handles partitions in parallel, each in order", async () => {
    const topic = "parallel";
    await cluster.createTopic(topic, { partitions: 6, replicas: 2 });
    await produce(topic, 6, 20);
    const c = consumer({ topic, group: "parallel", from: "earliest" });
    const busy = new Set<number>();
    const seen = new Map<number, number[]>();
    let peak = 0;
    let total = 0;
    const overlaps: string[] = [];
    const stop = new AbortController();
    await c.run(
      async (m) => {
        if (busy.has(m.partition)) overlaps.push(`${m.partition}@${m.offset}`);
        busy.add(m.partition);
        peak = Math.max(peak, busy.size);
        await delay(1 + (m.offset % 3));
        busy.delete(m.partition);
        seen.set(m.partition, [...(seen.get(m.partition) ?? []), m.offset]);
        if (++total === 120) stop.abort();
      },
      { partitionsConcurrently: 3, signal: stop.signal },
    );
    assert.deepEqual(overlaps, [], "never two handlers of one partition");
    assert.equal(peak, 3, "three handlers at once, not more");
    for (let p = 0; p < 6; p++)
      assert.deepEqual(seen.get(p), [...Array(20).keys()], `partition ${p} in order`);
    // Everything handled is committed at close.
    await c.close();
    const layout = await cluster.layout(topic);
    for (const p of layout.partitions) {
      const res = await cluster.broker(p.leader).client.getCommittedOffset({
        consumerGroup: "parallel",
        topic,
        partition: p.partition,
      });
      assert.equal(res.offset, 20n, `partition ${p.partition} committed`);
    }
  });
});
