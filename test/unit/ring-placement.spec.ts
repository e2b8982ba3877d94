import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidArgumentError } from "../../src/errors.js";
import { createHashRing, type HashRing } from "../../src/ring/hash-ring.js";
import {
  countMovedReplicas,
  partitionKey,
  placePartitions,
  type PartitionPlacement,
} from "../../src/ring/placement.js";

const TOPICS = Array.from({ length: 1000 }, (_, i) => `topic-${i}`);
const PARTITIONS = 3;
const REPLICATION = 3;
const TEN = Array.from({ length: 10 }, (_, i) => `broker-${i}`);

/** Placements of every test topic, by topic. */
function placeAll(ring: HashRing, accept?: (id: string) => boolean): Map<string, PartitionPlacement[]> {
  return new Map(TOPICS.map((t) => [t, placePartitions(ring, t, PARTITIONS, REPLICATION, accept)]));
}

function movedAcross(
  before: Map<string, PartitionPlacement[]>,
  after: Map<string, PartitionPlacement[]>,
): number {
  let moved = 0;
  for (const topic of TOPICS) moved += countMovedReplicas(before.get(topic) ?? [], after.get(topic) ?? []);
  return moved;
}

/** Every (topic, partition) with its replicas before and after. */
function* pairs(before: Map<string, PartitionPlacement[]>, after: Map<string, PartitionPlacement[]>) {
  for (const topic of TOPICS) {
    const a = after.get(topic) ?? [];
    for (const [i, b] of (before.get(topic) ?? []).entries()) {
      yield { where: `${topic}#${b.partition}`, before: b.replicas, after: a[i]?.replicas ?? [] };
    }
  }
}

describe("partitionKey", () => {
  it("is topic#partition", () => {
    assert.equal(partitionKey("orders", 0), "orders#0");
    assert.equal(partitionKey("a#b", 12), "a#b#12");
  });

  it("rejects an empty topic and impossible partitions", () => {
    assert.throws(() => partitionKey("", 0), InvalidArgumentError);
    for (const p of [-1, 1.5, Number.NaN]) assert.throws(() => partitionKey("t", p), InvalidArgumentError);
  });
});

describe("placePartitions", () => {
  const ring = createHashRing({ brokers: TEN });

  it("places each partition on the ring's pick for topic#partition, preferred leader first", () => {
    const placements = placePartitions(ring, "orders", 6, 3);
    assert.deepEqual(
      placements.map((p) => p.partition),
      [0, 1, 2, 3, 4, 5],
    );
    for (const p of placements) {
      assert.deepEqual(p.replicas, ring.pick(`orders#${p.partition}`, 3));
      assert.equal(new Set(p.replicas).size, 3, "a replica set repeats a broker");
    }
    // Partitions of one topic spread: with 10 brokers, 6 partitions do not all share one leader.
    assert.ok(new Set(placements.map((p) => p.replicas[0])).size > 1);
  });

  it("is deterministic whatever order the ring's brokers were added in", () => {
    let other = createHashRing();
    for (const id of [...TEN].reverse()) other = other.withBroker(id);
    for (const topic of TOPICS.slice(0, 200)) {
      assert.deepEqual(placePartitions(other, topic, 4, 3), placePartitions(ring, topic, 4, 3));
    }
  });

  it("never repeats a broker in a replica set", () => {
    for (const [topic, placements] of placeAll(ring)) {
      for (const p of placements) {
        assert.equal(p.replicas.length, REPLICATION);
        assert.equal(
          new Set(p.replicas).size,
          REPLICATION,
          `${topic}#${p.partition}: ${p.replicas.join(",")}`,
        );
      }
    }
  });

  it("skips brokers that accept rejects", () => {
    const down = new Set(["broker-1", "broker-7"]);
    for (const p of placePartitions(ring, "orders", 50, 3, (id) => !down.has(id))) {
      assert.equal(p.replicas.length, 3);
      for (const id of p.replicas) assert.ok(!down.has(id), `down broker ${id} placed`);
    }
  });

  it("gives fewer replicas when the ring has fewer brokers than asked", () => {
    const small = createHashRing({ brokers: ["a", "b"] });
    for (const p of placePartitions(small, "orders", 4, 3))
      assert.deepEqual([...p.replicas].sort(), ["a", "b"]);
    for (const p of placePartitions(createHashRing(), "orders", 2, 3)) assert.deepEqual(p.replicas, []);
  });

  it("rejects impossible partition and replica counts", () => {
    for (const n of [0, -1, 2.5]) {
      assert.throws(() => placePartitions(ring, "t", n, 3), InvalidArgumentError, `partitions ${n}`);
      assert.throws(() => placePartitions(ring, "t", 3, n), InvalidArgumentError, `replicas ${n}`);
    }
    assert.throws(() => placePartitions(ring, "", 1, 1), InvalidArgumentError);
  });
});

describe("countMovedReplicas", () => {
  const before: PartitionPlacement[] = [
    { partition: 0, replicas: ["a", "b", "c"] },
    { partition: 1, replicas: ["b", "c", "d"] },
  ];

  it("counts replicas placed on a broker that did not hold the partition", () => {
    assert.equal(countMovedReplicas(before, before), 0);
    assert.equal(
      countMovedReplicas(before, [
        { partition: 0, replicas: ["c", "a", "b"] },
        { partition: 1, replicas: ["d", "b", "c"] },
      ]),
      0,
      "a leader change moves no data",
    );
    assert.equal(
      countMovedReplicas(before, [
        { partition: 0, replicas: ["a", "b", "x"] },
        { partition: 1, replicas: ["x", "y", "d"] },
      ]),
      3,
    );
    assert.equal(countMovedReplicas(before, [...before, { partition: 2, replicas: ["a", "b"] }]), 2);
    assert.equal(countMovedReplicas([], before), 6);
  });

  it("rejects a placement that lists a partition twice", () => {
    const twice = [before[0], before[0]] as PartitionPlacement[];
    assert.throws(() => countMovedReplicas(twice, before), InvalidArgumentError);
    assert.throws(() => countMovedReplicas(before, twice), InvalidArgumentError);
  });
});

describe("placement under membership changes (10 brokers, 1,000 topics × 3 partitions, replication 3)", () => {
  const ring = createHashRing({ brokers: TEN });
  const before = placeAll(ring);
  const totalSlots = TOPICS.length * PARTITIONS * REPLICATION;

  it("adding an 11th broker moves about 1/11 of the replicas, all of them onto the new broker", (t) => {
    const after = placeAll(ring.withBroker("broker-10"));
    const moved = movedAcross(before, after);
    const fraction = moved / totalSlots;
    t.diagnostic(
      `moved ${moved} of ${totalSlots} replicas (${(fraction * 100).toFixed(2)}%, ideal ${(100 / 11).toFixed(2)}%)`,
    );
    assert.ok(fraction >= 0.5 / 11 && fraction <= 2 / 11, `moved fraction ${fraction}`);

    for (const { where, before: b, after: a } of pairs(before, after)) {
      const gained = a.filter((id) => !b.includes(id));
      assert.ok(gained.length <= 1, `${where} moved ${gained.length} replicas`);
      if (gained.length === 0) {
        assert.deepEqual(a, b, `${where} changed without gaining the new broker`);
      } else {
        assert.deepEqual(gained, ["broker-10"], `${where} gained ${gained.join(",")}`);
        // The new broker slots in; the others keep their order and the last one drops off.
        assert.deepEqual(
          a.filter((id) => id !== "broker-10"),
          b.slice(0, REPLICATION - 1),
          where,
        );
      }
    }
  });

  it("removing a broker moves only the replicas it held, each to one replacement", () => {
    const gone = "broker-3";
    const after = placeAll(ring.withoutBroker(gone));
    let held = 0;
    for (const { where, before: b, after: a } of pairs(before, after)) {
      assert.ok(!a.includes(gone), `${where} still on the removed broker`);
      if (!b.includes(gone)) {
        assert.deepEqual(a, b, `${where} moved though it had no replica on ${gone}`);
        continue;
      }
      held++;
      const survivors = b.filter((id) => id !== gone);
      assert.deepEqual(a.slice(0, survivors.length), survivors, `${where}: survivors must keep their order`);
      assert.equal(a.length, REPLICATION);
      assert.ok(!b.includes(a[REPLICATION - 1] ?? ""), `${where}: the replacement must be a new broker`);
    }
    assert.ok(held > 0);
    assert.equal(movedAcross(before, after), held);
  });

  it("marking a broker down (accept) places exactly as if it had left the ring", () => {
    const down = "broker-6";
    const skipping = placeAll(ring, (id) => id !== down);
    const without = placeAll(ring.withoutBroker(down));
    assert.deepEqual([...skipping], [...without]);
  });

  it("balances replicas and leaders within ±35% of the mean", (t) => {
    const replicas = new Map<string, number>(TEN.map((id) => [id, 0]));
    const leaders = new Map<string, number>(TEN.map((id) => [id, 0]));
    for (const placements of before.values()) {
      for (const p of placements) {
        for (const id of p.replicas) replicas.set(id, (replicas.get(id) ?? 0) + 1);
        const leader = p.replicas[0] ?? "";
        leaders.set(leader, (leaders.get(leader) ?? 0) + 1);
      }
    }
    const check = (what: string, counts: Map<string, number>, total: number) => {
      const mean = total / TEN.length;
      const values = [...counts.values()];
      t.diagnostic(`${what}: mean ${mean}, min ${Math.min(...values)}, max ${Math.max(...values)}`);
      for (const [id, n] of counts) {
        assert.ok(Math.abs(n - mean) <= 0.35 * mean, `${id} has ${n} ${what}, mean ${mean}`);
      }
    };
    check("replicas", replicas, totalSlots);
    check("leaders", leaders, TOPICS.length * PARTITIONS);
  });
});
