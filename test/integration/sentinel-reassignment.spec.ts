import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import type { StoredTopicReplicaInfo } from "../../src/oplog/topic-info.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

const TOPICS = 300;
const BROKERS = ["b0", "b1", "b2", "b3"];

/**
 * A broker holding replicas of ~225 topics goes down (and another is unregistered): one operation moving
 * all of them would exceed etcd's 128 operations per transaction, so the leader splits the reassignment.
 * Every partition moves and both sentinels end with the same state as etcd's topic keys.
 */
describe(`reassigning a broker that holds replicas of ${TOPICS} topics`, () => {
  let etcd: TestEtcd;
  let leader: InProcessSentinel;
  let follower: InProcessSentinel;

  before(async () => {
    etcd = await startEtcd();
    leader = await startInProcessSentinel(etcd, "s1");
    await waitFor(() => leader.sentinel.plane.isLeader, { what: "s1 to lead" });
    follower = await startInProcessSentinel(etcd, "s2");
    // Nothing listens on these ports: Health probes fail, so a reported broker is confirmed down.
    for (const brokerId of BROKERS) {
      await leader.client.registerBroker({ brokerId, address: `127.0.0.1:${await freePort()}` });
    }
    const names = Array.from({ length: TOPICS }, (_, i) => `topic-${String(i).padStart(3, "0")}`);
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(
        names
          .slice(i, i + 16)
          .map((topic) => leader.client.getBrokers({ topic, partitions: 1, replicaCount: 3 })),
      );
    }
  });
  after(async () => {
    await follower?.stop();
    await leader?.stop();
    await etcd?.stop();
  });

  const converged = async () => {
    const applied = leader.sentinel.plane.state.appliedId;
    await waitFor(() => follower.sentinel.plane.state.appliedId === applied, {
      what: `the follower to apply operation ${applied}`,
    });
    assert.equal(follower.sentinel.plane.state.digest(), leader.sentinel.plane.state.digest());
  };

  const storedTopics = async () => {
    const keys = createKeyspace("/goulette");
    const values = await etcd.client().getAll().prefix(keys.topicsPrefix).strings();
    return Object.values(values).map((v) => JSON.parse(v) as StoredTopicReplicaInfo);
  };

  it("moves every partition off a broker reported down, in several operations", async () => {
    const state = leader.sentinel.plane.state;
    const victim = "b0";
    const held = state.topicsOfBroker(victim).length;
    assert.ok(held > 126, `the victim holds ${held} topics: more than one transaction can change`);
    const headBefore = state.appliedId;

    await leader.client.getBrokers({ topic: "topic-000", unreachableBrokers: [victim] });

    assert.equal(state.broker(victim)?.status, "down");
    assert.deepEqual(state.topicsOfBroker(victim), []);
    for (const name of state.topicNames()) {
      for (const p of state.topic(name)?.partitions ?? []) {
        assert.equal(p.replicas.length, 3, `${name}#${p.partition} has 3 replicas again`);
        assert.ok(!p.replicas.includes(victim));
      }
    }
    assert.ok(state.appliedId - headBefore >= 3, "the reassignment took several operations");
    const stored = await storedTopics();
    assert.equal(stored.length, TOPICS);
    for (const t of stored) assert.ok(!t.brokers.includes(victim), `etcd's ${t.topic} key moved too`);
    await converged();
  });

  it("unregisters a broker holding replicas of every topic", async () => {
    const state = leader.sentinel.plane.state;
    const gone = "b1";
    assert.ok(state.topicsOfBroker(gone).length > 126);
    await leader.client.unregisterBroker({ brokerId: gone });
    assert.equal(state.broker(gone), undefined);
    assert.deepEqual(state.topicsOfBroker(gone), []);
    const stored = await storedTopics();
    for (const t of stored) assert.ok(!t.brokers.includes(gone), `etcd's ${t.topic} key dropped ${gone}`);
    await converged();
  });

  it("a sentinel started afterwards replays the split operations to the same state", async () => {
    const late = await startInProcessSentinel(etcd, "s3");
    try {
      assert.equal(late.sentinel.plane.state.digest(), leader.sentinel.plane.state.digest());
    } finally {
      await late.stop();
    }
  });
});
