import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { GroupHeartbeatResponse, MemberAssignment } from "../../src/gen/goulette/v1/group_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

type Sentinel = Client<typeof SentinelService>;
type Tp = { topic: string; partition: number };

const keyOf = (p: Tp) => `${p.topic}/${p.partition}`;

/** A raw group member speaking GroupHeartbeat, as an SDK would (owned = what it "consumes"). */
class RawMember {
  memberId = "";
  last: GroupHeartbeatResponse | undefined;
  owned: Tp[] = [];

  constructor(
    public client: Sentinel,
    readonly group: string,
    readonly topics: string[],
    readonly extra: { sessionTimeoutMs?: number; instanceId?: string } = {},
  ) {}

  async beat(): Promise<MemberAssignment> {
    const res = await this.client.groupHeartbeat({
      group: this.group,
      memberId: this.memberId,
      topics: this.memberId === "" ? this.topics : [],
      sessionTimeoutMs: this.extra.sessionTimeoutMs ?? 0,
      instanceId: this.memberId === "" ? (this.extra.instanceId ?? "") : "",
      owned: this.owned,
      generation: this.last?.assignment?.generation ?? 0n,
      clientId: "spec",
    });
    this.last = res;
    const assignment = res.assignment as MemberAssignment;
    this.memberId = assignment.memberId;
    // Cooperative: consume what is assigned, release the rest at once.
    this.owned = assignment.partitions.map((p) => ({ topic: p.topic, partition: p.partition }));
    return assignment;
  }

  leave(): Promise<GroupHeartbeatResponse> {
    return this.client.groupHeartbeat({ group: this.group, memberId: this.memberId, leave: true });
  }

  keys(): string[] {
    return this.owned.map(keyOf).sort();
  }
}

async function converge(members: RawMember[], expected: number[]): Promise<void> {
  await waitFor(
    async () => {
      for (const m of members) await m.beat();
      const loads = members.map((m) => m.owned.length).sort();
      return JSON.stringify(loads) === JSON.stringify([...expected].sort()) ? true : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: `loads ${expected.join("/")}` },
  );
}

function assertDisjoint(members: RawMember[]): void {
  const seen = new Set<string>();
  for (const m of members) {
    for (const key of m.keys()) {
      assert.ok(!seen.has(key), `partition ${key} owned by two members`);
      seen.add(key);
    }
  }
}

async function expectCode(promise: Promise<unknown>, code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.rawMessage, pattern);
    return true;
  });
}

describe("consumer groups on the sentinels", () => {
  let cluster: TestCluster;
  let urls: string[];
  const clientOf = (url: string): Sentinel =>
    createClient(SentinelService, createGrpcTransport({ baseUrl: url }));

  before(async () => {
    cluster = await startCluster({
      sentinels: 3,
      brokers: 1,
      sentinelArgs: ["--max-group-members", "4"],
    });
    urls = cluster.sentinelUrls;
    await cluster.createTopic("orders", { partitions: 6, replicas: 1 });
    await cluster.createTopic("audit", { partitions: 2, replicas: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("shares partitions, hands them over cooperatively and moves a leaver's at once", async () => {
    const a = new RawMember(clientOf(urls[0] as string), "billing", ["orders"]);
    const first = await a.beat();
    assert.equal(first.partitions.length, 6);
    assert.ok(first.partitions.every((p) => p.epoch === first.generation));

    // B joins through another sentinel (forwarded to the leader): its share is pending until A releases.
    const b = new RawMember(clientOf(urls[1] as string), "billing", ["orders"]);
    const joined = await b.beat();
    assert.equal(joined.partitions.length, 0, "nothing is handed over before its owner released it");
    assert.equal(joined.pending.length, 3);
    const before = new Map(a.owned.map((p) => [keyOf(p), p]));
    await converge([a, b], [3, 3]);
    assertDisjoint([a, b]);
    const kept = (a.last?.assignment?.partitions ?? []).filter((p) => before.has(keyOf(p)));
    assert.equal(kept.length, 3, "A keeps three of its partitions");
    assert.ok(
      kept.every((p) => p.epoch === first.generation),
      "partitions that did not move keep their epoch",
    );
    const moved = b.last?.assignment?.partitions ?? [];
    assert.ok(
      moved.every((p) => p.epoch > first.generation),
      "moved partitions get a newer epoch",
    );

    const c = new RawMember(clientOf(urls[2] as string), "billing", ["orders"]);
    await c.beat();
    await converge([a, b, c], [2, 2, 2]);
    assertDisjoint([a, b, c]);

    await c.leave();
    const afterLeave = await waitFor(
      async () => {
        const [la, lb] = [await a.beat(), await b.beat()];
        return la.partitions.length + lb.partitions.length === 6 ? true : undefined;
      },
      { timeoutMs: 3_000, intervalMs: 50, what: "the leaver's partitions to move" },
    );
    assert.ok(afterLeave);
    assertDisjoint([a, b]);
    await expectCode(c.beat(), Code.NotFound, /not in group billing/);
    await a.leave();
    await b.leave();
  });

  it("pushes assignments on WatchGroupAssignment and describes the group from any sentinel", async () => {
    const a = new RawMember(clientOf(urls[0] as string), "pushed", ["orders", "audit"]);
    await a.beat();
    const stream = clientOf(urls[2] as string).watchGroupAssignment({
      group: "pushed",
      memberId: a.memberId,
    });
    const iterator = stream[Symbol.asyncIterator]();
    const firstPush = await iterator.next();
    assert.equal(firstPush.done, false);
    assert.equal((firstPush.value as MemberAssignment).partitions.length, 8);
    const b = new RawMember(clientOf(urls[1] as string), "pushed", ["orders"]);
    await b.beat();
    // A learns of the join from the push, before its next heartbeat: four of its partitions leave.
    const secondPush = await iterator.next();
    assert.equal((secondPush.value as MemberAssignment).partitions.length, 4);
    await iterator.return?.();

    const described = await clientOf(urls[1] as string).describeGroup({ group: "pushed" });
    assert.equal(described.group, "pushed");
    assert.equal(described.members.length, 2);
    assert.equal(described.state, "rebalancing");
    const listed = await clientOf(urls[0] as string).listGroups({ prefix: "push" });
    assert.deepEqual(
      listed.groups.map((g) => [g.group, g.members, g.partitions]),
      [["pushed", 2, 8]],
    );
    await a.leave();
    await b.leave();
  });

  it("expires a silent member after its session timeout and keeps a static member's partitions", async () => {
    const client = clientOf(urls[0] as string);
    const quiet = new RawMember(client, "expiry", ["orders"], { sessionTimeoutMs: 2_000 });
    const busy = new RawMember(client, "expiry", ["orders"], { sessionTimeoutMs: 10_000 });
    await quiet.beat();
    await busy.beat();
    await converge([quiet, busy], [3, 3]);
    const silentSince = Date.now();
    await waitFor(async () => ((await busy.beat()).partitions.length === 6 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: "the silent member's partitions",
    });
    const took = Date.now() - silentSince;
    assert.ok(took < 2_000 + 1_500, `moved ${took} ms after the last heartbeat (session 2 s)`);
    await expectCode(quiet.beat(), Code.NotFound, /session expired or it left/);

    // Static membership: the same instance comes back within its session and gets its partitions back.
    const pod = new RawMember(client, "static", ["orders"], { instanceId: "consumer-0" });
    const other = new RawMember(client, "static", ["orders"], { instanceId: "consumer-1" });
    await pod.beat();
    await other.beat();
    await converge([pod, other], [3, 3]);
    const podKeys = pod.keys();
    const generation = pod.last?.assignment?.generation ?? 0n;
    const restarted = new RawMember(client, "static", ["orders"], { instanceId: "consumer-0" });
    const back = await restarted.beat();
    assert.notEqual(restarted.memberId, pod.memberId);
    assert.deepEqual(back.partitions.map(keyOf).sort(), podKeys, "same partitions");
    assert.ok(
      back.partitions.every((p) => p.epoch > generation),
      "new epochs fence the old process",
    );
    assert.equal((await other.beat()).partitions.length, 3, "the other member was not disturbed");
    await expectCode(pod.beat(), Code.NotFound, /not in group static/);
    await restarted.leave();
    await other.leave();
  });

  it("keeps every assignment across a sentinel leader failover", async () => {
    const members = [0, 1, 2].map((i) => new RawMember(clientOf(urls[i] as string), "failover", ["orders"]));
    for (const m of members) await m.beat();
    await converge(members, [2, 2, 2]);
    const before = members.map((m) => m.keys());
    const generation = members[0]?.last?.assignment?.generation;
    const status = await waitFor(
      async () => {
        const s = await cluster.sentinel().getClusterStatus({});
        const leader = s.sentinels.find((x) => x.isLeader);
        return leader ? { leaderId: leader.id, leaderUrl: s.leaderUrl } : undefined;
      },
      { what: "a sentinel leader" },
    );
    await cluster.killSentinel(status.leaderId);
    // Heartbeats go to a survivor; sessions stay alive meanwhile and nothing moves.
    const survivor = urls.find((_, i) => `s${i + 1}` !== status.leaderId) as string;
    for (const m of members) m.client = clientOf(survivor);
    await waitFor(
      async () => {
        // leader_id is only filled in by the leader itself; the URL is known to everyone.
        const status2 = await clientOf(survivor).getClusterStatus({});
        if (status2.leaderUrl === "" || status2.leaderUrl === status.leaderUrl) {
          throw new Error(`${survivor} names leader '${status2.leaderUrl}'`);
        }
        return true;
      },
      { timeoutMs: 15_000, what: "a new leader" },
    );
    for (const m of members) await m.beat();
    assert.deepEqual(
      members.map((m) => m.keys()),
      before,
    );
    assert.equal(members[0]?.last?.assignment?.generation, generation, "no rebalance on failover");
    for (const m of members) await m.leave();
    await cluster.restartSentinel(status.leaderId);
  });

  it("refuses bad input with clear errors and stores nothing", async () => {
    const client = clientOf(urls[0] as string);
    await expectCode(
      client.groupHeartbeat({ group: "bad group", topics: ["orders"] }),
      Code.InvalidArgument,
      /group name "bad group" contains " "/,
    );
    await expectCode(
      client.groupHeartbeat({ group: "g1", topics: ["orders"], sessionTimeoutMs: 500 }),
      Code.InvalidArgument,
      /session_timeout_ms must be between 2000 and 300000, got 500/,
    );
    await expectCode(
      client.groupHeartbeat({ group: "g1", topics: ["orders"], instanceId: "a/b" }),
      Code.InvalidArgument,
      /instance_id "a\/b" contains "\/"/,
    );
    await expectCode(
      client.groupHeartbeat({ group: "g1", topics: [] }),
      Code.InvalidArgument,
      /at least one topic/,
    );
    await expectCode(
      client.groupHeartbeat({ group: "g1", memberId: "nobody", owned: [] }),
      Code.NotFound,
      /member nobody is not in group g1/,
    );
    const capped = [1, 2, 3, 4].map(() => new RawMember(client, "capped", ["orders"]));
    for (const m of capped) await m.beat();
    await expectCode(
      new RawMember(client, "capped", ["orders"]).beat(),
      Code.FailedPrecondition,
      /already has 4 members, the limit \(--max-group-members 4\); nothing was stored/,
    );
    assert.equal((await client.describeGroup({ group: "capped" })).members.length, 4);
    const unknown = await client.describeGroup({ group: "never-seen" });
    assert.equal(unknown.group, "");
    assert.equal(unknown.members.length, 0);
    const listed = await client.listGroups({ prefix: "g1" });
    assert.equal(listed.groups.length, 0, "refused joins stored nothing");
    for (const m of capped) await m.leave();
  });
});
