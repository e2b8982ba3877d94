import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { GetBrokersResponseSchema } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { readMetric, startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const ELECTION_TTL = 2;
const FLAGS = [
  "--election-ttl",
  String(ELECTION_TTL),
  "--heartbeat-ttl",
  "30",
  "--snapshot-every",
  "25",
  "--log-level",
  "warn",
];

/** Three sentinel processes on one real etcd: leadership, agreement, failover, recovery. */
describe("a 3-sentinel cluster on one etcd", () => {
  let etcd: TestEtcd;
  const sentinels = new Map<string, SentinelProcess>();

  const start = async (id: string) => {
    const s = await startSentinelProcess({ id, etcdEndpoint: etcd.endpoint, args: FLAGS });
    sentinels.set(id, s);
    return s;
  };
  const live = () =>
    [...sentinels.values()].filter((s) => s.process.exitCode === null && s.process.signalCode === null);
  const leaders = async () => {
    const flags = await Promise.all(
      live().map(async (s) =>
        (await readMetric(s.url, "goulette_sentinel_is_leader")) === 1 ? s : undefined,
      ),
    );
    return flags.filter((s): s is SentinelProcess => s !== undefined);
  };
  const digests = async () =>
    Promise.all(live().map(async (s) => ({ id: s.id, status: await s.client.getClusterStatus({}) })));

  before(async () => {
    etcd = await startEtcd();
    await Promise.all(["s1", "s2", "s3"].map(start));
  });
  after(async () => {
    await Promise.all([...sentinels.values()].map((s) => s.kill()));
    await etcd.stop();
  });

  it("elects exactly one leader", async () => {
    const elected = await waitFor(async () => ((await leaders()).length === 1 ? await leaders() : false), {
      what: "one leader",
    });
    assert.equal(elected.length, 1);
    // A sentinel campaigns once it has caught up, just after /readyz: wait for the third candidate.
    const status = await waitFor(
      async () => {
        const res = await (elected[0] as SentinelProcess).client.getClusterStatus({});
        return res.sentinels.length === 3 ? res : undefined;
      },
      { what: "all three sentinels to campaign" },
    );
    assert.equal(status.sentinels.filter((s) => s.isLeader).length, 1);
  });

  it("GetClusterStatus lists every sentinel's id on every sentinel, and still reads a bare-URL candidate", async () => {
    const byUrl = new Map(live().map((s) => [s.url, s.id]));
    for (const s of live()) {
      const status = await waitFor(
        async () => {
          const res = await s.client.getClusterStatus({});
          return res.sentinels.length === 3 ? res : undefined;
        },
        { what: `${s.id} to see three candidates` },
      );
      assert.deepEqual(
        status.sentinels.map((c) => c.id).sort(),
        ["s1", "s2", "s3"],
        `${s.id} lists every id, not only its own`,
      );
      for (const c of status.sentinels) assert.equal(c.id, byUrl.get(c.url), `${c.url} has its own id`);
      // Followers name the leader too (leader_id was empty when a follower answered).
      const leader = status.sentinels.find((c) => c.isLeader);
      assert.ok(leader?.id, "a leader with an id");
      assert.equal(status.leaderId, leader.id, `${s.id} answers leader_id`);
    }
    // A sentinel of an older version campaigns with its bare URL: listed with its URL and no id.
    const client = etcd.client();
    const lease = client.lease(30);
    const oldUrl = "http://127.0.0.1:1";
    await lease.put(`/goulette/election/leader/older-sentinel`).value(oldUrl);
    try {
      const [any] = live();
      const status = await waitFor(
        async () => {
          const res = await (any as SentinelProcess).client.getClusterStatus({});
          return res.sentinels.length === 4 ? res : undefined;
        },
        { what: "the older candidate to be listed" },
      );
      const older = status.sentinels.find((c) => c.url === oldUrl);
      assert.deepEqual([older?.id, older?.isLeader], ["", false]);
      assert.equal(status.sentinels.filter((c) => c.id !== "").length, 3);
    } finally {
      await lease.revoke();
    }
  });

  it("accepts writes on followers (forwarded) and every sentinel answers GetBrokers the same", async () => {
    const [leader] = await leaders();
    const followers = live().filter((s) => s !== leader);
    const follower = followers[0] as SentinelProcess;
    for (let i = 1; i <= 4; i++) {
      await follower.client.registerBroker({ brokerId: `b${i}`, address: `127.0.0.1:${20000 + i}` });
    }
    const created = await follower.client.getBrokers({ topic: "orders", replicaCount: 3, partitions: 4 });
    assert.equal(created.partitions.length, 4);
    for (const p of created.partitions) {
      assert.equal(new Set(p.replicas).size, 3, "a replica set never repeats a broker");
      assert.equal(p.leader, p.replicas[0]);
    }
    const expected = toJson(GetBrokersResponseSchema, created);
    for (const s of live()) {
      const answer = await waitFor(
        async () => {
          const res = await s.client.getBrokers({ topic: "orders", replicaCount: 3 });
          return toJson(GetBrokersResponseSchema, res);
        },
        { what: `${s.id} to answer for orders` },
      );
      assert.deepEqual(stripHeartbeats(answer), stripHeartbeats(expected), `${s.id} answers like the others`);
    }
    const forwarded = await readMetric(follower.url, "goulette_sentinel_forwarded_total");
    assert.ok((forwarded ?? 0) >= 5, `the follower forwarded its writes (counter ${forwarded})`);
  });

  it("fails over after the leader is killed, and forwarded writes keep succeeding", async () => {
    const [oldLeader] = await leaders();
    assert.ok(oldLeader);
    const follower = live().find((s) => s !== oldLeader) as SentinelProcess;
    let writes = 0;
    const failures: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop && i < 500; i++) {
        try {
          await follower.client.getBrokers(
            { topic: `during-failover-${i}`, replicaCount: 2 },
            { timeoutMs: 15_000 },
          );
          writes++;
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();
    await waitFor(() => writes >= 3, { what: "writes before the kill" });
    const killedAt = Date.now();
    await oldLeader.kill("SIGKILL");
    sentinels.delete(oldLeader.id);
    const newLeader = await waitFor(
      async () => {
        const l = await leaders();
        return l.length === 1 ? l[0] : false;
      },
      { timeoutMs: 20_000, what: "a new leader" },
    );
    // A write straight on the new leader, timed from the kill.
    await newLeader.client.getBrokers({ topic: "after-failover", replicaCount: 2 });
    const failoverMs = Date.now() - killedAt;
    const before = writes;
    await waitFor(() => writes >= before + 3, { what: "writes after the failover" });
    stop = true;
    await writer;
    console.log(
      `failover: first write on the new leader ${failoverMs} ms after SIGKILL (election TTL ${ELECTION_TTL} s)`,
    );
    assert.ok(failoverMs < (ELECTION_TTL + 2) * 1000, `failover took ${failoverMs} ms`);
    assert.deepEqual(failures, [], "no forwarded write failed during the failover");
    assert.equal((await leaders()).length, 1);
  });

  it("rebuilds exactly the same state after a restart and from scratch (snapshot + log)", async () => {
    const [leader] = await leaders();
    assert.ok(leader);
    const follower = live().find((s) => s !== leader) as SentinelProcess;
    await follower.kill("SIGTERM");
    sentinels.delete(follower.id);
    // History while it is away, enough to cross several snapshots (--snapshot-every 25).
    for (let i = 0; i < 40; i++)
      await leader.client.getBrokers({ topic: `while-away-${i}`, replicaCount: 2 });
    const status = await leader.client.getClusterStatus({});
    assert.ok(status.snapshotId > 0n, "the leader has compacted the log into a snapshot");

    await start(follower.id); // restarted
    await start("s4"); // never seen this cluster before
    const agreed = await waitFor(
      async () => {
        const all = await digests();
        const set = new Set(all.map((d) => d.status.stateDigest));
        return set.size === 1 && all.every((d) => d.status.oplogAppliedId === status.oplogHeadId)
          ? all
          : false;
      },
      { what: "all sentinels at the same digest" },
    );
    assert.equal(agreed.length, 3);
    assert.equal(agreed[0]?.status.topics, status.topics);
    await waitFor(
      async () =>
        (await readMetric(sentinels.get("s4")?.url ?? "", "goulette_sentinel_replay_lag_ops")) === 0,
      {
        what: "replay lag 0 on the new sentinel",
      },
    );
  });
});

function stripHeartbeats(json: unknown): unknown {
  return JSON.parse(
    JSON.stringify(json, (key, value: unknown) => (key === "lastHeartbeat" ? undefined : value)),
  );
}
