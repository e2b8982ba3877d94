import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, Operation, TopicChange } from "../../src/fsm/operations.js";
import {
  planNewTopic,
  planReplacement,
  planTopUp,
  planUnreachable,
  planUnregister,
} from "../../src/fsm/planner.js";
import { leaderFirst } from "../../src/fsm/leader-balance.js";
import { ClusterState, type TopicRecord } from "../../src/fsm/state.js";
import { createHashRing, type HashRing } from "../../src/ring/hash-ring.js";
import { partitionKey } from "../../src/ring/placement.js";

/** A test cluster: a state machine fed through a tiny in-memory log, and the ring built from it. */
class Cluster {
  readonly state = new ClusterState();
  #nextId = 1;

  constructor(brokers: readonly string[]) {
    for (const brokerId of brokers)
      this.append({ type: "registerBroker", data: { brokerId, address: `${brokerId}:7000` } });
  }

  append(command: Command): Operation {
    const op: Operation = { ...command, id: this.#nextId++, timestamp: 1_700_000_000_000, leaderId: "s" };
    this.state.apply(op);
    return op;
  }

  /** The ring as the sentinel builds it: every registered broker, down ones included. */
  ring(): HashRing {
    return createHashRing({ brokers: this.state.ringMembers() });
  }

  createTopic(topic: string, partitions: number, replicaCount: number): TopicRecord {
    this.append(planNewTopic(this.state, this.ring(), { topic, partitions, replicaCount }));
    return this.state.topic(topic) as TopicRecord;
  }

  markDown(brokerIds: string[]): void {
    this.append({
      type: "handleUnreachableBrokers",
      data: { brokerIds, reason: "heartbeat-expired", changes: [] },
    });
  }
}

const brokers = (n: number) => Array.from({ length: n }, (_, i) => `broker-${i}`);

function assertDistinct(replicas: readonly string[], where: string): void {
  assert.equal(new Set(replicas).size, replicas.length, `${where}: ${replicas.join(",")} repeats a broker`);
}

function placementsOf(command: Command) {
  assert.equal(command.type, "generateTopicReplicas");
  return command.type === "generateTopicReplicas" ? command.data.partitions : [];
}

function changesOf(command: Command): TopicChange[] {
  return command.type === "unregisterBroker" || command.type === "handleUnreachableBrokers"
    ? command.data.changes
    : [];
}

/** Every partition of every topic, keyed `${topic}#${partition}`, with its replicas and epoch. */
function partitionTable(state: ClusterState): Map<string, { replicas: string[]; epoch: number }> {
  const table = new Map<string, { replicas: string[]; epoch: number }>();
  for (const name of state.topicNames()) {
    for (const p of state.topic(name)?.partitions ?? []) {
      table.set(partitionKey(name, p.partition), { replicas: p.replicas, epoch: p.epoch });
    }
  }
  return table;
}

describe("planNewTopic", () => {
  it("places each partition on the ring's next distinct brokers, never repeating one", () => {
    const cluster = new Cluster(brokers(10));
    const ring = cluster.ring();
    const digest = cluster.state.digest();
    for (let t = 0; t < 200; t++) {
      const topic = `topic-${t}`;
      const command = planNewTopic(cluster.state, ring, { topic, partitions: 4, replicaCount: 3 });
      assert.deepEqual(command.type === "generateTopicReplicas" && command.data.topic, topic);
      assert.deepEqual(command.type === "generateTopicReplicas" && command.data.replicaCount, 3);
      const placements = placementsOf(command);
      assert.deepEqual(
        placements.map((p) => p.partition),
        [0, 1, 2, 3],
      );
      for (const p of placements) {
        const where = partitionKey(topic, p.partition);
        assert.equal(p.replicas.length, 3, where);
        assertDistinct(p.replicas, where);
        // The ring's set; the leader may be any of it, the followers keep the ring's order.
        assert.deepEqual(p.replicas, leaderFirst(ring.pick(where, 3), p.replicas[0]!), where);
      }
    }
    assert.equal(cluster.state.digest(), digest, "planning does not change the state");
  });

  it("skips down brokers, taking the next healthy ones clockwise", () => {
    const cluster = new Cluster(brokers(10));
    const down = new Set(["broker-3", "broker-7"]);
    cluster.markDown([...down]);
    const ring = cluster.ring();
    let sawDownOnRing = 0;
    for (let t = 0; t < 150; t++) {
      const topic = `topic-${t}`;
      for (const p of placementsOf(
        planNewTopic(cluster.state, ring, { topic, partitions: 3, replicaCount: 3 }),
      )) {
        const where = partitionKey(topic, p.partition);
        assertDistinct(p.replicas, where);
        assert.ok(!p.replicas.some((id) => down.has(id)), `${where} placed on a down broker`);
        // The oracle: the unfiltered walk with the down brokers struck out.
        const walk = ring.pick(where, 5);
        if (walk.slice(0, 3).some((id) => down.has(id))) sawDownOnRing++;
        const expected = walk.filter((id) => !down.has(id)).slice(0, 3);
        assert.deepEqual(p.replicas, leaderFirst(expected, p.replicas[0]!), where);
      }
    }
    assert.ok(sawDownOnRing > 20, "the down brokers were really in the way of some partitions");
  });

  it("skips brokers on the ring the state does not know, and gives fewer replicas when too few are healthy", () => {
    const cluster = new Cluster(["a", "b", "c"]);
    cluster.markDown(["c"]);
    const ring = createHashRing({ brokers: ["a", "b", "c", "ghost"] });
    for (const p of placementsOf(
      planNewTopic(cluster.state, ring, { topic: "t", partitions: 20, replicaCount: 3 }),
    )) {
      assert.deepEqual([...p.replicas].sort(), ["a", "b"], `partition ${p.partition}`);
    }
  });
});

describe("planReplacement", () => {
  /** A hand-built topic over 6 brokers so the expected moves are obvious. */
  function sixBrokerCluster() {
    const cluster = new Cluster(["a", "b", "c", "d", "e", "f"]);
    cluster.append({
      type: "generateTopicReplicas",
      data: {
        topic: "t",
        replicaCount: 3,
        partitions: [
          { partition: 0, replicas: ["a", "b", "c"] },
          { partition: 1, replicas: ["b", "c", "d"] },
          { partition: 2, replicas: ["c", "d", "e"] },
          { partition: 3, replicas: ["d", "e", "a"] },
        ],
      },
    });
    cluster.append({
      type: "generateTopicReplicas",
      data: { topic: "u", replicaCount: 2, partitions: [{ partition: 0, replicas: ["e", "f"] }] },
    });
    return cluster;
  }

  it("changes only partitions holding a leaving broker, keeping the survivors' order", () => {
    const cluster = sixBrokerCluster();
    const changes = planReplacement(cluster.state, cluster.ring(), new Set(["b"]));
    assert.deepEqual(
      changes.map((c) => [c.topic, c.partitions.map((p) => p.partition)]),
      [["t", [0, 1]]],
    );
    const [p0, p1] = changes[0]?.partitions ?? [];
    assert.deepEqual(p0?.replicas.slice(0, 2), ["a", "c"]);
    assert.deepEqual(p1?.replicas.slice(0, 2), ["c", "d"], "the first survivor becomes the leader");
    for (const p of [p0, p1]) {
      assert.equal(p?.replicas.length, 3);
      assertDistinct(p?.replicas ?? [], `t#${p?.partition}`);
      assert.ok(!p?.replicas.includes("b"));
    }
  });

  it("adds only healthy brokers that are not already replicas, the next ones clockwise", () => {
    const cluster = sixBrokerCluster();
    cluster.markDown(["e"]);
    const ring = cluster.ring();
    const changes = planReplacement(cluster.state, ring, new Set(["d"]));
    assert.deepEqual(
      changes.map((c) => [c.topic, c.partitions.map((p) => p.partition)]),
      [["t", [1, 2, 3]]],
    );
    const before = cluster.state.topic("t") as TopicRecord;
    for (const p of changes[0]?.partitions ?? []) {
      const old = before.partitions[p.partition]?.replicas ?? [];
      const survivors = old.filter((id) => id !== "d");
      const added = p.replicas.slice(survivors.length);
      assert.deepEqual(p.replicas.slice(0, survivors.length), survivors, `t#${p.partition}`);
      // Oracle: walk the ring from the partition's key, striking out everything unusable.
      const expected = ring
        .pick(partitionKey("t", p.partition), 6)
        .filter((id) => id !== "d" && id !== "e" && !survivors.includes(id))
        .slice(0, 3 - survivors.length);
      assert.deepEqual(added, expected, `t#${p.partition}`);
      assert.ok(!added.includes("e"), "never a down broker");
      assertDistinct(p.replicas, `t#${p.partition}`);
    }
  });

  it("moves several leaving brokers at once and shrinks a list rather than repeat or use a down broker", () => {
    const cluster = new Cluster(["a", "b", "c"]);
    cluster.append({
      type: "generateTopicReplicas",
      data: { topic: "t", replicaCount: 3, partitions: [{ partition: 0, replicas: ["c", "b", "a"] }] },
    });
    assert.deepEqual(planReplacement(cluster.state, cluster.ring(), new Set(["c"])), [
      { topic: "t", partitions: [{ partition: 0, replicas: ["b", "a"] }] },
    ]);
    assert.deepEqual(planReplacement(cluster.state, cluster.ring(), new Set(["a", "c"])), [
      { topic: "t", partitions: [{ partition: 0, replicas: ["b"] }] },
    ]);
    assert.deepEqual(planReplacement(cluster.state, cluster.ring(), new Set(["nobody"])), []);
  });

  it("removing one broker of 10 with 300 topics changes only the partitions that held it", () => {
    const cluster = new Cluster(brokers(10));
    for (let t = 0; t < 300; t++) cluster.createTopic(`topic-${t}`, 3, 3);
    const ring = cluster.ring();
    const leaving = "broker-4";
    const before = partitionTable(cluster.state);
    const holders = [...before].filter(([, p]) => p.replicas.includes(leaving)).map(([key]) => key);
    assert.ok(
      holders.length > 150 && holders.length < 400,
      `broker-4 holds ${holders.length} of 900 partitions`,
    );

    const command = planUnregister(cluster.state, ring, leaving);
    assert.equal(command.type, "unregisterBroker");
    const changed = changesOf(command).flatMap((c) =>
      c.partitions.map((p) => partitionKey(c.topic, p.partition)),
    );
    assert.deepEqual(changed.sort(), [...holders].sort(), "exactly the partitions that held it");

    cluster.append(command);
    const after = partitionTable(cluster.state);
    const withoutLeaving = ring.withoutBroker(leaving);
    for (const [key, old] of before) {
      const now = after.get(key);
      assert.ok(now, key);
      if (!old.replicas.includes(leaving)) {
        assert.deepEqual(now, old, `${key} did not hold ${leaving} and must not change`);
        continue;
      }
      assert.equal(now.epoch, old.epoch + 1, key);
      assert.deepEqual(
        now.replicas.slice(0, 2),
        old.replicas.filter((id) => id !== leaving),
        `${key}: survivors keep their order`,
      );
      assert.equal(now.replicas.length, 3, key);
      assertDistinct(now.replicas, key);
      // Consistent hashing: the result is what the ring without the broker would place.
      assert.deepEqual([...now.replicas].sort(), withoutLeaving.pick(key, 3).sort(), key);
    }
    assert.deepEqual(cluster.state.topicsOfBroker(leaving), []);
    assert.equal(cluster.state.broker(leaving), undefined);
  });
});

describe("planUnreachable and planUnregister", () => {
  it("planUnreachable dedupes and sorts the brokers, carries the reason and plans their replacement", () => {
    const cluster = new Cluster(brokers(6));
    for (let t = 0; t < 20; t++) cluster.createTopic(`t${t}`, 2, 3);
    const ring = cluster.ring();
    const command = planUnreachable(cluster.state, ring, ["broker-5", "broker-1", "broker-5"], "pod-evicted");
    assert.equal(command.type, "handleUnreachableBrokers");
    if (command.type !== "handleUnreachableBrokers") return;
    assert.deepEqual(command.data.brokerIds, ["broker-1", "broker-5"]);
    assert.equal(command.data.reason, "pod-evicted");
    assert.deepEqual(
      command.data.changes,
      planReplacement(cluster.state, ring, new Set(["broker-1", "broker-5"])),
    );
    assert.ok(command.data.changes.length > 0);

    cluster.append(command);
    assert.equal(cluster.state.broker("broker-1")?.status, "down");
    assert.equal(cluster.state.broker("broker-5")?.status, "down");
    for (const [key, p] of partitionTable(cluster.state)) {
      assert.ok(!p.replicas.includes("broker-1") && !p.replicas.includes("broker-5"), key);
      assert.equal(p.replicas.length, 3, key);
    }
  });

  it("planUnregister names the broker and moves all of its replicas", () => {
    const cluster = new Cluster(brokers(4));
    for (let t = 0; t < 10; t++) cluster.createTopic(`t${t}`, 3, 2);
    const command = planUnregister(cluster.state, cluster.ring(), "broker-2");
    assert.equal(command.type === "unregisterBroker" && command.data.brokerId, "broker-2");
    cluster.append(command);
    for (const [key, p] of partitionTable(cluster.state)) {
      assert.ok(!p.replicas.includes("broker-2"), key);
      assert.equal(p.replicas.length, 2, key);
    }
  });
});

describe("planTopUp", () => {
  it("has nothing to do on a fully replicated, healthy cluster", () => {
    const cluster = new Cluster(brokers(5));
    for (let t = 0; t < 10; t++) cluster.createTopic(`t${t}`, 3, 3);
    assert.deepEqual(planTopUp(cluster.state, cluster.ring()), []);
  });

  it("fills under-replicated partitions once a broker is back, then converges", () => {
    const cluster = new Cluster(["a", "b", "c"]);
    for (let t = 0; t < 10; t++) cluster.createTopic(`t${t}`, 2, 3);
    // b goes down: with three brokers and three replicas there is nowhere to move its replicas.
    cluster.append(planUnreachable(cluster.state, cluster.ring(), ["b"], "heartbeat-expired"));
    for (const [key, p] of partitionTable(cluster.state)) {
      assert.deepEqual([...p.replicas].sort(), ["a", "c"], key);
    }
    assert.deepEqual(planTopUp(cluster.state, cluster.ring()), [], "nothing to add while b is down");

    cluster.append({ type: "addBrokerToHashRing", data: { brokerId: "b", address: "b:7000" } });
    const before = partitionTable(cluster.state);
    const changes = planTopUp(cluster.state, cluster.ring());
    assert.equal(changes.length, 10, "every topic is topped up");
    for (const change of changes) {
      assert.equal(change.partitions.length, 2, change.topic);
      for (const p of change.partitions) {
        const key = partitionKey(change.topic, p.partition);
        assert.deepEqual(
          p.replicas,
          [...(before.get(key)?.replicas ?? []), "b"],
          `${key}: survivors first, b added`,
        );
      }
    }
    cluster.append({ type: "reassignPartitions", data: { changes } });
    assert.deepEqual(planTopUp(cluster.state, cluster.ring()), [], "converged");
    assert.equal(cluster.state.topicsOfBroker("b").length, 10);
  });

  it("replaces a down broker still listed as a replica and leaves healthy partitions alone", () => {
    const cluster = new Cluster(["a", "b", "c", "d"]);
    cluster.append({
      type: "generateTopicReplicas",
      data: {
        topic: "t",
        replicaCount: 2,
        partitions: [
          { partition: 0, replicas: ["a", "b"] },
          { partition: 1, replicas: ["c", "d"] },
        ],
      },
    });
    cluster.markDown(["b"]); // no changes recorded: b is still listed
    const ring = cluster.ring();
    const changes = planTopUp(cluster.state, ring);
    assert.equal(changes.length, 1);
    assert.deepEqual(
      changes[0]?.partitions.map((p) => p.partition),
      [0],
    );
    const replicas = changes[0]?.partitions[0]?.replicas ?? [];
    assert.equal(replicas[0], "a", "the live replica keeps leading");
    const expected = ring.pick(partitionKey("t", 0), 4).find((id) => id !== "a" && id !== "b");
    assert.deepEqual(replicas, ["a", expected]);
  });
});
