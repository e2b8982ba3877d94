import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Etcd3, Watcher } from "etcd3";
import { createKeyspace } from "../src/coordination/keyspace.js";
import type { MemberAssignment } from "../src/gen/goulette/v1/group_pb.js";
import { Consumer, Producer, createNodeTransport, type ClientTransport } from "../src/index.js";
import { startCluster, type TestCluster } from "../test/helpers/cluster.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { trackChild } from "./lib/children.js";
import { processCpuMs } from "./lib/cpu.js";
import { sentinelClient, type SentinelClient } from "./lib/sentinel.js";
import { quantile } from "./lib/stats.js";
import { fmt, type Table } from "./lib/table.js";
import { waitFor, withTimeout } from "./lib/wait.js";

/** Session timeout of the members: the SDK's default (heartbeats every 3.3 s). */
const SESSION_MS = 10_000;
/**
 * Session timeout of the member a crash trial stops (it joined in the trial before): heartbeats every
 * 1 s, expired 3 s after its last one, so that a crash trial takes seconds rather than 10+.
 */
const CRASH_SESSION_MS = 3_000;
/** Members that stay in the group; a trial adds or removes the (N+1)th. */
const SIZES = [1, 10, 50];
const PARTITIONS = [12, 300];
const BROKERS = 2;
/** The SDK scenario: a topic of 12 partitions, one message per partition every SDK_TICK_MS. */
const SDK_PARTITIONS = 12;
const SDK_TICK_MS = 50;
const SDK_TOPIC = "groups-sdk";
const ELECTION_TTL_S = 5;
/** Goals (docs/benchmarks.md, "Consumer groups"). */
const GOAL_JOIN_LEAVE_MS = 1_000;
const GOAL_CRASH_MS = CRASH_SESSION_MS + 1_000;

type Kind = "join" | "leave" | "crash";
const keyOf = (p: { topic: string; partition: number }) => `${p.topic}/${p.partition}`;
const refOf = (key: string) => {
  const slash = key.lastIndexOf("/");
  return { topic: key.slice(0, slash), partition: Number(key.slice(slash + 1)) };
};

/** One change of what a member was told to consume (its own view), bench clock. */
interface ViewChange {
  t: number;
  partitions: ReadonlySet<string>;
}

/**
 * A raw group member speaking GroupHeartbeat and WatchGroupAssignment, as the SDK does
 * (test/integration/sentinel-groups.spec.ts's RawMember, plus the push stream and a heartbeat timer).
 * Cooperative and instant: a partition it is no longer told to consume is released at once (the SDK
 * stops it and commits first), reported by a heartbeat sent right away.
 */
class Member {
  memberId = "";
  generation = -1n;
  partitions: ReadonlySet<string> = new Set();
  pending: ReadonlySet<string> = new Set();
  readonly history: ViewChange[] = [];
  /** When (partitions, pending) last changed: the member is informed of its assignment from then on. */
  lastChange = 0;
  /** Answer time of its last successful heartbeat (the session runs from about then). */
  lastBeatAnswered = 0;
  intervalMs: number;
  beats = 0;
  /** Round trip of every periodic or release heartbeat (ms). */
  readonly rtts: number[] = [];
  /** Sessions lost while heartbeating (NOT_FOUND: expired): the member rejoined, as the SDK does. */
  readonly lostSessions: number[] = [];
  readonly errors: string[] = [];
  #rejoining: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #watch = new AbortController();
  readonly #inflight = new Set<Promise<void>>();
  #stopped = false;

  constructor(
    readonly client: SentinelClient,
    /** Index of its sentinel in the cluster's URLs. */
    readonly sentinel: number,
    readonly group: string,
    readonly topics: string[],
    readonly sessionTimeoutMs: number,
  ) {
    this.intervalMs = sessionTimeoutMs / 3;
  }

  async join(): Promise<void> {
    this.#stopped = false;
    this.#watch = new AbortController();
    const res = await this.client.groupHeartbeat(
      {
        group: this.group,
        topics: this.topics,
        sessionTimeoutMs: this.sessionTimeoutMs,
        clientId: "bench",
      },
      { timeoutMs: 10_000 },
    );
    this.lastBeatAnswered = performance.now();
    const assignment = res.assignment as MemberAssignment;
    this.memberId = assignment.memberId;
    this.intervalMs = res.heartbeatIntervalMs;
    this.#apply(assignment);
    this.#schedule();
    this.#startWatch();
  }

  /** Leaves (its partitions move at once); answers when the request was sent. */
  async leave(): Promise<number> {
    this.#stop();
    const t0 = performance.now();
    await this.client.groupHeartbeat(
      { group: this.group, memberId: this.memberId, leave: true },
      { timeoutMs: 10_000 },
    );
    return t0;
  }

  /** Stops heartbeating and drops its stream, as a killed process would; answers the stop time. */
  async crash(): Promise<number> {
    this.#stop();
    const t0 = performance.now();
    // A heartbeat already on the wire still renews the session: its answer is the last heartbeat.
    await Promise.all([...this.#inflight]);
    return t0;
  }

  /** Leaves at the end of a size (not measured). */
  async close(): Promise<void> {
    await this.#rejoining;
    if (this.#stopped) return;
    await this.leave().catch(() => undefined);
  }

  #stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#watch.abort();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#beat();
      this.#schedule();
    }, this.intervalMs);
  }

  #beat(): void {
    if (this.#stopped || this.#rejoining) return;
    const owned = [...this.partitions].map(refOf);
    // The generation `owned` was computed at: a partition given later is not taken as released.
    const generation = this.generation < 0n ? 0n : this.generation;
    const sent = performance.now();
    const done = this.client
      .groupHeartbeat({ group: this.group, memberId: this.memberId, owned, generation }, { timeoutMs: 5_000 })
      .then((res) => {
        this.lastBeatAnswered = performance.now();
        this.rtts.push(this.lastBeatAnswered - sent);
        this.beats++;
        if (!this.#stopped) this.#apply(res.assignment);
      })
      .catch((err: unknown) => {
        if (this.#stopped) return;
        this.errors.push(`heartbeat: ${err instanceof Error ? err.message : String(err)}`);
        if (err instanceof ConnectError && err.code === Code.NotFound) this.#rejoin();
      })
      .finally(() => this.#inflight.delete(done));
    this.#inflight.add(done);
  }

  /** Its session expired under it: everything is lost at once, then it joins again (as the SDK does). */
  #rejoin(): void {
    if (this.#rejoining) return;
    const t = performance.now();
    this.lostSessions.push(t);
    this.#stop();
    this.generation = -1n;
    this.partitions = new Set();
    this.pending = new Set();
    this.history.push({ t, partitions: this.partitions });
    this.lastChange = t;
    this.#rejoining = this.join()
      .catch((err: unknown) => {
        this.errors.push(`rejoin: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => (this.#rejoining = undefined));
  }

  /** One push stream per session: ends with the session (its controller aborted). */
  #startWatch(): void {
    const signal = this.#watch.signal;
    const request = { group: this.group, memberId: this.memberId };
    const loop = async () => {
      while (!signal.aborted) {
        try {
          for await (const assignment of this.client.watchGroupAssignment(request, { signal })) {
            this.#apply(assignment);
          }
        } catch (err) {
          if (signal.aborted) return;
          this.errors.push(`watch: ${err instanceof Error ? err.message : String(err)}`);
        }
        await sleep(100);
      }
    };
    void loop();
  }

  /** An assignment from a push or a heartbeat answer; older generations (a lagging mirror) are ignored. */
  #apply(assignment: MemberAssignment | undefined): void {
    if (!assignment || this.#stopped || assignment.memberId !== this.memberId) return;
    if (assignment.generation < this.generation) return;
    // The first answer informs it, even of an empty assignment.
    if (this.generation < 0n) this.lastChange = performance.now();
    this.generation = assignment.generation;
    const next = new Set(assignment.partitions.map(keyOf));
    const pending = new Set(assignment.pending.map(keyOf));
    const released = [...this.partitions].some((k) => !next.has(k));
    if (!sameSet(next, this.partitions) || !sameSet(pending, this.pending)) {
      const t = performance.now();
      this.lastChange = t;
      if (!sameSet(next, this.partitions)) this.history.push({ t, partitions: next });
    }
    this.partitions = next;
    this.pending = pending;
    if (released) this.#beat(); // cooperative: report the release at once
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const v of a) if (!b.has(v)) return false;
  return true;
}

/** What a member consumed at time t, by its own view. */
function viewAt(member: Member, t: number): ReadonlySet<string> {
  let current: ReadonlySet<string> = new Set();
  for (const change of member.history) {
    if (change.t > t) break;
    current = change.partitions;
  }
  return current;
}

/** Times a member's view gained / lost partition `key` after t0, in order. */
function transitions(member: Member, key: string, t0: number, t1: number): { t: number; has: boolean }[] {
  const out: { t: number; has: boolean }[] = [];
  let has = viewAt(member, t0).has(key);
  for (const change of member.history) {
    if (change.t <= t0 || change.t > t1) continue;
    const now = change.partitions.has(key);
    if (now !== has) out.push({ t: change.t, has: now });
    has = now;
  }
  return out;
}

/** etcd events of the groups' keys, timed on the bench clock (an independent view of the coordinator). */
class GroupKeysWatch {
  readonly expired = new Map<string, number>();
  readonly stateWrites = new Map<string, number[]>();
  private constructor(private readonly watcher: Watcher) {}

  static async start(cluster: TestCluster): Promise<GroupKeysWatch> {
    const keys = createKeyspace();
    const client = cluster.etcd.client();
    const watcher = await client.watch().prefix(keys.groupsPrefix).create();
    const watch = new GroupKeysWatch(watcher);
    watcher.on("delete", (kv) => {
      const [group, kind, memberId] = kv.key.toString().slice(keys.groupsPrefix.length).split("/");
      if (kind === "members") watch.expired.set(`${group}/${memberId}`, performance.now());
    });
    watcher.on("put", (kv) => {
      const [group, kind] = kv.key.toString().slice(keys.groupsPrefix.length).split("/");
      if (kind !== "state" || group === undefined) return;
      const list = watch.stateWrites.get(group) ?? [];
      list.push(performance.now());
      watch.stateWrites.set(group, list);
    });
    return watch;
  }

  writesBetween(group: string, t0: number, t1: number): number[] {
    return (this.stateWrites.get(group) ?? []).filter((t) => t >= t0 && t <= t1);
  }

  async stop(): Promise<void> {
    await this.watcher.cancel().catch(() => undefined);
  }
}

interface Trial {
  kind: Kind;
  members: number;
  partitions: number;
  /** Event → assignment in force (crash: from the session's expiry, the etcd delete of its key). */
  inForceMs: number;
  /** Crash only: from the member's stop and from its last answered heartbeat. */
  fromStopMs?: number;
  fromLastBeatMs?: number;
  /** Crash only: last heartbeat → etcd deleted its key (the lease expiry as etcd carried it out). */
  expiryAfterLastBeatMs?: number;
  /** Event (crash: expiry) → the last state write the coordinator made for it. */
  lastStateWriteMs: number;
  stateWrites: number;
  /** Every state write of the rebalance, ms after the event (crash: after the expiry). */
  stateWriteOffsetsMs: number[];
  moved: number;
  minimum: number;
  /** Longest time a partition that kept its owner was absent from that owner's view. */
  unaffectedPauseMs: number;
  unaffectedPaused: number;
  /** Moved partitions: absent from the old owner's view (crash: session expired) → in the new owner's. */
  handOverMs: number[];
  /** Partitions in two members' views at the same moment. */
  overlaps: number;
  /** Sessions of members that kept heartbeating which expired meanwhile (they rejoined). */
  lostSessions: number;
}

class Group {
  readonly members: Member[] = [];
  #next = 0;
  constructor(
    readonly name: string,
    readonly topic: string,
    readonly partitions: number,
    private readonly clients: SentinelClient[],
    /** The sentinel leader's client: DescribeGroup from the state the coordinator decides from. */
    readonly leader: () => SentinelClient,
  ) {}

  /** A new member, on the sentinels in turn. */
  async add(sessionTimeoutMs = SESSION_MS): Promise<Member> {
    const sentinel = this.#next++ % this.clients.length;
    const member = new Member(
      this.clients[sentinel] as SentinelClient,
      sentinel,
      this.name,
      [this.topic],
      sessionTimeoutMs,
    );
    await member.join();
    this.members.push(member);
    return member;
  }

  remove(member: Member): void {
    this.members.splice(this.members.indexOf(member), 1);
  }

  /** Every partition in exactly one live member's view, nothing pending: the assignment is in force. */
  stable(): boolean {
    let total = 0;
    const seen = new Set<string>();
    for (const m of this.members) {
      if (m.pending.size > 0) return false;
      total += m.partitions.size;
      for (const k of m.partitions) seen.add(k);
    }
    return total === this.partitions && seen.size === this.partitions;
  }

  owners(): Map<string, Member> {
    const owners = new Map<string, Member>();
    for (const m of this.members) for (const k of m.partitions) owners.set(k, m);
    return owners;
  }

  /**
   * Waits until stable() holds and the leader's DescribeGroup agrees (state "stable", the same
   * partitions per member), so views of different generations cannot pass for the end of a rebalance.
   */
  async waitStable(timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      await this.#waitViews(Math.max(1, deadline - performance.now()), what);
      const disagreement = await this.#disagreement();
      if (disagreement === undefined) return;
      if (performance.now() > deadline) {
        throw new Error(`${this.name}: ${what}: DescribeGroup on the leader disagrees: ${disagreement}`);
      }
      await sleep(50); // the views are timed by their own clocks: polling slower costs no precision
    }
  }

  /** Undefined when the leader's DescribeGroup says what the members' views say. */
  async #disagreement(): Promise<string | undefined> {
    const described = await this.leader().describeGroup({ group: this.name }, { timeoutMs: 5_000 });
    if (described.state !== "stable") return `state ${described.state}`;
    const byId = new Map(this.members.map((m) => [m.memberId, m]));
    const ids = new Set(described.members.map((d) => d.memberId));
    const extra = described.members.filter((d) => !byId.has(d.memberId));
    const missing = this.members.filter((m) => !ids.has(m.memberId));
    if (extra.length > 0 || missing.length > 0) {
      const who = (id: string, n: number) => `${id.slice(0, 8)} (${n} partitions)`;
      return `members only there: ${extra.map((d) => who(d.memberId, d.partitions.length)).join(", ") || "none"}; only here: ${missing.map((m) => who(m.memberId, m.partitions.size)).join(", ") || "none"}`;
    }
    const differ = described.members.filter(
      (d) => !sameSet(new Set(d.partitions.map(keyOf)), (byId.get(d.memberId) as Member).partitions),
    );
    return differ.length > 0 ? `${differ.length} members' partitions differ` : undefined;
  }

  async #waitViews(timeoutMs: number, what: string): Promise<void> {
    await waitFor(() => this.stable(), { timeoutMs, intervalMs: 10, what: `${this.name}: ${what}` }).catch(
      (err: unknown) => {
        const loads = this.members.map((m) => `${m.partitions.size}+${m.pending.size}p`).join(" ");
        const errors = this.members.flatMap((m) => m.errors).slice(-3);
        throw new Error(
          `${err instanceof Error ? err.message : String(err)} (loads ${loads}; errors: ${errors.join("; ") || "none"})`,
        );
      },
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close()));
  }
}

/**
 * Runs one event and measures it from the members' own views: until every partition is in exactly one
 * live member's view and no member has anything pending.
 */
async function measure(
  group: Group,
  keys: GroupKeysWatch,
  kind: Kind,
  event: () => Promise<{ t0: number; departed?: Member; joined?: Member; lastBeat?: number }>,
): Promise<Trial> {
  const before = group.owners();
  const all = [...group.members];
  const { t0, departed, joined, lastBeat } = await event();
  if (departed) group.remove(departed);
  if (joined) all.push(joined);
  const timeoutMs = kind === "crash" ? CRASH_SESSION_MS + 20_000 : 20_000;
  await group.waitStable(timeoutMs, `${kind} to be in force`);
  let expiry: number | undefined;
  if (kind === "crash" && departed) {
    const id = `${group.name}/${departed.memberId}`;
    expiry = await waitFor(() => keys.expired.get(id), { timeoutMs: 5_000, what: "the expiry event" });
  }
  const done = Math.max(t0, expiry ?? t0, ...group.members.map((m) => m.lastChange));
  const after = group.owners();

  const from = expiry ?? t0;
  // Moves and pauses, from the views.
  let moved = 0;
  let unaffectedPaused = 0;
  let unaffectedPauseMs = 0;
  const handOverMs: number[] = [];
  for (const [key, owner] of after) {
    const previous = before.get(key);
    if (previous === owner) {
      let absentSince: number | undefined;
      let absent = 0;
      for (const tr of transitions(owner, key, t0, done)) {
        if (!tr.has) absentSince = tr.t;
        else if (absentSince !== undefined) {
          absent += tr.t - absentSince;
          absentSince = undefined;
        }
      }
      if (absentSince !== undefined) absent += done - absentSince;
      if (absent > 0) unaffectedPaused++;
      unaffectedPauseMs = Math.max(unaffectedPauseMs, absent);
      continue;
    }
    moved++;
    const released =
      previous === undefined || previous === departed
        ? from
        : (transitions(previous, key, t0, done).find((tr) => !tr.has)?.t ?? from);
    const acquired = transitions(owner, key, t0, done).find((tr) => tr.has)?.t ?? done;
    handOverMs.push(acquired - released);
  }
  const minimum =
    kind === "join"
      ? Math.floor(group.partitions / group.members.length)
      : [...before.values()].filter((m) => m === departed).length;

  // Overlaps: replay every view change after t0 (a departed member consumes nothing from t0 on).
  const changes = all
    .filter((m) => m !== departed)
    .flatMap((m) => m.history.filter((c) => c.t > t0 && c.t <= done).map((c) => ({ m, c })))
    .sort((a, b) => a.c.t - b.c.t);
  const views = new Map<Member, ReadonlySet<string>>(
    all.filter((m) => m !== departed).map((m) => [m, viewAt(m, t0)]),
  );
  const doubled = new Set<string>();
  for (const { m, c } of changes) {
    views.set(m, c.partitions);
    const seen = new Set<string>();
    for (const view of views.values()) {
      for (const k of view) {
        if (seen.has(k)) doubled.add(k);
        seen.add(k);
      }
    }
  }
  const writes = keys.writesBetween(group.name, t0, done + 1);
  const trial: Trial = {
    kind,
    members: group.members.length - (kind === "join" ? 1 : 0),
    partitions: group.partitions,
    inForceMs: done - from,
    lastStateWriteMs: writes.length > 0 ? (writes[writes.length - 1] as number) - from : Number.NaN,
    stateWrites: writes.length,
    stateWriteOffsetsMs: writes.map((t) => Math.round(t - from)),
    moved,
    minimum,
    unaffectedPauseMs,
    unaffectedPaused,
    handOverMs,
    overlaps: doubled.size,
    lostSessions: all.reduce((n, m) => n + m.lostSessions.filter((t) => t >= t0 && t <= done).length, 0),
  };
  if (kind === "crash" && expiry !== undefined && lastBeat !== undefined) {
    trial.fromStopMs = done - t0;
    trial.fromLastBeatMs = done - lastBeat;
    trial.expiryAfterLastBeatMs = expiry - lastBeat;
  }
  return trial;
}

interface Steady {
  leader: number;
  followers: number[];
  etcd: number;
  heartbeatsPerSecond: number;
  /** One etcd put from the benchmark, sequential, right after the window: p50 ms. */
  etcdPutMs: number;
}

/**
 * Steady state: heartbeats only, for `ms`: CPU of each sentinel and of etcd (% of one core); then the
 * round trip of a plain etcd write, the unit of the coordinator's work.
 */
async function steadyState(
  cluster: TestCluster,
  etcd: Etcd3,
  leaderId: string,
  group: Group,
  ms: number,
): Promise<Steady> {
  const sentinels = [...cluster.sentinels.values()];
  const beats = () => group.members.reduce((sum, m) => sum + m.beats, 0);
  const cpu = () => sentinels.map((s) => processCpuMs(s.process.pid));
  const etcdCpu = () => processCpuMs(cluster.etcd.process.pid);
  const [c0, e0, b0, t0] = [cpu(), etcdCpu(), beats(), performance.now()];
  await sleep(ms);
  const [c1, e1, b1, t1] = [cpu(), etcdCpu(), beats(), performance.now()];
  const pct = (a: number, b: number) => (100 * (b - a)) / (t1 - t0);
  const per = sentinels.map((s, i) => ({ id: s.id, pct: pct(c0[i] as number, c1[i] as number) }));
  const puts: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    await etcd.put("/bench/groups-probe").value(String(i));
    puts.push(performance.now() - start);
  }
  return {
    etcdPutMs: quantile(
      puts.sort((a, b) => a - b),
      0.5,
    ),
    leader: per.find((p) => p.id === leaderId)?.pct ?? Number.NaN,
    followers: per.filter((p) => p.id !== leaderId).map((p) => p.pct),
    etcd: pct(e0, e1),
    heartbeatsPerSecond: ((b1 - b0) * 1000) / (t1 - t0),
  };
}

/** Sum of a Prometheus counter's samples whose labels contain `labels` (e.g. 'method="GroupHeartbeat"'). */
async function counter(url: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** GroupHeartbeats the sentinels forwarded to the leader so far (every outcome). */
async function forwardedHeartbeats(cluster: TestCluster): Promise<number> {
  const counts = await Promise.all(
    cluster.sentinelUrls.map((url) =>
      counter(url, "goulette_sentinel_forwarded_total", 'method="GroupHeartbeat"'),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** GroupHeartbeat handling time so far per sentinel (goulette_rpc_duration_seconds): sum s and count. */
async function heartbeatHandling(cluster: TestCluster): Promise<Map<string, { sum: number; count: number }>> {
  const out = new Map<string, { sum: number; count: number }>();
  for (const s of cluster.sentinels.values()) {
    const label = 'method="GroupHeartbeat"';
    out.set(s.id, {
      sum: await counter(s.url, "goulette_rpc_duration_seconds_sum", label),
      count: await counter(s.url, "goulette_rpc_duration_seconds_count", label),
    });
  }
  return out;
}

/** Mean GroupHeartbeat handling ms between two readings: on the leader, and on the followers together. */
function handlingMs(
  before: Map<string, { sum: number; count: number }>,
  after: Map<string, { sum: number; count: number }>,
  leaderId: string,
): { leader: number; followers: number } {
  const mean = (ids: string[]) => {
    let sum = 0;
    let count = 0;
    for (const id of ids) {
      sum += (after.get(id)?.sum ?? 0) - (before.get(id)?.sum ?? 0);
      count += (after.get(id)?.count ?? 0) - (before.get(id)?.count ?? 0);
    }
    return count > 0 ? (1000 * sum) / count : Number.NaN;
  };
  const ids = [...after.keys()];
  return { leader: mean([leaderId]), followers: mean(ids.filter((id) => id !== leaderId)) };
}

interface SetupResult {
  members: number;
  partitions: number;
  /** Joins sent at once → every partition in force; undefined when not within the deadline. */
  inForceSeconds: number | undefined;
  deadlineSeconds: number;
  stateWrites: number;
  lostSessions: number;
  heartbeatTimeouts: number;
  heartbeatRttMaxMs: number;
  forwarded: number;
  heartbeats: number;
  leaderCpuPercent: number;
  /** Members and their loads (owned+pending) when it ended: what was left when it did not settle. */
  loads: string;
}

/**
 * The set-up of each size, measured: N members join at once (a deployment scaled from 0 to N) until the
 * assignment is in force, with a deadline for the figure (the set-up itself waits longer).
 */
async function joinAtOnce(
  ctx: BenchContext,
  cluster: TestCluster,
  keys: GroupKeysWatch,
  group: Group,
  leaderId: string,
  members: number,
): Promise<SetupResult> {
  const leader = cluster.sentinels.get(leaderId);
  const deadlineSeconds = ctx.quick ? 20 : 30;
  const forwarded0 = await forwardedHeartbeats(cluster);
  const cpu0 = processCpuMs(leader?.process.pid);
  const t0 = performance.now();
  let inForceSeconds: number | undefined;
  await Promise.all(Array.from({ length: members }, () => group.add()));
  try {
    await group.waitStable(deadlineSeconds * 1000 - (performance.now() - t0), "N joins at once");
    inForceSeconds = (Math.max(...group.members.map((m) => m.lastChange)) - t0) / 1000;
  } catch {
    inForceSeconds = undefined;
  }
  const t1 = performance.now();
  const rtts = group.members.flatMap((m) => m.rtts);
  const errors = group.members.flatMap((m) => m.errors);
  const result: SetupResult = {
    members,
    partitions: group.partitions,
    inForceSeconds,
    deadlineSeconds,
    stateWrites: keys.writesBetween(group.name, t0, t1).length,
    lostSessions: group.members.reduce((n, m) => n + m.lostSessions.length, 0),
    heartbeatTimeouts: errors.filter((e) => e.includes("deadline_exceeded")).length,
    heartbeatRttMaxMs: Math.max(0, ...rtts),
    forwarded: (await forwardedHeartbeats(cluster)) - forwarded0,
    heartbeats: rtts.length,
    leaderCpuPercent: (100 * (processCpuMs(leader?.process.pid) - cpu0)) / (t1 - t0),
    loads: group.members.map((m) => `${m.partitions.size}+${m.pending.size}`).join(" "),
  };
  ctx.log(
    `    ${members} joins at once on ${group.partitions} partitions: ${inForceSeconds === undefined ? `NOT in force within ${deadlineSeconds} s` : `in force after ${fmt(inForceSeconds)} s`}, ${result.stateWrites} state writes, ${result.lostSessions} sessions lost, ${result.heartbeatTimeouts} heartbeat timeouts`,
  );
  // The trials need the group settled, however long that takes.
  if (inForceSeconds === undefined) await group.waitStable(120_000, "the set-up to settle");
  return result;
}

interface SdkRun {
  /** The 4th consumer created → its first `assigned` event with partitions. */
  firstAssignedMs: number;
  /** The 4th consumer created → every consumer holds its final share, nothing pending or revoking. */
  inForceMs: number;
  moved: number;
  minimum: number;
  /** Longest gap between two receipts of one partition from the join to the end, by partition kind. */
  unmovedMaxGapMs: number;
  movedMaxGapMs: number;
  /** The same measure over the window before the join (scheduling noise of this machine). */
  baselineMaxGapMs: number;
  /** Messages received twice (a new owner re-reading what the old one had not committed). */
  redelivered: number;
  /** Messages missing between the first and the last one received of each partition. */
  skipped: number;
  produced: number;
  received: number;
  produceErrors: number;
}

/**
 * The SDK's group consumer: 3 Consumers share a 12-partition topic under a steady produce rate; a 4th
 * joins; the longest gap in receipt for partitions that moved vs those that did not. All clients run
 * in the benchmark process, over one HTTP/2 transport.
 */
async function sdkRun(
  ctx: BenchContext,
  cluster: TestCluster,
  transport: ClientTransport,
  topic: string,
  group: string,
): Promise<SdkRun> {
  const receipts: { t: number; consumer: number; seq: string }[][] = Array.from(
    { length: SDK_PARTITIONS },
    () => [],
  );
  let firstAssigned: number | undefined;
  const consumers: Consumer[] = [];
  const loops: Promise<void>[] = [];
  const add = () => {
    const index = consumers.length;
    const consumer = new Consumer({
      sentinels: cluster.sentinelUrls,
      transport,
      topic,
      group,
      onEvent: (event) => {
        if (index === 3 && event.type === "assigned" && event.partitions.length > 0) {
          firstAssigned ??= performance.now();
        }
      },
    });
    consumers.push(consumer);
    loops.push(
      (async () => {
        for await (const m of consumer) {
          receipts[m.partition]?.push({ t: performance.now(), consumer: index, seq: m.text() });
        }
      })().catch(() => undefined),
    );
    return consumer;
  };
  const producer = new Producer({ sentinels: cluster.sentinelUrls, transport });
  let producing = true;
  let produced = 0;
  let produceErrors = 0;
  const produceLoop = (async () => {
    const deadline = performance.now() + 120_000; // bounded whatever happens below
    for (let seq = 0; producing && performance.now() < deadline; seq++) {
      for (let partition = 0; partition < SDK_PARTITIONS; partition++) {
        produced++;
        void producer.send({ topic, partition, value: String(seq) }).catch(() => produceErrors++);
      }
      await sleep(SDK_TICK_MS);
    }
  })();
  const shares = () => consumers.map((c) => c.stats().group);
  const settled = (n: number) => {
    const groups = shares();
    return (
      groups.length === n &&
      groups.every(
        (g) =>
          g !== undefined &&
          g.pending.length === 0 &&
          g.revoking.length === 0 &&
          Math.abs(g.partitions.length - SDK_PARTITIONS / n) < 1,
      )
    );
  };
  const flowing = (since: number) => receipts.every((list) => list.some((r) => r.t >= since));
  try {
    for (let i = 0; i < 3; i++) await withTimeout(add().start(), 30_000, "an SDK consumer to join");
    const since = performance.now();
    await waitFor(() => settled(3) && flowing(since + 200), {
      timeoutMs: 30_000,
      what: "3 SDK consumers to share the partitions and receive",
    });
    const baselineStart = performance.now();
    await sleep(ctx.quick ? 1_500 : 2_500);
    const tJoin = performance.now();
    const before = receipts.map((list) => list[list.length - 1]?.consumer);
    add();
    await waitFor(() => settled(4), { timeoutMs: 30_000, what: "the 4th SDK consumer's share" });
    const inForce = performance.now();
    await waitFor(() => flowing(inForce), { timeoutMs: 10_000, what: "every partition to flow again" });
    await sleep(ctx.quick ? 1_000 : 2_000);
    const tEnd = performance.now();
    producing = false;
    await produceLoop;
    const after = receipts.map((list) => list[list.length - 1]?.consumer);
    const maxGap = (list: { t: number }[], from: number, to: number) => {
      const times = list.filter((r) => r.t >= from && r.t <= to).map((r) => r.t);
      const previous = list.filter((r) => r.t < from).pop();
      if (previous) times.unshift(previous.t);
      let gap = 0;
      for (let i = 1; i < times.length; i++)
        gap = Math.max(gap, (times[i] as number) - (times[i - 1] as number));
      return gap;
    };
    let moved = 0;
    let unmovedMaxGapMs = 0;
    let movedMaxGapMs = 0;
    let baselineMaxGapMs = 0;
    let redelivered = 0;
    let skipped = 0;
    receipts.forEach((list, partition) => {
      const gap = maxGap(list, tJoin, tEnd);
      if (before[partition] !== after[partition]) {
        moved++;
        movedMaxGapMs = Math.max(movedMaxGapMs, gap);
      } else unmovedMaxGapMs = Math.max(unmovedMaxGapMs, gap);
      baselineMaxGapMs = Math.max(baselineMaxGapMs, maxGap(list, baselineStart, tJoin));
      const seqs = new Set(list.map((r) => Number(r.seq)));
      redelivered += list.length - seqs.size;
      if (seqs.size > 0) skipped += Math.max(...seqs) - Math.min(...seqs) + 1 - seqs.size;
    });
    const result: SdkRun = {
      firstAssignedMs: (firstAssigned ?? Number.NaN) - tJoin,
      inForceMs: inForce - tJoin,
      moved,
      minimum: Math.floor(SDK_PARTITIONS / 4),
      unmovedMaxGapMs,
      movedMaxGapMs,
      baselineMaxGapMs,
      redelivered,
      skipped,
      produced,
      received: receipts.reduce((n, list) => n + list.length, 0),
      produceErrors,
    };
    ctx.log(
      `    SDK: 4th consumer assigned after ${fmt(result.firstAssignedMs)} ms, in force ${fmt(result.inForceMs)} ms; moved ${moved}; longest gap: unmoved ${fmt(unmovedMaxGapMs)} ms, moved ${fmt(movedMaxGapMs)} ms (before the join ${fmt(baselineMaxGapMs)} ms); ${redelivered} redelivered`,
    );
    return result;
  } finally {
    producing = false;
    await produceLoop;
    await withTimeout(producer.close(), 10_000, "closing the producer").catch(() => undefined);
    await Promise.all(
      consumers.map((c) => withTimeout(c.close(), 15_000, "closing a consumer").catch(() => undefined)),
    );
    await Promise.all(loops);
  }
}

interface SizeResult {
  members: number;
  partitions: number;
  /** The set-up: N members joined at once. */
  setup: SetupResult;
  steady: Steady;
  /** During the trials: heartbeats members sent through a follower, and how many the followers forwarded. */
  followerHeartbeats: number;
  forwardedHeartbeats: number;
  /** Forwarded during the quiet window (heartbeats that change nothing are answered where they land). */
  steadyForwarded: number;
  /** Mean GroupHeartbeat handling time during the trials (server side, forwarding included). */
  handlingMs: { leader: number; followers: number };
  /** CPU of the benchmark process (the members' side) during the trials, % of one core. */
  benchCpuPercent: number;
  trials: Trial[];
  /** Heartbeat round trips over the whole size (set-up, steady state, trials): p50 and max ms. */
  heartbeatRttMs: { p50: number; p99: number; max: number; count: number };
  memberErrors: string[];
}

async function runSize(
  ctx: BenchContext,
  cluster: TestCluster,
  keys: GroupKeysWatch,
  etcd: Etcd3,
  clients: SentinelClient[],
  leaderId: string,
  members: number,
  partitions: number,
): Promise<SizeResult> {
  const leaderClient = () => cluster.sentinels.get(leaderId)?.client ?? cluster.sentinel();
  const group = new Group(
    `bench-n${members}-p${partitions}`,
    `groups-${partitions}`,
    partitions,
    clients,
    leaderClient,
  );
  const trials: Trial[] = [];
  const departed: Member[] = [];
  try {
    const setup = await joinAtOnce(ctx, cluster, keys, group, leaderId, members);
    await sleep(500);
    const leaderIndex = cluster.sentinelUrls.indexOf(cluster.sentinels.get(leaderId)?.url ?? "");
    const viaFollowers = () =>
      [...group.members, ...departed]
        .filter((m) => m.sentinel !== leaderIndex)
        .reduce((n, m) => n + m.rtts.length, 0);
    const forwardedBefore = await forwardedHeartbeats(cluster);
    const steady = await steadyState(cluster, etcd, leaderId, group, ctx.quick ? 2_000 : 4_000);
    const steadyForwarded = (await forwardedHeartbeats(cluster)) - forwardedBefore;
    const [forwarded0, follower0] = [await forwardedHeartbeats(cluster), viaFollowers()];
    const handling0 = await heartbeatHandling(cluster);
    const [cpu0, wall0] = [process.cpuUsage(), performance.now()];
    const record = (t: Trial) => {
      trials.push(t);
      const crash =
        t.fromLastBeatMs !== undefined
          ? ` (${fmt(t.fromLastBeatMs)} ms after its last heartbeat, ${fmt(t.fromStopMs ?? Number.NaN)} ms after it stopped)`
          : "";
      ctx.log(
        `    N=${members} P=${partitions} ${t.kind}: in force ${fmt(t.inForceMs)} ms${crash}, moved ${t.moved}/${t.minimum}, ${t.stateWrites} state writes, unaffected paused ${t.unaffectedPaused}`,
      );
    };
    const settle = async () => {
      await sleep(100 + Math.random() * 200);
      await group.waitStable(5_000, "settled between trials");
    };
    const join = (sessionTimeoutMs: number) => {
      let joined: Member | undefined;
      const trial = measure(group, keys, "join", async () => {
        const t0 = performance.now();
        joined = await group.add(sessionTimeoutMs);
        return { t0, joined };
      });
      return trial.then((t) => ({ trial: t, joined: joined as Member }));
    };
    for (let rep = 0; rep < ctx.reps; rep++) {
      // Each repetition: N → N+1 (the joiner has the short session) → N (a leave) → N+1 → N (the crash
      // of the short-session member: it has its fair share, as any member).
      await settle();
      const first = await join(CRASH_SESSION_MS);
      record(first.trial);
      const victim = first.joined;
      await settle();
      record(
        await measure(group, keys, "leave", async () => {
          // A departure that moves nothing measures nothing: a random member owning partitions.
          const owning = group.members.filter((m) => m.partitions.size > 0 && m !== victim);
          const leaver = owning[Math.floor(Math.random() * owning.length)] as Member;
          departed.push(leaver);
          return { t0: await leaver.leave(), departed: leaver };
        }),
      );
      await settle();
      record((await join(SESSION_MS)).trial);
      await settle();
      // Stop at a random point of its heartbeat cycle, as a real crash would.
      await sleep(Math.random() * victim.intervalMs);
      record(
        await measure(group, keys, "crash", async () => {
          departed.push(victim);
          const t0 = await victim.crash();
          return { t0, departed: victim, lastBeat: victim.lastBeatAnswered };
        }),
      );
    }
    const cpu1 = process.cpuUsage(cpu0);
    const benchCpuPercent = (100 * (cpu1.user + cpu1.system)) / 1000 / (performance.now() - wall0);
    const handling = handlingMs(handling0, await heartbeatHandling(cluster), leaderId);
    const forwardedHeartbeatsDuringTrials = (await forwardedHeartbeats(cluster)) - forwarded0;
    const followerHeartbeats = viaFollowers() - follower0;
    const everyone = [...group.members, ...departed];
    const rtts = everyone.flatMap((m) => m.rtts).sort((a, b) => a - b);
    return {
      members,
      partitions,
      setup,
      steady,
      followerHeartbeats,
      forwardedHeartbeats: forwardedHeartbeatsDuringTrials,
      steadyForwarded,
      handlingMs: handling,
      benchCpuPercent,
      trials,
      heartbeatRttMs: {
        p50: quantile(rtts, 0.5),
        p99: quantile(rtts, 0.99),
        max: rtts[rtts.length - 1] ?? Number.NaN,
        count: rtts.length,
      },
      memberErrors: everyone.flatMap((m) => m.errors),
    };
  } finally {
    await group.close();
  }
}

/**
 * Warnings and errors the sentinels logged (JSON lines at warn or error, and anything else on their
 * output, such as Node's own warnings), counted by message with ids and numbers blanked out.
 */
class SentinelLog {
  readonly counts = new Map<string, number>();

  watch(cluster: TestCluster): void {
    for (const sentinel of cluster.sentinels.values()) {
      let rest = "";
      const onData = (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) this.#line(line.trim());
      };
      sentinel.process.stdout?.on("data", onData);
      sentinel.process.stderr?.on("data", onData);
    }
  }

  #line(line: string): void {
    if (line === "") return;
    let key: string | undefined;
    if (line.startsWith("{")) {
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string; err?: string };
        if (entry.level === "warn" || entry.level === "error") {
          key = `${entry.level}: ${entry.msg ?? ""}${entry.err ? ` (${entry.err.slice(0, 100)})` : ""}`;
        }
      } catch {
        key = line.slice(0, 120);
      }
    } else if (!line.startsWith("(Use `node --trace-warnings")) key = line.slice(0, 160);
    if (key === undefined) return;
    key = key.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>").replace(/\d+/g, "N");
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  summary(): string | undefined {
    if (this.counts.size === 0) return undefined;
    const top = [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, 6);
    return `the sentinels logged: ${top.map(([k, n]) => `${n}× ${k}`).join("; ")}`;
  }
}

/** The id of the sentinel that says it leads (a follower's GetClusterStatus names no leader id). */
async function currentLeader(cluster: TestCluster): Promise<string> {
  return waitFor(
    async () => {
      const statuses = await Promise.all(
        [...cluster.sentinels.values()].map((s) => s.client.getClusterStatus({}, { timeoutMs: 5_000 })),
      );
      const leading = statuses.filter((st) => st.leaderId !== "" && st.leaderId === st.sentinelId);
      return leading.length === 1 ? leading[0]?.leaderId : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: "one sentinel to lead" },
  );
}

/** Starts etcd, 3 sentinels and the brokers as processes (killed on exit) and creates the topics. */
async function startGroupsCluster(
  ctx: BenchContext,
  log: SentinelLog,
): Promise<{ cluster: TestCluster; leaderId: string }> {
  // The sentinels' default election TTL (the test clusters' 2 s makes a busy machine flap leaders).
  const cluster = await startCluster({
    sentinels: 3,
    brokers: BROKERS,
    sentinelArgs: ["--election-ttl", String(ELECTION_TTL_S)],
  });
  trackChild(cluster.etcd.process);
  log.watch(cluster);
  for (const s of cluster.sentinels.values()) trackChild(s.process);
  for (const b of cluster.brokers.values()) trackChild(b.process);
  try {
    const topics: [string, number][] = [
      ...PARTITIONS.map((p): [string, number] => [`groups-${p}`, p]),
      [SDK_TOPIC, SDK_PARTITIONS],
    ];
    for (const [topic, partitions] of topics) {
      ctx.log(`  topic ${topic}: ${partitions} partitions × 1 replica`);
      await withTimeout(cluster.createTopic(topic, { partitions, replicas: 1 }), 60_000, `creating ${topic}`);
    }
    return { cluster, leaderId: await currentLeader(cluster) };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

const ms = (v: number) => (Number.isFinite(v) ? fmt(v) : "—");

/** "p50 / max" of some values (counts: whole numbers). */
function p50max(values: number[], format: (v: number) => string = ms): string {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return "—";
  return `${format(quantile(sorted, 0.5))} / ${format(sorted[sorted.length - 1] as number)}`;
}

function tables(sizes: SizeResult[], sdk: SdkRun[], reps: number): Table[] {
  const setups = sizes.map((s) => s.setup);
  const latency: string[][] = [];
  const moves: string[][] = [];
  for (const kind of ["join", "leave", "crash"] as const) {
    for (const s of sizes) {
      const list = s.trials.filter((t) => t.kind === kind);
      const crash = kind === "crash";
      latency.push([
        kind,
        String(s.members),
        String(s.partitions),
        String(list.length),
        p50max(list.map((t) => t.inForceMs)),
        crash ? p50max(list.map((t) => t.fromLastBeatMs ?? Number.NaN)) : "—",
        crash ? p50max(list.map((t) => t.expiryAfterLastBeatMs ?? Number.NaN)) : "—",
        p50max(list.map((t) => t.lastStateWriteMs)),
        p50max(
          list.map((t) => t.stateWrites),
          (v) => String(v),
        ),
      ]);
      const hand = list.flatMap((t) => t.handOverMs);
      moves.push([
        kind,
        String(s.members),
        String(s.partitions),
        list.map((t) => t.moved).join(", "),
        list.map((t) => t.minimum).join(", "),
        `${list.filter((t) => t.moved === t.minimum).length}/${list.length}`,
        hand.length > 0 ? p50max(hand) : "—",
        `${list.reduce((n, t) => n + t.unaffectedPaused, 0)} (${ms(Math.max(0, ...list.map((t) => t.unaffectedPauseMs)))} ms)`,
        String(list.reduce((n, t) => n + t.overlaps, 0)),
        String(list.reduce((n, t) => n + t.lostSessions, 0)),
      ]);
    }
  }
  const steady = sizes.map((s) => [
    String(s.members),
    String(s.partitions),
    fmt(s.steady.heartbeatsPerSecond),
    `${fmt(s.steady.leader, 2)}% / ${s.steady.followers.map((f) => `${fmt(f, 2)}%`).join(", ")}`,
    `${fmt(s.steady.etcd, 2)}%`,
    ms(s.steady.etcdPutMs),
    `${s.steadyForwarded} / ${s.forwardedHeartbeats} of ${s.followerHeartbeats}`,
    `${ms(s.handlingMs.leader)} / ${ms(s.handlingMs.followers)}`,
    `${ms(s.heartbeatRttMs.p50)} / ${ms(s.heartbeatRttMs.p99)} / ${ms(s.heartbeatRttMs.max)}`,
    `${fmt(s.benchCpuPercent, 2)}%`,
  ]);
  const setupRows = setups.map((r) => [
    String(r.members),
    String(r.partitions),
    r.inForceSeconds === undefined ? `**not within ${r.deadlineSeconds} s**` : fmt(r.inForceSeconds),
    String(r.stateWrites),
    String(r.forwarded),
    String(r.heartbeats),
    String(r.heartbeatTimeouts),
    String(r.lostSessions),
    r.heartbeats > 0 ? ms(r.heartbeatRttMaxMs) : "—",
    // A window of a few tens of ms says nothing about CPU.
    (r.inForceSeconds ?? r.deadlineSeconds) >= 0.5 ? `${fmt(r.leaderCpuPercent, 2)}%` : "—",
  ]);
  const sdkRows = sdk.map((r, i) => [
    String(i + 1),
    ms(r.firstAssignedMs),
    ms(r.inForceMs),
    `${r.moved} (${r.minimum})`,
    ms(r.unmovedMaxGapMs),
    ms(r.movedMaxGapMs),
    ms(r.baselineMaxGapMs),
    String(r.redelivered),
    `${r.skipped}${r.produceErrors > 0 ? ` (${r.produceErrors} produce errors)` : ""}`,
  ]);

  const all = sizes.flatMap((s) => s.trials);
  const worst = (kind: Kind, pick: (t: Trial) => number) =>
    Math.max(...all.filter((t) => t.kind === kind).map(pick));
  const joinMax = worst("join", (t) => t.inForceMs);
  const leaveMax = worst("leave", (t) => t.inForceMs);
  const crashMax = worst("crash", (t) => t.fromLastBeatMs ?? Number.NaN);
  const atMinimum = all.filter((t) => t.moved === t.minimum).length;
  const extra = all.reduce((n, t) => n + Math.max(0, t.moved - t.minimum), 0);
  const paused = all.reduce((n, t) => n + t.unaffectedPaused, 0);
  const pauseMax = Math.max(0, ...all.map((t) => t.unaffectedPauseMs));
  const sdkUnmoved = Math.max(0, ...sdk.map((r) => r.unmovedMaxGapMs));
  const sdkBaseline = Math.max(0, ...sdk.map((r) => r.baselineMaxGapMs));
  const verdict = (ok: boolean) => (ok ? "met" : "**missed**");
  const goals: string[][] = [
    ["join: in force ≤ 1 s", `${ms(joinMax)} ms`, verdict(joinMax <= GOAL_JOIN_LEAVE_MS)],
    ["graceful leave: in force ≤ 1 s", `${ms(leaveMax)} ms`, verdict(leaveMax <= GOAL_JOIN_LEAVE_MS)],
    [
      `crash: in force ≤ session timeout + 1 s (${GOAL_CRASH_MS / 1000} s) after its last heartbeat`,
      `${ms(crashMax)} ms`,
      verdict(crashMax <= GOAL_CRASH_MS),
    ],
    [
      "moved = the minimum",
      `${atMinimum}/${all.length} trials; ${extra} partitions beyond the minimum`,
      verdict(atMinimum === all.length),
    ],
    [
      "unaffected partitions never paused (members' views)",
      `${paused} paused (longest ${ms(pauseMax)} ms)`,
      verdict(paused === 0),
    ],
  ];
  if (sdk.length > 0) {
    goals.push([
      "SDK: partitions that did not move keep flowing",
      `longest gap ${ms(sdkUnmoved)} ms vs ${ms(sdkBaseline)} ms before the join`,
      verdict(sdkUnmoved <= Math.max(2 * sdkBaseline, 250)),
    ]);
  }
  return [
    {
      title: "Rebalance latency: the event → the new assignment in force (raw members)",
      columns: [
        "event",
        "members N",
        "partitions",
        "trials",
        "in force ms: p50 / max",
        "crash: from its last heartbeat ms, p50 / max",
        "crash: last heartbeat → session expired ms, p50 / max",
        "last state write ms: p50 / max",
        "state writes: p50 / max",
      ],
      rows: latency,
      notes: [
        `each repetition: N → N+1 (join; the joiner's session is ${CRASH_SESSION_MS / 1000} s) → N (a random member owning partitions leaves) → N+1 (join) → N (the ${CRASH_SESSION_MS / 1000} s member crashes); ${reps} repetitions, so ${2 * reps} joins; the other members' session is the default ${SESSION_MS / 1000} s (heartbeat every ${fmt(SESSION_MS / 3)} ms)`,
        "in force: every partition in exactly one live member's own view (what its last push or heartbeat answer told it to consume), nothing pending anywhere, and the leader's DescribeGroup agrees; timed at the last change of any member's view (a member whose assignment does not change counts as informed at the event)",
        "measured from: join = the join sent; leave = the leave sent; crash = its session's expiry, i.e. the etcd delete of its member key as the benchmark's own etcd watch saw it; the crash lands at a random point of its heartbeat cycle (a heartbeat on the wire then still completes: the last heartbeat is its answer)",
        "members: raw GroupHeartbeat clients with a WatchGroupAssignment stream each, spread over the 3 sentinels; one told to stop consuming a partition reports it released at once (the SDK first stops it and commits)",
        "last state write: from the same moment to the last group-state write of the rebalance (the etcd watch); state writes: fenced transactions the leader wrote for it",
        "with N+1 > partitions (50 members, 12 partitions) the joiner gets nothing: its join and its crash move nothing (in force = the join answered; the crash: nothing to do at the expiry)",
      ],
    },
    {
      title: "Partitions moved vs the minimum, hand-over gap, pause of unaffected partitions",
      columns: [
        "event",
        "members N",
        "partitions",
        "moved per trial",
        "minimum per trial",
        "moved = minimum",
        "hand-over gap ms: p50 / max",
        "unaffected partitions paused (longest)",
        "in two views at once",
        "sessions lost",
      ],
      rows: moves,
      notes: [
        "minimum: a join moves floor(P/(N+1)) (uniform subscriptions); a leave or crash moves the departed member's partitions",
        "moved: partitions whose owner (by the members' views) differs before the event and once in force",
        "hand-over gap (moved partitions): out of the old owner's view (leave: the leave sent; crash: its session expired) → in the new owner's view",
        "unaffected: same owner before and after; paused = absent from that owner's view at any moment in between (0 by design)",
        "in two views at once: partitions two live members were told to consume at the same moment (0 by design: cooperative hand-over)",
        "sessions lost: members that kept heartbeating and were answered NOT_FOUND during the trial (they rejoin, as the SDK does)",
      ],
    },
    {
      title: "Steady state and heartbeats",
      columns: [
        "members",
        "partitions",
        "heartbeats/s",
        "CPU leader / followers",
        "etcd CPU",
        "etcd put ms",
        "forwarded: quiet / trials",
        "GroupHeartbeat handling ms: leader / followers",
        "heartbeat RTT ms: p50 / p99 / max",
        "benchmark process CPU",
      ],
      rows: steady,
      notes: [
        "CPU as % of one core during a quiet window (heartbeats only), from /proc; etcd put: p50 of 20 plain puts from the benchmark right after it (a renewal costs a lease grant and a transaction, a decision one more fenced transaction)",
        "forwarded: GroupHeartbeats the followers forwarded to the leader (goulette_sentinel_forwarded_total) in the quiet window, and during the trials out of the heartbeats members sent through a follower (joins and leaves are always forwarded)",
        "handling: mean server-side time of a GroupHeartbeat during the trials (goulette_rpc_duration_seconds; on a follower it includes forwarding); RTT: every heartbeat of the size's members, set-up and trials included; benchmark process: the members' side during the trials",
      ],
    },
    {
      title: "Set-up: N members joining at once (a deployment scaled from 0 to N)",
      columns: [
        "members",
        "partitions",
        "in force s",
        "state writes",
        "forwarded to the leader",
        "heartbeats",
        "heartbeat timeouts (5 s)",
        "sessions lost",
        "heartbeat RTT max ms",
        "leader CPU",
      ],
      rows: setupRows,
      notes: [
        `each size's group before its trials, session ${SESSION_MS / 1000} s; the N joins are sent at once, spread over the 3 sentinels; until in force (as above) or the deadline (the trials then wait for it to settle)`,
        "forwarded: GroupHeartbeats the followers forwarded to the leader until in force, the joins included (about 2 in 3 of them land on a follower); heartbeats: the members' heartbeats answered meanwhile (periodic ones and releases); a member answered NOT_FOUND (its session expired) rejoins at once, as the SDK does",
      ],
    },
    ...(sdk.length > 0
      ? [
          {
            title: `SDK: 3 Consumers on ${SDK_PARTITIONS} partitions under a steady produce rate, a 4th joins`,
            columns: [
              "run",
              "4th: created → first assigned ms",
              "created → every share in force ms",
              "moved (minimum)",
              "longest receipt gap, unmoved partitions ms",
              "longest receipt gap, moved partitions ms",
              "longest gap before the join ms",
              "redelivered",
              "skipped",
            ],
            rows: sdkRows,
            notes: [
              `new Consumer({ sentinels, topic, group }) (default 10 s session, auto-commit every 1 s), in the benchmark process over one HTTP/2 transport; a Producer sends one message to each partition every ${SDK_TICK_MS} ms (${(SDK_PARTITIONS * 1000) / SDK_TICK_MS} msg/s)`,
              "gap: the longest time between two receipts of one partition (by whichever consumer) from the 4th consumer's creation until 1–2 s after its share is in force; before the join: the same over the window just before (what this busy machine adds anyway)",
              "moved: the last receipt before the join and the last one at the end came from different consumers; redelivered: messages of a partition received twice (a new owner re-reading from the last commit); skipped: messages missing between the first and the last one received of a partition",
              "goal: met when the longest gap of the partitions that did not move is at most twice the longest gap before the join (or 250 ms): what the machine's scheduling adds anyway",
            ],
          },
        ]
      : []),
    {
      title: "Goals",
      columns: ["goal", "measured (worst case)", ""],
      rows: goals,
    },
  ];
}

/**
 * Consumer-group rebalances on a real cluster on loopback (etcd, 3 sentinels, brokers as processes):
 * join, graceful leave and crash of one member with 1, 10 and 50 members over 12 and 300 partitions.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  ctx.log(`  etcd, 3 sentinels, ${BROKERS} brokers`);
  const log = new SentinelLog();
  const { cluster, leaderId } = await startGroupsCluster(ctx, log);
  const keys = await GroupKeysWatch.start(cluster);
  const etcd = cluster.etcd.client();
  const clients = cluster.sentinelUrls.map((url) => sentinelClient(url));
  const transport = createNodeTransport();
  const sizes: SizeResult[] = [];
  const sdk: SdkRun[] = [];
  try {
    for (const partitions of PARTITIONS) {
      for (const members of SIZES) {
        ctx.log(`  N=${members} members, ${partitions} partitions, ${ctx.reps} repetitions`);
        sizes.push(await runSize(ctx, cluster, keys, etcd, clients, leaderId, members, partitions));
      }
    }
    const sdkRuns = ctx.quick ? 1 : 3;
    ctx.log(`  SDK: 3 consumers, a 4th joins (${sdkRuns} runs)`);
    for (let i = 0; i < sdkRuns; i++) {
      sdk.push(await sdkRun(ctx, cluster, transport, SDK_TOPIC, `bench-sdk-${i}`));
    }
    const notes: string[] = [];
    const finalLeader = await currentLeader(cluster);
    if (finalLeader !== leaderId) {
      notes.push(`the sentinel leader changed during the run (${leaderId} → ${finalLeader})`);
    }
    const logged = log.summary();
    if (logged !== undefined) notes.push(logged);
    const errors = new Map<string, number>();
    for (const e of sizes.flatMap((s) => s.memberErrors)) {
      const kind = e.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>").replace(/bench-n\d+-p\d+/g, "<group>");
      errors.set(kind, (errors.get(kind) ?? 0) + 1);
    }
    if (errors.size > 0) {
      const kinds = [...errors].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`);
      notes.push(`members' RPC errors: ${kinds.slice(0, 4).join("; ")}`);
    }
    return {
      tables: tables(sizes, sdk, ctx.reps),
      settings: {
        sentinels: 3,
        brokers: BROKERS,
        electionTtlSeconds: ELECTION_TTL_S,
        sessionTimeoutMs: SESSION_MS,
        crashSessionTimeoutMs: CRASH_SESSION_MS,
        sizes: SIZES,
        partitions: PARTITIONS,
        replicas: 1,
        reps: ctx.reps,
        leader: leaderId,
        sdk: { partitions: SDK_PARTITIONS, tickMs: SDK_TICK_MS, runs: sdkRuns },
      },
      data: { sizes, sdk, sentinelLog: Object.fromEntries(log.counts) },
      notes,
    };
  } finally {
    transport.close();
    await keys.stop();
    etcd.close();
    await cluster.stop();
  }
}

export const groupsBenchmark: Benchmark = {
  name: "groups",
  description:
    "Consumer-group rebalance: join, leave, crash with 1/10/50 members over 12/300 partitions (3 sentinel processes)",
  run,
};
