import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  balanceLeaders,
  leaderCounts,
  leaderFirst,
  type LeaderCandidates,
} from "../../src/fsm/leader-balance.js";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { planLeaderBalance, planNewTopic } from "../../src/fsm/planner.js";
import { ClusterState } from "../../src/fsm/state.js";
import { createHashRing } from "../../src/ring/hash-ring.js";
import { generator } from "../helpers/group-fixtures.js";

/** Max − min partitions led over the brokers that appear in some candidate list. */
function spread(leaders: readonly string[], partitions: readonly LeaderCandidates[]): number {
  const counts = new Map<string, number>();
  for (const p of partitions) for (const id of p.eligible ?? p.replicas) counts.set(id, 0);
  for (const id of leaders) counts.set(id, (counts.get(id) ?? 0) + 1);
  return Math.max(...counts.values()) - Math.min(...counts.values());
}

/** The oracle: the smallest max and the largest min any choice of leaders reaches (exhaustive). */
function bestBounds(partitions: readonly LeaderCandidates[]): { max: number; min: number } {
  const brokers = [...new Set(partitions.flatMap((p) => p.eligible ?? p.replicas))];
  let bestMax = Infinity;
  let bestMin = -Infinity;
  const counts = new Map(brokers.map((id) => [id, 0]));
  const walk = (i: number): void => {
    if (i === partitions.length) {
      bestMax = Math.min(bestMax, Math.max(...counts.values()));
      bestMin = Math.max(bestMin, Math.min(...counts.values()));
      return;
    }
    for (const id of partitions[i]!.eligible ?? partitions[i]!.replicas) {
      counts.set(id, counts.get(id)! + 1);
      walk(i + 1);
      counts.set(id, counts.get(id)! - 1);
    }
  };
  walk(0);
  return { max: bestMax, min: bestMin };
}

/** A state machine fed through a tiny in-memory log, with `brokerIds` registered. */
function registeredCluster(brokerIds: readonly string[]) {
  const state = new ClusterState();
  let id = 1;
  const append = (command: Command) =>
    state.apply({ ...command, id: id++, timestamp: 1_700_000_000_000, leaderId: "s" } as Operation);
  for (const brokerId of brokerIds) append({ type: "registerBroker", data: { brokerId, address: brokerId } });
  return { state, append };
}

function randomTopic(
  rng: ReturnType<typeof generator>,
  brokers: number,
  partitions: number,
  replicas: number,
) {
  const ids = Array.from({ length: brokers }, (_, i) => `b${i}`);
  return Array.from({ length: partitions }, () => ({ replicas: rng.shuffle(ids).slice(0, replicas) }));
}

describe("balanceLeaders", () => {
  it("reaches the best max and min any choice of leaders can (exhaustive oracle, 400 random topics)", () => {
    const rng = generator(20261205);
    for (let round = 0; round < 400; round++) {
      const topic = randomTopic(rng, rng.int(2, 6), rng.int(1, 7), rng.int(1, 3));
      const leaders = balanceLeaders(topic);
      topic.forEach((p, i) =>
        assert.ok(p.replicas.includes(leaders[i]!), `round ${round}: leader from its set`),
      );
      const counts = [
        ...leaderCounts(topic.map((p, i) => ({ replicas: leaderFirst(p.replicas, leaders[i]!) }))),
      ];
      const best = bestBounds(topic);
      const values = counts.map(([, n]) => n);
      assert.equal(Math.max(...values), best.max, `round ${round}: ${JSON.stringify(topic)} → ${leaders}`);
      assert.equal(Math.min(...values), best.min, `round ${round}: ${JSON.stringify(topic)} → ${leaders}`);
    }
  });

  it("only hands leadership to eligible replicas, and keeps a partition without one as it is", () => {
    const partitions: LeaderCandidates[] = [
      { replicas: ["a", "b", "c"], eligible: ["a"] },
      { replicas: ["a", "b", "c"], eligible: ["a", "b"] },
      { replicas: ["a", "b", "c"], eligible: ["a", "c"] },
      { replicas: ["d", "a"], eligible: [] },
    ];
    const leaders = balanceLeaders(partitions);
    assert.deepEqual(leaders, ["a", "b", "c", "d"]);
  });

  it("moves nothing when the current leaders are already balanced", () => {
    const rng = generator(7);
    for (let round = 0; round < 100; round++) {
      const topic = randomTopic(rng, 4, 8, 3);
      const balanced = balanceLeaders(topic).map((leader, i) => ({
        replicas: leaderFirst(topic[i]!.replicas, leader),
      }));
      assert.deepEqual(
        balanceLeaders(balanced),
        balanced.map((p) => p.replicas[0]),
        `round ${round}: a balanced topic stays as it is`,
      );
    }
  });

  it("follows a chain of hand-overs when no direct one helps", () => {
    // a leads p0 and p1; p1 can only go to b, and b's p2 can only go to c, which leads nothing.
    const partitions: LeaderCandidates[] = [
      { replicas: ["a"] },
      { replicas: ["a", "b"] },
      { replicas: ["b", "c"] },
      { replicas: ["c", "a"], eligible: ["a"] },
    ];
    // Start: a leads p0, p1, p3 (3); b leads p2 (1); c leads none (0). Best: a 2, b 1, c 1.
    const leaders = balanceLeaders(partitions);
    assert.deepEqual(leaders, ["a", "b", "c", "a"]);
    assert.equal(spread(leaders, partitions), 1);
  });
});

describe("planNewTopic spreads leaders within each topic", () => {
  const cluster = (brokers: number) => {
    const { state } = registeredCluster(Array.from({ length: brokers }, (_, i) => `broker-${i}`));
    return { state, ring: createHashRing({ brokers: state.ringMembers() }) };
  };

  for (const [brokers, partitions] of [
    [3, 3],
    [6, 6],
    [10, 30],
  ] as const) {
    it(`${partitions} partitions on ${brokers} brokers: no broker leads two more than another (500 topics)`, () => {
      const { state, ring } = cluster(brokers);
      for (let t = 0; t < 500; t++) {
        const command = planNewTopic(state, ring, { topic: `topic-${t}`, partitions, replicaCount: 3 });
        assert.equal(command.type, "generateTopicReplicas");
        if (command.type !== "generateTopicReplicas") return;
        const sets = command.data.partitions.map((p) => ({ replicas: p.replicas }));
        const counts = [...leaderCounts(sets).values()];
        const shown = JSON.stringify(Object.fromEntries(leaderCounts(sets)));
        assert.equal(Math.max(...counts), smallestFeasibleMax(sets), `topic-${t}: ${shown}`);
        if (sets.length <= 8) {
          const best = bestBounds(sets);
          assert.equal(Math.min(...counts), best.min, `topic-${t}: ${shown}`);
        }
        for (const p of command.data.partitions) {
          assert.deepEqual(
            [...p.replicas].sort(),
            [...ring.pick(`topic-${t}#${p.partition}`, 3)].sort(),
            "the ring's replica set",
          );
        }
      }
    });
  }

  /**
   * The second oracle, for topics too big to enumerate: the smallest M such that every partition can get
   * a leader from its set with no broker leading more than M (bipartite matching into M slots per broker).
   */
  function smallestFeasibleMax(sets: readonly LeaderCandidates[]): number {
    for (let max = Math.ceil(sets.length / new Set(sets.flatMap((p) => p.replicas)).size); ; max++) {
      const slotOwner = new Map<string, number>(); // `${broker}/${slot}` → partition
      const place = (partition: number, seen: Set<string>): boolean => {
        for (const broker of sets[partition]!.replicas) {
          for (let slot = 0; slot < max; slot++) {
            const key = `${broker}/${slot}`;
            if (seen.has(key)) continue;
            seen.add(key);
            const owner = slotOwner.get(key);
            if (owner === undefined || place(owner, seen)) {
              slotOwner.set(key, partition);
              return true;
            }
          }
        }
        return false;
      };
      if (sets.every((_, partition) => place(partition, new Set()))) return max;
    }
  }
});

describe("planLeaderBalance", () => {
  function skewedCluster() {
    const { state, append } = registeredCluster(["a", "b", "c"]);
    // After failovers, a leads everything.
    append({
      type: "generateTopicReplicas",
      data: {
        topic: "orders",
        replicaCount: 3,
        partitions: [
          { partition: 0, replicas: ["a", "b", "c"] },
          { partition: 1, replicas: ["a", "c", "b"] },
          { partition: 2, replicas: ["a", "b", "c"] },
        ],
      },
    });
    return { state, append };
  }

  it("hands leadership back to in-sync replicas only, reordering and moving no data", () => {
    const { state, append } = skewedCluster();
    const changes = planLeaderBalance(state, () => true);
    assert.equal(changes.length, 1);
    const moved = changes[0]!.partitions;
    assert.equal(moved.length, 2, "two of a's three partitions move");
    for (const p of moved) {
      const before = state.topic("orders")!.partitions[p.partition]!.replicas;
      assert.deepEqual([...p.replicas].sort(), [...before].sort(), "the same replica set");
      assert.notEqual(p.replicas[0], "a");
    }
    append({ type: "reassignPartitions", data: { changes } });
    const counts = leaderCounts(state.topic("orders")!.partitions);
    assert.deepEqual([...counts.values()].sort(), [1, 1, 1]);
    assert.deepEqual(
      planLeaderBalance(state, () => true),
      [],
      "balanced: nothing more to do",
    );
  });

  it("never picks a replica the leader does not report in sync, nor a down broker", () => {
    const { state, append } = skewedCluster();
    append({
      type: "handleUnreachableBrokers",
      data: { brokerIds: ["c"], reason: "heartbeat-expired", changes: [] },
    });
    const changes = planLeaderBalance(
      state,
      (_topic, partition, brokerId) => partition === 2 && brokerId === "b",
    );
    assert.deepEqual(changes, [
      { topic: "orders", partitions: [{ partition: 2, replicas: ["b", "a", "c"] }] },
    ]);
    assert.deepEqual(
      planLeaderBalance(state, () => false),
      [],
      "nobody in sync: nothing moves",
    );
  });

  it("leaves partitions whose leader is down to failure handling", () => {
    const { state, append } = skewedCluster();
    append({
      type: "handleUnreachableBrokers",
      data: { brokerIds: ["a"], reason: "heartbeat-expired", changes: [] },
    });
    assert.deepEqual(
      planLeaderBalance(state, () => true),
      [],
    );
  });

  // Found by the sentinel fuzz spec: with every broker unregistered, each check proposed a no-op
  // reassignment of the topic's empty replica lists, one more operation in the log every 30 s.
  it("proposes nothing for partitions that have no replica left", () => {
    const { state, append } = skewedCluster();
    for (const brokerId of ["a", "b", "c"]) {
      append({
        type: "unregisterBroker",
        data: {
          brokerId,
          changes: [
            {
              topic: "orders",
              partitions: [0, 1, 2].map((partition) => ({
                partition,
                replicas: state
                  .topic("orders")!
                  .partitions[partition]!.replicas.filter((id) => id !== brokerId),
              })),
            },
          ],
        },
      });
    }
    assert.ok(state.topic("orders")!.partitions.every((p) => p.replicas.length === 0));
    assert.deepEqual(
      planLeaderBalance(state, () => true),
      [],
    );
  });
});
