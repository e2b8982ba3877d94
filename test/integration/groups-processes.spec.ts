import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { Producer } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { spawnGroupMember, type GroupMember as Member } from "../helpers/group-member.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Consumer groups with members as real processes (test/fixtures/group-consumer.ts, run through
 * test/helpers/group-member.ts): three share six partitions, one is killed -9 mid-run, a fourth joins,
 * one is frozen past its session (a zombie), and the sentinel leader dies during a rebalance. Every
 * assertion reads what the members themselves reported (the records they processed and their
 * assigned/revoked/lost events).
 */

const TOPIC = "orders";
const GROUP = "billing";
const PARTITIONS = 6;
const SESSION_MS = 3_000;
const KEYS = 300;
const MESSAGES = 30_000;
/** A loaded 2-core machine adds to the protocol's own bound (session timeout + 1 s). */
const SCHEDULING_SLACK_MS = 1_500;

describe("consumer groups with members as processes", { timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let producer: Producer;
  const members = new Map<string, Member>();
  const seq = new Map<string, number>();

  const spawnMember = (name: string): Member => {
    const member = spawnGroupMember(name, {
      sentinels: cluster.sentinelUrls,
      topic: TOPIC,
      group: GROUP,
      sessionTimeoutMs: SESSION_MS,
    });
    members.set(name, member);
    return member;
  };
  const live = () =>
    [...members.values()].filter((m) => m.child.exitCode === null && m.child.signalCode === null);
  const loads = (list: Member[]) => list.map((m) => m.owned.size).sort();
  const converged = (list: Member[], expected: number[]) => {
    const union = new Set(list.flatMap((m) => [...m.owned]));
    const total = list.reduce((sum, m) => sum + m.owned.size, 0);
    return (
      union.size === PARTITIONS &&
      total === PARTITIONS &&
      JSON.stringify(loads(list)) === JSON.stringify(expected)
    );
  };
  const produce = async (count: number) => {
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const key = `k${i % KEYS}`;
      const n = seq.get(key) ?? 0;
      seq.set(key, n + 1);
      if (producer.pending >= 5_000) await producer.waitForRoom();
      sends.push(producer.send({ key, value: `${key}:${n}` }));
    }
    await Promise.all(sends);
  };
  /** "key:n" → "partition/offset" of every record stored now (read from the partition leaders). */
  const storedValues = async (): Promise<Map<string, string>> => {
    const layout = await cluster.layout(TOPIC);
    const stored = new Map<string, string>();
    for (const p of layout.partitions) {
      const client = createClient(
        BrokerService,
        createGrpcTransport({ baseUrl: `http://${cluster.brokerAddress(p.leader)}` }),
      );
      // Reads until the stream has been idle for its deadline (a long poll past the end never ends).
      try {
        for await (const m of client.pullMessage(
          { topic: TOPIC, partition: p.partition, offset: 0n, maxMessages: BigInt(MESSAGES) },
          { timeoutMs: 3_000 },
        )) {
          stored.set(new TextDecoder().decode(m.payload), `${p.partition}/${m.offset}`);
        }
      } catch {
        // the deadline: what arrived until then is what the partition holds
      }
    }
    return stored;
  };
  const committedOffsets = async (): Promise<number[]> => {
    const layout = await cluster.layout(TOPIC);
    return Promise.all(
      layout.partitions.map(async (p) => {
        const client = createClient(
          BrokerService,
          createGrpcTransport({ baseUrl: `http://${cluster.brokerAddress(p.leader)}` }),
        );
        const res = await client.getCommittedOffset({
          consumerGroup: GROUP,
          topic: TOPIC,
          partition: p.partition,
        });
        return Number(res.offset);
      }),
    );
  };

  before(async () => {
    // The durability a group's at-least-once promise rests on: with the broker's default minimum of one
    // in-sync replica, a failover to a lagging follower (a broker wrongly declared down on a loaded
    // machine) loses records a member already read, and the member then skips what the new leader writes
    // at those offsets (docs/reliability.md). With two of two replicas in sync required, the leader stops
    // taking acks=all writes the moment its follower drops out: only what was in flight then can be lost.
    cluster = await startCluster({ sentinels: 3, brokers: 3, brokerArgs: ["--min-insync-replicas", "2"] });
    await cluster.createTopic(TOPIC, { partitions: PARTITIONS, replicas: 2 });
    producer = new Producer({ sentinels: cluster.sentinelUrls, topic: TOPIC, lingerMs: 5 });
  });
  after(async () => {
    for (const m of members.values()) m.child.kill("SIGKILL");
    await producer?.close().catch(() => undefined);
    await cluster?.stop();
  });

  it("three members split six partitions, survive a kill -9 and a join without losing or reordering", async (t) => {
    const [a, b, c] = ["a", "b", "c"].map(spawnMember) as [Member, Member, Member];
    await waitFor(() => converged([a, b, c], [2, 2, 2]), { timeoutMs: 30_000, what: "a 2/2/2 split" });

    const producing = produce(MESSAGES);
    const received = () => [a, b, c].reduce((n, m) => n + m.messages().length, 0);
    await waitFor(() => received() >= MESSAGES / 3, { timeoutMs: 60_000, what: "a third of the messages" });
    // The victim must own partitions when it dies (a loaded machine may have moved them meanwhile).
    await waitFor(() => converged([a, b, c], [2, 2, 2]), { timeoutMs: 30_000, what: "a 2/2/2 split again" });
    const victimParts = [...b.owned];
    const killedAt = Date.now();
    b.child.kill("SIGKILL");
    await b.exited;
    b.died(killedAt);
    await waitFor(() => victimParts.every((p) => a.owned.has(p) || c.owned.has(p)), {
      timeoutMs: SESSION_MS + 10_000,
      intervalMs: 20,
      what: "the killed member's partitions to be taken over",
    });
    const takenAt = Math.max(
      ...[a, c]
        .flatMap((m) => m.events("assigned").filter((l) => l.parts?.some((p) => victimParts.includes(p))))
        .map((l) => l.t),
    );
    t.diagnostic(`killed member's partitions taken over ${takenAt - killedAt} ms after the kill`);
    assert.ok(
      takenAt - killedAt <= SESSION_MS + 1_000 + SCHEDULING_SLACK_MS,
      `taken over ${takenAt - killedAt} ms after the kill (session ${SESSION_MS} ms)`,
    );
    await producing;

    // Everything produced is processed.
    const seen = new Map<string, Set<number>>();
    await waitFor(
      () => {
        seen.clear();
        for (const m of [a, b, c]) {
          for (const l of m.messages()) {
            const [key, n] = (l.v as string).split(":") as [string, string];
            const set = seen.get(key) ?? new Set<number>();
            set.add(Number(n));
            seen.set(key, set);
          }
        }
        return [...seen.values()].reduce((n, s) => n + s.size, 0) === MESSAGES;
      },
      { timeoutMs: 60_000, what: `all ${MESSAGES} messages processed` },
    ).catch(async (err: unknown) => {
      // Say which ones are missing, whether the partitions hold them (a stalled reader) or not (a lost
      // record), where each member's reading stopped and who owns what.
      const missing = new Set(
        [...seq].flatMap(([key, count]) =>
          Array.from({ length: count }, (_, n) => n)
            .filter((n) => !seen.get(key)?.has(n))
            .map((n) => `${key}:${n}`),
        ),
      );
      const stored = await storedValues().catch(
        (e: unknown) => new Map<string, string>([["error", String(e)]]),
      );
      const storedMissing = [...missing].filter((v) => stored.has(v));
      const where = storedMissing.slice(0, 5).map((v) => `${v}@${stored.get(v)}`);
      const lastRead = [a, c].map((m) => {
        const byPartition = new Map<number, number>();
        for (const l of m.messages()) byPartition.set(l.p as number, l.o as number);
        return `${m.name} read up to ${[...byPartition].map(([p, o]) => `${p}:${o}`).join(",")}`;
      });
      const owners = [a, b, c].map((m) => `${m.name} owns ${[...m.owned].join(",")}`).join("; ");
      // The story of each partition a missing record is stored on: who held it when, what each read.
      const gapPartitions = [
        ...new Set(storedMissing.map((v) => Number((stored.get(v) as string).split("/")[0]))),
      ];
      const stories = gapPartitions.map(
        (p) =>
          `partition ${p} (b killed at 0 ms): ${[a, b, c].map((m) => m.story(TOPIC, p, killedAt)).join(" | ")}`,
      );
      // Leadership moves and broker verdicts since the cluster started: a partition whose leader moved to
      // a replica that had not all of what the old one showed consumers is where a reader would skip.
      const operations = await cluster
        .sentinel()
        .listOperations({ afterId: 0n, limit: 1000 })
        .then((res) =>
          res.operations
            .filter((o) => o.type !== "generateTopicReplicas" && o.type !== "registerBroker")
            .map((o) => `${o.type}@${Number(o.timestamp) - killedAt}ms ${o.dataJson.slice(0, 200)}`),
        )
        .catch((e: unknown) => [`operations unreadable: ${String(e)}`]);
      const epochs = await cluster
        .layout(TOPIC)
        .then((l) => l.partitions.map((p) => `${p.partition}:${p.leader}@${p.epoch}`).join(" "))
        .catch((e: unknown) => String(e));
      throw new Error(
        `${String(err)}: ${missing.size} missing (${storedMissing.length} of them stored: ${where.join(" ")}); ` +
          `${lastRead.join("; ")}; ${owners}\n${stories.join("\n")}\n` +
          `leaders now ${epochs}; operations: ${operations.join(" | ") || "none"}`,
      );
    });
    for (const [key, set] of seen) assert.equal(set.size, seq.get(key), `every message of ${key}`);
    for (const m of [a, b, c]) assert.deepEqual(m.events("reset"), [], `${m.name} never skipped offsets`);

    // In order per key within each member's hold of a partition (a partition given to it again starts
    // over from the committed offset: at least once).
    for (const m of [a, b, c]) {
      const last = new Map<string, { partition: number; n: number }>();
      for (const l of m.lines) {
        if (l.e === "assigned") {
          const again = new Set(l.parts ?? []);
          for (const [key, at] of last) if (again.has(`${TOPIC}/${at.partition}`)) last.delete(key);
        }
        if (l.e !== "msg") continue;
        const n = Number((l.v as string).split(":")[1]);
        assert.ok(n > (last.get(l.k as string)?.n ?? -1), `${m.name}: ${l.k} out of order at ${n}`);
        last.set(l.k as string, { partition: l.p as number, n });
      }
    }
    // Duplicates: a record is processed again only after the member that processed it before could not
    // commit it — the killed member (its uncommitted window, on its partitions) or a member whose session
    // expired (it reported the partition lost: at least once).
    const duplicates = new Map<number, number[]>();
    let afterLoss = 0;
    const lostBy = (m: Member, partition: number) =>
      m.events("lost").some((l) => l.parts?.includes(`${TOPIC}/${partition}`));
    const processedBy = new Map<string, { m: Member; t: number }[]>();
    for (const m of [a, b, c]) {
      for (const l of m.messages()) {
        const id = `${l.p}/${l.o}`;
        processedBy.set(id, [...(processedBy.get(id) ?? []), { m, t: l.t }]);
      }
    }
    for (const [id, list] of processedBy) {
      if (list.length < 2) continue;
      list.sort((x, y) => x.t - y.t);
      const [partition, offset] = id.split("/").map(Number) as [number, number];
      for (let i = 1; i < list.length; i++) {
        const before = (list[i - 1] as { m: Member }).m;
        const again = (list[i] as { m: Member }).m;
        if (lostBy(before, partition)) {
          afterLoss++;
          continue;
        }
        assert.ok(
          before === b && again !== b && victimParts.includes(`${TOPIC}/${partition}`),
          `record ${id} processed by ${before.name}, then again by ${again.name}, though ${before.name} ` +
            `neither lost the partition nor died holding it\n` +
            [a, b, c].map((x) => x.story(TOPIC, partition, killedAt)).join(" | "),
        );
        duplicates.set(partition, [...(duplicates.get(partition) ?? []), offset]);
      }
    }
    for (const [partition, offsets] of duplicates) {
      const lastByVictim = Math.max(
        ...b
          .messages()
          .filter((l) => l.p === partition)
          .map((l) => l.o as number),
      );
      const sorted = [...new Set(offsets)].sort((x, y) => x - y);
      assert.equal(
        sorted[sorted.length - 1],
        lastByVictim,
        `partition ${partition}: duplicates end at b's last record`,
      );
      assert.equal(
        sorted.length,
        lastByVictim - (sorted[0] as number) + 1,
        `partition ${partition}: one contiguous window`,
      );
    }
    const dupCount = [...duplicates.values()].reduce((n, o) => n + new Set(o).size, 0);
    if (afterLoss > 0) t.diagnostic(`processed again after a member's session expired: ${afterLoss}`);
    t.diagnostic(`duplicates after the kill: ${dupCount} (the uncommitted window of the killed member)`);

    // A fourth member joins under steady traffic: it takes its share and nothing else moves.
    const before = new Map([a, c].flatMap((m) => [...m.owned].map((p) => [p, m.name] as const)));
    const revokedBefore = [a, c].map((m) => m.events("revoked").length);
    const joinAt = Date.now();
    const steady = (async () => {
      for (let round = 0; round < 30; round++) {
        await produce(60);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const d = spawnMember("d");
    await waitFor(() => converged([a, c, d], [2, 2, 2]), { timeoutMs: 30_000, what: "a 2/2/2 split with d" });
    await steady;
    const moved = [...before].filter(([p, owner]) => !members.get(owner)?.owned.has(p)).map(([p]) => p);
    assert.equal(moved.length, Math.floor(PARTITIONS / 3), `moved ${moved.join(", ")}`);
    assert.deepEqual([...d.owned].sort(), [...moved].sort(), "only d's share moved, to d");
    [a, c].forEach((m, i) => {
      for (const l of m.events("revoked").slice(revokedBefore[i])) {
        for (const p of l.parts ?? [])
          assert.ok(moved.includes(p), `${m.name} stopped ${p}, which did not move`);
      }
    });
    let longest = 0;
    for (const m of [a, c]) {
      for (const p of [...m.owned]) {
        const times = m
          .messages()
          .filter((l) => `${TOPIC}/${l.p}` === p && l.t >= joinAt)
          .map((l) => l.t);
        for (let i = 1; i < times.length; i++)
          longest = Math.max(longest, (times[i] as number) - (times[i - 1] as number));
      }
    }
    t.diagnostic(`longest gap between records of an unaffected partition during the join: ${longest} ms`);
  });

  it("a zombie frozen past its session cannot commit for partitions that moved, and rejoins", async (t) => {
    const [a, c, d] = ["a", "c", "d"].map((n) => members.get(n) as Member) as [Member, Member, Member];
    const zombieParts = [...a.owned];
    const frozenAt = Date.now();
    a.child.kill("SIGSTOP");
    try {
      await waitFor(() => zombieParts.every((p) => c.owned.has(p) || d.owned.has(p)), {
        timeoutMs: SESSION_MS + 10_000,
        what: "the frozen member's partitions to move",
      });
      const target = d.messages().length + c.messages().length + 600;
      await produce(600);
      await waitFor(() => d.messages().length + c.messages().length >= target, {
        what: "the new owners to read",
      });
      // Let the new owners' auto commit (200 ms) run after they read it all.
      const committed = await waitFor(
        async () => {
          const offsets = await committedOffsets();
          const total = offsets.reduce((n, o) => n + o, 0);
          return total >= [...seq.values()].reduce((n, s) => n + s, 0) ? offsets : undefined;
        },
        { timeoutMs: 15_000, what: "the new owners' commits" },
      );
      const resumedAt = Date.now();
      a.child.kill("SIGCONT");
      // Its rejoin after this freeze: a loaded machine may have expired its session before (another rejoin).
      await waitFor(() => a.events("rejoined").some((l) => l.t >= resumedAt), {
        timeoutMs: 15_000,
        what: "the zombie to rejoin",
      });
      // Lost, or revoked by a revocation that was under way when it froze (it then committed nothing new).
      const gone = [...a.events("lost"), ...a.events("revoked")]
        .filter((l) => l.t >= frozenAt)
        .flatMap((l) => l.parts ?? []);
      for (const p of zombieParts)
        assert.ok(gone.includes(p), `the zombie reported ${p} lost (${JSON.stringify(a.events("lost"))})`);
      t.diagnostic(
        `zombie's reasons: ${a
          .events("lost")
          .map((l) => l.reason)
          .join(" | ")}`,
      );
      await waitFor(() => converged([a, c, d], [2, 2, 2]), {
        timeoutMs: 30_000,
        what: "the group to settle again",
      });
      const after = await committedOffsets();
      after.forEach((offset, p) =>
        assert.ok(
          offset >= (committed[p] as number),
          `partition ${p}: committed ${committed[p]} went back to ${offset}`,
        ),
      );
    } finally {
      a.child.kill("SIGCONT");
    }
  });

  it("a sentinel leader killed during a rebalance: one assignment, never two owners at once", async () => {
    const startedAt = Date.now();
    const e = spawnMember("e");
    await waitFor(() => e.events("joined").length > 0, { timeoutMs: 15_000, what: "e to join" });
    const status = await waitFor(async () => {
      const s = await cluster.sentinel().getClusterStatus({});
      return s.sentinels.find((x) => x.isLeader);
    });
    await cluster.killSentinel(status.id);
    const group = live();
    await waitFor(() => converged(group, [1, 1, 2, 2]), { timeoutMs: 40_000, what: "a 2/2/1/1 split" });
    // From the members' own reports: a partition's ownership intervals never overlap.
    for (let p = 0; p < PARTITIONS; p++) {
      const key = `${TOPIC}/${p}`;
      const spans = group
        .flatMap((m) => (m.intervals.get(key) ?? []).map(([from, to]) => ({ from, to, who: m.name })))
        .filter((s) => s.to >= startedAt)
        .sort((x, y) => x.from - y.from);
      for (let i = 1; i < spans.length; i++) {
        const [prev, next] = [spans[i - 1], spans[i]] as [(typeof spans)[0], (typeof spans)[0]];
        const losses = group.flatMap((m) => m.events("lost").map((l) => `${m.name}: ${l.reason}`));
        assert.ok(
          next.from >= prev.to,
          `${key}: ${next.who} took it at ${next.from} before ${prev.who} released it at ${prev.to}` +
            ` (losses: ${losses.join(" | ") || "none"})`,
        );
      }
    }
    await cluster.restartSentinel(status.id);
    for (const m of group) m.child.kill("SIGTERM");
    const codes = await Promise.all(group.map((m) => m.exited));
    assert.deepEqual(
      codes,
      group.map(() => 0),
      "every member closed cleanly",
    );
  });
});
