import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Broker } from "../../src/broker/broker.js";
import { PartitionRole } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { assignmentsDigest } from "../../src/sentinel/convert.js";
import { brokerClient } from "../helpers/broker-process.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessBroker, type InProcessBroker } from "../helpers/in-process-broker.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Incremental KeepAlive against real sentinels on a real etcd: a broker that sends the digest of the role
 * list it holds gets no list while it is unchanged, also from a follower and from the next leader after
 * a leader change; any change of the list (a new topic, planned by the new leader) brings the full list
 * with a new digest. A broker that sends no digest (older brokers) always gets the full list.
 */
describe("KeepAlive: role lists only when they changed", () => {
  let etcd: TestEtcd;
  const sentinels: InProcessSentinel[] = [];
  const addresses = new Map<string, string>();

  /** A broker's KeepAlive; without a digest, as an older broker sends it. */
  const beat = (s: InProcessSentinel, brokerId: string, digest?: string) =>
    s.client.keepAlive({
      brokerId,
      address: addresses.get(brokerId) ?? "",
      status: BrokerStatus.HEALTHY,
      ...(digest !== undefined ? { assignmentsDigest: digest } : {}),
    });
  const leader = () => sentinels.find((s) => s.sentinel.plane.isLeader);

  before(async () => {
    etcd = await startEtcd();
    // A long heartbeat TTL: these brokers are only addresses, and must not be declared down meanwhile.
    for (const id of ["s1", "s2"]) {
      sentinels.push(
        await startInProcessSentinel(etcd, id, { etcdPrefix: "/incremental", heartbeatTtlSeconds: 60 }),
      );
      await waitFor(() => leader() !== undefined, { what: "a sentinel leader" });
    }
    for (const id of ["b1", "b2", "b3"]) addresses.set(id, `127.0.0.1:${await freePort()}`);
    const first = leader() as InProcessSentinel;
    for (const [brokerId, address] of addresses) await first.client.registerBroker({ brokerId, address });
    await first.client.getBrokers({ topic: "first", partitions: 3, replicaCount: 3 });
  });
  after(async () => {
    await Promise.all(sentinels.map((s) => s.stop().catch(() => undefined)));
    await etcd.stop();
  });

  it("answers an unchanged list without it, on the leader, a follower and the next leader", async () => {
    const first = leader() as InProcessSentinel;
    const follower = sentinels.find((s) => s !== first) as InProcessSentinel;

    const full = await beat(first, "b1");
    assert.equal(full.assignments.length, 3, "no digest sent: the full list");
    assert.equal(full.assignmentsUnchanged, false);
    assert.match(full.assignmentsDigest, /^v1\./);
    const digest = full.assignmentsDigest;

    const same = await beat(first, "b1", digest);
    assert.equal(same.assignmentsUnchanged, true);
    assert.deepEqual(same.assignments, [], "the list is left out");
    assert.equal(same.assignmentsDigest, digest);
    assert.equal(same.registered, true);
    assert.ok(same.ttlSeconds > 0);

    const other = await beat(first, "b1", "v1.something-else");
    assert.equal(other.assignmentsUnchanged, false, "a digest that does not match gets the list");
    assert.equal(other.assignments.length, 3);

    const b2 = await beat(first, "b2", digest);
    assert.equal(b2.assignmentsUnchanged, false, "b2 holds other roles (it leads another partition)");

    await waitFor(() => follower.sentinel.plane.state.appliedId >= first.sentinel.plane.state.appliedId, {
      what: "the follower to apply the leader's operations",
    });
    const fromFollower = await beat(follower, "b1", digest);
    assert.equal(fromFollower.assignmentsUnchanged, true, "the follower's state holds the same list");

    // The leader goes; the other sentinel takes over from the same log.
    await first.stop();
    sentinels.splice(sentinels.indexOf(first), 1);
    await waitFor(() => follower.sentinel.plane.isLeader, { what: "the other sentinel to lead" });
    const afterChange = await beat(follower, "b1", digest);
    assert.equal(
      afterChange.assignmentsUnchanged,
      true,
      "the same list has the same digest on the new leader",
    );

    // The new leader creates a topic: the broker's list changed, so it gets all of it, and a new digest.
    await follower.client.getBrokers({ topic: "second", partitions: 2, replicaCount: 3 });
    const changed = await beat(follower, "b1", digest);
    assert.equal(changed.assignmentsUnchanged, false);
    assert.deepEqual(changed.assignments.map((a) => `${a.topic}#${a.partition}`).sort(), [
      "first#0",
      "first#1",
      "first#2",
      "second#0",
      "second#1",
    ]);
    assert.notEqual(changed.assignmentsDigest, digest);
    const settled = await beat(follower, "b1", changed.assignmentsDigest);
    assert.equal(settled.assignmentsUnchanged, true);
  });

  it("answers an unregistered broker as before: registered false, no list, whatever digest it sends", async () => {
    const s = leader() as InProcessSentinel;
    const res = await s.client.keepAlive({
      brokerId: "stranger",
      address: `127.0.0.1:${await freePort()}`,
      assignmentsDigest: "v1.anything",
    });
    assert.equal(res.registered, false);
    assert.equal(res.assignmentsUnchanged, false);
    assert.deepEqual(res.assignments, []);
  });
});

/**
 * The broker's side, end to end: a real broker (in this process, real files) against a real sentinel.
 * It comes to hold the digest of its list in the sentinel's state, a pushed role makes it ask for the
 * list again, and a new topic reaches it through the list with a new digest.
 */
describe("KeepAlive: a broker holds the digest of the roles it applied", () => {
  let etcd: TestEtcd;
  let sentinel: InProcessSentinel;
  let node: InProcessBroker;
  let broker: Broker;

  before(async () => {
    etcd = await startEtcd();
    sentinel = await startInProcessSentinel(etcd, "s1", { etcdPrefix: "/incremental-broker" });
    await waitFor(() => sentinel.sentinel.plane.isLeader, { what: "leadership" });
    node = await startInProcessBroker(sentinel.sentinel.url, "b1", {
      keepAliveIntervalMs: 300,
      replicaLagMaxMs: 3_000,
    });
    broker = node.broker;
  });
  after(async () => {
    await node?.stop();
    await sentinel?.stop();
    await etcd?.stop();
  });

  const sentinelDigest = () => assignmentsDigest(sentinel.sentinel.plane.state, "b1");
  const holdsSentinelList = () =>
    broker.partitions.heldAssignmentsDigest !== "" &&
    broker.partitions.heldAssignmentsDigest === sentinelDigest();

  it("holds the sentinel's digest once reconciled, and asks for the list again after a push", async () => {
    await sentinel.client.getBrokers({ topic: "first", partitions: 2, replicaCount: 1 });
    await waitFor(() => holdsSentinelList() && broker.partitions.get("first", 1)?.role === "leader", {
      what: "the broker to hold the list with first#0 and first#1",
    });
    const first = broker.partitions.heldAssignmentsDigest;

    // A role pushed outside KeepAlive (as the sentinels' role notifier does): the list it holds may no
    // longer be the one the digest names, so it is dropped until the next full answer.
    const self = { brokerId: "b1", address: broker.address };
    await brokerClient(broker.address).setTopicRole({
      topic: "first",
      partition: 0,
      role: PartitionRole.LEADER,
      leader: self,
      replicas: [self],
      epoch: BigInt(broker.partitions.get("first", 0)?.epoch ?? 0),
    });
    assert.equal(broker.partitions.heldAssignmentsDigest, "");
    await waitFor(holdsSentinelList, { what: "the next KeepAlive to bring the full list back" });
    assert.equal(broker.partitions.heldAssignmentsDigest, first, "the same list: the same digest");

    // A topic created meanwhile changes the list: the broker gets it whole and serves the new partition.
    await sentinel.client.getBrokers({ topic: "second", partitions: 1, replicaCount: 1 });
    await waitFor(
      () =>
        holdsSentinelList() &&
        broker.partitions.heldAssignmentsDigest !== first &&
        broker.partitions.get("second", 0)?.role === "leader",
      { what: "the broker to hold the list with second#0" },
    );
  });
});
