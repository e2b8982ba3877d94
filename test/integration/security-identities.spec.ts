import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Acks, PartitionRole, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { startCluster, type TestCluster, type TopicLayout } from "../helpers/cluster.js";
import { text, untext } from "../helpers/broker-process.js";
import { runGoulette } from "../helpers/goulette-process.js";
import { waitFor } from "../helpers/wait.js";

const TOKENS = {
  sentinel: "tok-sentinel-5b1f",
  b1: "tok-broker-b1-93c2",
  b2: "tok-broker-b2-0d7e",
  b3: "tok-broker-b3-6a41",
  admin: "tok-admin-ops-c8d0",
  app: "tok-app-orders-24fe",
};
const AS = {
  anonymous: {},
  app: { headers: bearerHeaders(TOKENS.app) },
  admin: { headers: bearerHeaders(TOKENS.admin) },
  b1: { headers: bearerHeaders(TOKENS.b1) },
  b3: { headers: bearerHeaders(TOKENS.b3) },
};

/**
 * Per-component identities on a cluster of real processes (2 sentinels, 3 brokers, each broker with its
 * own token): every attack of the review is refused and changes nothing, while the legitimate clients
 * (brokers registering and replicating, an application producing acks=all and reading) keep working.
 */
describe("identities and authorization of every RPC", () => {
  let dir: string;
  let cluster: TestCluster;
  let layout: TopicLayout;
  const TOPIC = "orders";

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-identities-"));
    const tokensFile = path.join(dir, "tokens");
    await writeFile(
      tokensFile,
      [
        "# principal token",
        `sentinel ${TOKENS.sentinel}`,
        `broker:b1 ${TOKENS.b1}`,
        `broker:b2 ${TOKENS.b2}`,
        `broker:b3 ${TOKENS.b3}`,
        `admin:ops ${TOKENS.admin}`,
        `app:orders ${TOKENS.app}`,
      ].join("\n"),
    );
    for (const [name, token] of Object.entries(TOKENS))
      await writeFile(path.join(dir, `${name}.token`), token);
    cluster = await startCluster({
      sentinels: 2,
      brokers: 3,
      sentinelArgs: ["--tokens-file", tokensFile, "--token-file", path.join(dir, "sentinel.token")],
      // A paused follower stays in sync for 30 s: the high watermark can only move by a follower's fetch.
      brokerArgs: ["--tokens-file", tokensFile, "--replica-lag-max", "30000"],
      brokerArgsFor: (id) => ["--token-file", path.join(dir, `${id}.token`)],
      helperHeaders: AS.admin.headers,
    });
    // An application creates the topic (a new topic needs a credential) on the follower sentinel or the
    // leader: either way, the write reaches the leader under the sentinel's own identity.
    await cluster.sentinel().getBrokers({ topic: TOPIC, partitions: 1, replicaCount: 3 }, AS.app);
    layout = await cluster.layout(TOPIC);
    await waitFor(async () => (await produce("warm-up", Acks.ALL)).error === ProduceError.NONE, {
      timeoutMs: 20_000,
      what: "acks=all produce to work",
    });
  });
  after(async () => {
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const leaderId = () => layout.partitions[0]?.leader as string;
  const followers = () => (layout.partitions[0]?.replicas ?? []).filter((r) => r !== leaderId());
  const leader = () => cluster.broker(leaderId()).client;

  async function produce(payload: string, acks: Acks) {
    const res = await leader().produce(
      { topic: TOPIC, partition: 0, acks, records: [{ payload: text(payload) }] },
      { ...AS.app, timeoutMs: 10_000 },
    );
    return res.acks[0] as { error: ProduceError; offset: bigint };
  }

  async function progress(id: string) {
    const res = await cluster.broker(id).client.health({ partitions: [{ topic: TOPIC, partition: 0 }] });
    return res.partitions[0];
  }

  /** The call fails with this code (Unauthenticated or PermissionDenied) and a message matching `message`. */
  async function refused(call: Promise<unknown>, code: Code, message: RegExp) {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError, `expected ${Code[code]}, got ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.rawMessage);
    assert.match(err.rawMessage, message);
  }

  async function drain(stream: AsyncIterable<unknown>) {
    for await (const _ of stream) {
      // Nothing is expected: the first message is refused.
    }
  }

  it("RemoveTopic with delete_data from anyone but a sentinel is refused and deletes nothing", async () => {
    const target = cluster.broker(followers()[0] as string);
    const partitionDirs = async () =>
      (await readdir(target.dataDir, { recursive: true })).filter((f) => f.includes(TOPIC));
    const before = await partitionDirs();
    assert.ok(before.length > 0, "the follower holds the partition on disk");
    const request = { topic: TOPIC, deleteData: true };
    await refused(
      target.client.removeTopic(request),
      Code.Unauthenticated,
      /RemoveTopic needs the credential of: sentinel/,
    );
    await refused(
      target.client.removeTopic(request, AS.app),
      Code.PermissionDenied,
      /not allowed to application:orders/,
    );
    await refused(
      target.client.removeTopic(request, AS.admin),
      Code.PermissionDenied,
      /not allowed to admin:ops/,
    );
    await refused(
      target.client.removeTopic(request, AS.b3),
      Code.PermissionDenied,
      /not allowed to broker:b3/,
    );
    assert.deepEqual(await partitionDirs(), before);
    assert.equal((await progress(target.id))?.role, PartitionRole.FOLLOWER);
  });

  it("SetTopicRole(s) with epoch 2^53-1 from a non-sentinel is refused: no epoch is poisoned", async () => {
    const id = followers()[1] as string;
    const target = cluster.broker(id).client;
    const epochBefore = (await progress(id))?.lastEpoch;
    const role = {
      topic: TOPIC,
      partition: 0,
      role: PartitionRole.LEADER,
      leader: { brokerId: id, address: cluster.brokerAddress(id) },
      replicas: [{ brokerId: id, address: cluster.brokerAddress(id) }],
      epoch: 2n ** 53n - 1n,
    };
    await refused(target.setTopicRole(role), Code.Unauthenticated, /SetTopicRole needs the credential/);
    await refused(target.setTopicRole(role, AS.app), Code.PermissionDenied, /SetTopicRole is not allowed/);
    await refused(
      target.setTopicRoles({ roles: [role] }, AS.b1),
      Code.PermissionDenied,
      /not allowed to broker:b1/,
    );
    const after = await progress(id);
    assert.equal(after?.role, PartitionRole.FOLLOWER);
    assert.equal(after?.lastEpoch, epochBefore);
    assert.ok((after?.lastEpoch ?? 0n) < 1000n, `epoch ${after?.lastEpoch} stays small`);
  });

  it("a producer or another broker cannot register or beat as a broker; a broker can as itself", async () => {
    const victim = "b1";
    const address = cluster.brokerAddress(victim);
    const sentinel = cluster.sentinel();
    const fake = { brokerId: victim, address: "127.0.0.1:1" };
    await refused(sentinel.registerBroker(fake), Code.Unauthenticated, /RegisterBroker needs the credential/);
    await refused(
      sentinel.registerBroker(fake, AS.app),
      Code.PermissionDenied,
      /not allowed to application:orders/,
    );
    await refused(
      sentinel.registerBroker(fake, AS.b3),
      Code.PermissionDenied,
      /broker:b3 may not register as broker 'b1': a broker acts only as itself/,
    );
    const beat = { ...fake, status: BrokerStatus.HEALTHY };
    await refused(
      sentinel.keepAlive(beat, AS.b3),
      Code.PermissionDenied,
      /may not send heartbeats as broker 'b1'/,
    );
    await refused(sentinel.keepAlive(beat, AS.app), Code.PermissionDenied, /KeepAlive is not allowed/);
    await refused(
      sentinel.unregisterBroker({ brokerId: victim }, AS.b3),
      Code.PermissionDenied,
      /may not unregister as broker 'b1'/,
    );
    // b3 beating as itself is accepted (as the broker does every 300 ms).
    const own = await sentinel.keepAlive(
      { brokerId: "b3", address: cluster.brokerAddress("b3"), status: BrokerStatus.HEALTHY },
      AS.b3,
    );
    assert.equal(own.registered, true);
    for (const url of cluster.sentinelUrls) {
      const status = await cluster.sentinel().getClusterStatus({});
      const b1 = status.brokers.find((b) => b.brokerId === victim);
      assert.equal(b1?.address, address, `${url}: b1 keeps its own address`);
    }
  });

  it("a Replicate or ReplicateSession stream as another follower is refused: no slot, the HW stays", async () => {
    const [f1, f2] = followers() as [string, string];
    cluster.broker(f1).pause();
    cluster.broker(f2).pause();
    try {
      const acked = await produce("not-yet-replicated", Acks.LEADER);
      assert.equal(acked.error, ProduceError.NONE);
      const before = await progress(leaderId());
      assert.ok(before && before.highWatermark < before.logEndOffset, "the record is not replicated yet");
      const f2Token = {
        headers: bearerHeaders(f2 === "b1" ? TOKENS.b1 : f2 === "b2" ? TOKENS.b2 : TOKENS.b3),
      };
      const fetch = {
        topic: TOPIC,
        partition: 0,
        fetchOffset: before.logEndOffset,
        epoch: layout.partitions[0]?.epoch ?? 0n,
      };
      async function* session() {
        yield { followerId: f1, fetches: [{ ...fetch, start: true }] };
        await new Promise((r) => setTimeout(r, 2_000));
      }
      async function* replicate() {
        yield { ...fetch, followerId: f1 };
        await new Promise((r) => setTimeout(r, 2_000));
      }
      await refused(
        drain(leader().replicateSession(session(), f2Token)),
        Code.PermissionDenied,
        /may not replicate as broker/,
      );
      await refused(
        drain(leader().replicate(replicate(), f2Token)),
        Code.PermissionDenied,
        /may not replicate as broker/,
      );
      await refused(
        drain(leader().replicateSession(session(), AS.app)),
        Code.PermissionDenied,
        /ReplicateSession is not allowed/,
      );
      await refused(
        drain(leader().replicate(replicate())),
        Code.Unauthenticated,
        /Replicate needs the credential of: broker/,
      );
      const after = await progress(leaderId());
      assert.equal(after?.highWatermark, before.highWatermark, "the high watermark did not move");
      assert.deepEqual([...(after?.inSyncReplicas ?? [])].sort(), [...before.inSyncReplicas].sort());
    } finally {
      cluster.broker(f1).resume();
      cluster.broker(f2).resume();
    }
    // The real followers catch up: the record is committed by their fetches.
    await waitFor(
      async () => {
        const p = await progress(leaderId());
        return p !== undefined && p.highWatermark === p.logEndOffset;
      },
      { timeoutMs: 15_000, what: "the real followers to replicate" },
    );
  });

  it("unreachable_brokers from an anonymous caller moves nothing; the cluster keeps serving", async () => {
    const id = leaderId();
    const head = await cluster.sentinel().getClusterStatus({});
    cluster.broker(id).pause();
    try {
      // Paused: the leader's Health probe would fail, so an honoured report would fail it over.
      await refused(
        cluster.sentinel().getBrokers({ topic: TOPIC, unreachableBrokers: [id] }),
        Code.Unauthenticated,
        /reading topic 'orders' \(GetBrokers\) needs a credential/,
      );
    } finally {
      cluster.broker(id).resume();
    }
    const status = await cluster.sentinel().getClusterStatus({});
    assert.equal(status.brokers.find((b) => b.brokerId === id)?.status, BrokerStatus.HEALTHY);
    assert.equal((await cluster.layout(TOPIC)).partitions[0]?.leader, id);
    assert.equal(status.oplogHeadId, head.oplogHeadId, "no operation was appended");
    // Legitimate traffic meanwhile: acks=all produce, a read of everything, the admin's views.
    const ack = await produce("after-the-attacks", Acks.ALL);
    assert.equal(ack.error, ProduceError.NONE);
    const seen: string[] = [];
    for await (const m of leader().pullMessage(
      { topic: TOPIC, partition: 0, offset: 0n, maxMessages: ack.offset + 1n },
      { ...AS.app, timeoutMs: 10_000 },
    )) {
      seen.push(untext(m.payload));
      if (m.offset === ack.offset) break;
    }
    assert.deepEqual(
      seen.filter((s) => s !== "warm-up"),
      ["not-yet-replicated", "after-the-attacks"],
    );
    const topics = await cluster.sentinel().listTopics({}, AS.admin);
    assert.ok(topics.topics.some((t) => t.topic === TOPIC));
    await refused(
      cluster.sentinel().listTopics({}, AS.app),
      Code.PermissionDenied,
      /ListTopics is not allowed to application:orders/,
    );
  });

  it("a forwarded admin write reaches the leader under the sentinel's identity", async () => {
    for (const url of cluster.sentinelUrls) {
      const s = [...cluster.sentinels.values()].find((p) => p.url === url);
      const res = await s?.client.createSnapshot({}, AS.admin);
      assert.ok(res, `${url} answered`);
    }
  });

  it("a sentinel or broker without credentials refuses to start unless --allow-anonymous", async () => {
    const runs = await Promise.all(
      ["sentinel", "broker"].map((command) =>
        runGoulette([command, "--id", "x", "--no-allow-anonymous"], { cleanEnv: true, timeoutMs: 30_000 }),
      ),
    );
    for (const run of runs) {
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /no credentials configured: give --tokens-file .* or --allow-anonymous/);
    }
  });
});
