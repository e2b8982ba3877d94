/**
 * Probe: where does the end-to-end latency tail come from? (an experiment, not in the default set)
 *
 * One Goulette cluster (1 sentinel, 3 brokers; an RF 1 topic written with acks=leader and an RF 3 topic
 * with acks=all) and one NATS JetStream server, measured in turns (rotating order) so the machine's load
 * hits them alike: 1 KiB, one message every 2 ms, produce stamp → consumer receipt. Beside each run: the
 * benchmark process's event-loop delay, and the leader broker's GC time and its produce latency by stage
 * (the append, the wait for the replicas; p50/p99 from /metrics), its event loop's delay, and how long
 * the server and the benchmark process ran and waited for a CPU (the kernel's scheduler statistics).
 * SYSTEMS picks among leader, leader-connect (acks=leader through connect-node's stream client instead
 * of the SDK's lean one), all and nats (default leader,all,nats).
 *
 * The cluster runs on a deployed cluster's liveness timings (CLUSTER_TIMINGS=test: the test helper's).
 *
 *   node dist/bench/tail-probe.js        REPS=5 DURATION_MS=2000 FSYNC=interval BROKER_ARGS="…" NODE_ARGS="…"
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { loadavg } from "node:os";
import { Acks } from "../src/gen/goulette/v1/broker_pb.js";
import { startCluster } from "../test/helpers/cluster.js";
import { DEPLOYED_BROKER_ARGS, DEPLOYED_SENTINEL_ARGS } from "./lib/deployed-timings.js";
import { createGouletteTarget } from "./dataplane-goulette.js";
import { createNatsTarget } from "./dataplane-peers.js";
import type { QueueTarget } from "./dataplane-target.js";
import { monotonicUs } from "./lib/cpu-profile.js";
import { startNats } from "./lib/peers.js";
import { summariseLatencies } from "./lib/stats.js";
import { bucketQuantile, histogramBuckets, type Buckets } from "./lib/histogram.js";
import { readdirSync, readFileSync } from "node:fs";

/** CPU ms (utime + stime) of every live descendant of this process, by command name. */
function descendantsCpu(): Map<string, number> {
  const procs: Array<{ pid: number; ppid: number; comm: string; ms: number }> = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const text = readFileSync(`/proc/${d}/stat`, "utf8");
      const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
      const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
      procs.push({ pid: Number(d), ppid: Number(f[1]), comm, ms: (Number(f[11]) + Number(f[12])) * 10 });
    } catch {
      // exited meanwhile
    }
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (mine.has(p.pid) || !mine.has(p.ppid)) continue;
      mine.add(p.pid);
      grew = true;
    }
  }
  const out = new Map<string, number>();
  for (const p of procs) if (mine.has(p.pid)) out.set(`${p.comm}:${p.pid}`, p.ms);
  return out;
}

function cpuDelta(a: Map<string, number>, b: Map<string, number>): string {
  return [...b]
    .map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k.split(":")[0]}:${v}`)
    .join(" ");
}

/**
 * Time a process spent on a CPU and waiting for one (ms), from the kernel's scheduler statistics
 * (/proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns runnable but waiting): the main thread only (a
 * Node process's event loop), or every thread (a Go server's work runs on any of them).
 */
function schedTimes(pid: number, allThreads: boolean): { runMs: number; waitMs: number } {
  const tids = allThreads ? readdirSync(`/proc/${pid}/task`) : [String(pid)];
  let runMs = 0;
  let waitMs = 0;
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ");
      runMs += Number(run) / 1e6;
      waitMs += Number(wait) / 1e6;
    } catch {
      // the thread ended meanwhile
    }
  }
  return { runMs, waitMs };
}

function schedDelta(
  before: { runMs: number; waitMs: number },
  after: { runMs: number; waitMs: number },
): string {
  return `ran ${(after.runMs - before.runMs).toFixed(0)} ms, waited ${(after.waitMs - before.waitMs).toFixed(0)} ms`;
}

/** prom-client's event-loop monitor resolution (its default), in ms. */
const LOOP_RESOLUTION_MS = 10;

/** The leader's GC pauses, seconds summed (prom-client's default metrics). */
const GC_SECONDS = "nodejs_gc_duration_seconds_sum";

/** What the leader's /metrics says before and after a run: GC time and the produce stages' buckets. */
interface LeaderReading {
  gcSeconds: number;
  /** Its event loop's delay since the previous scrape (prom-client resets it on every scrape), ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  append: Buckets;
  replicate: Buckets;
}

async function readLeader(url: string): Promise<LeaderReading> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let gcSeconds = 0;
  let loopP99Ms = 0;
  let loopMaxMs = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(GC_SECONDS)) gcSeconds += Number(line.split(" ").pop());
    // prom-client samples the delay of a 10 ms timer: what exceeds 10 ms is the loop's delay.
    const delayMs = () => Math.max(0, Number(line.split(" ").pop()) * 1000 - LOOP_RESOLUTION_MS);
    if (/^nodejs_eventloop_lag_p99_seconds[{ ]/.test(line)) loopP99Ms = delayMs();
    if (/^nodejs_eventloop_lag_max_seconds[{ ]/.test(line)) loopMaxMs = delayMs();
  }
  const stage = (name: string) =>
    histogramBuckets(text, "goulette_broker_produce_stage_seconds", { stage: name });
  return { gcSeconds, loopP99Ms, loopMaxMs, append: stage("append"), replicate: stage("replicate") };
}

/** "append p50/p99 a/b ms, replicate …" of the produces between two readings (replicate: acks=all only). */
function describeStages(before: LeaderReading, after: LeaderReading): string {
  const ms = (v: number | undefined) => (v === undefined ? "–" : (v * 1000).toFixed(2));
  return (["append", "replicate"] as const)
    .map((s) => {
      const p50 = bucketQuantile(before[s], after[s], 0.5);
      const p99 = bucketQuantile(before[s], after[s], 0.99);
      return p50 === undefined ? "" : `${s} p50/p99 ${ms(p50)}/${ms(p99)} ms`;
    })
    .filter((text) => text !== "")
    .join(", ");
}

async function main(): Promise<void> {
  const fsync = process.env.FSYNC ?? "interval";
  const durationMs = Number(process.env.DURATION_MS ?? 2000);
  const reps = Number(process.env.REPS ?? 5);
  const only = process.env.SYSTEMS?.split(",") ?? ["leader", "all", "nats"];
  // CLUSTER_TIMINGS=test runs the cluster on the test helper's fast liveness timings instead.
  const deployed = process.env.CLUSTER_TIMINGS !== "test";
  const cluster = await startCluster({
    sentinels: 1,
    brokers: 3,
    readyTimeoutMs: 90_000,
    ...(deployed ? { sentinelArgs: [...DEPLOYED_SENTINEL_ARGS] } : {}),
    brokerArgs: [
      ...(deployed ? DEPLOYED_BROKER_ARGS : []),
      "--fsync",
      fsync,
      "--fsync-interval",
      "1000",
      ...(process.env.BROKER_ARGS?.split(" ") ?? []),
    ],
    ...(process.env.NODE_ARGS ? { nodeArgs: process.env.NODE_ARGS.split(" ") } : {}),
  });
  const nats = only.includes("nats") ? await startNats() : undefined;
  /** The server process behind each target: its pid, and whether its work runs on every thread. */
  const targets: Array<{
    name: string;
    target: QueueTarget;
    url?: string;
    server?: { pid: number; allThreads: boolean };
  }> = [];
  try {
    const rf1 = await cluster.createTopic("t1", { partitions: 1, replicas: 1 });
    const rf3 = await cluster.createTopic("t3", { partitions: 1, replicas: 3 });
    for (const [name, layout, acks, leanStreams] of [
      ["leader", rf1, Acks.LEADER, true],
      // The same with connect-node's stream client in place of the SDK's lean one (side by side).
      ["leader-connect", rf1, Acks.LEADER, false],
      ["all", rf3, Acks.ALL, true],
    ] as const) {
      if (!only.includes(name)) continue;
      const leaderId = layout.partitions[0]?.leader as string;
      const pid = cluster.broker(leaderId).process.pid;
      targets.push({
        name,
        url: cluster.broker(leaderId).url,
        ...(pid === undefined ? {} : { server: { pid, allThreads: false } }),
        target: createGouletteTarget({
          label: name,
          leaderAddress: cluster.brokerAddress(leaderId),
          topic: layout === rf1 ? "t1" : "t3",
          acks,
          leanStreams,
        }),
      });
    }
    if (nats)
      targets.push({
        name: "nats",
        target: await createNatsTarget({ label: "nats", port: nats.port, stream: "probe" }),
        ...(nats.process.pid === undefined ? {} : { server: { pid: nats.process.pid, allThreads: true } }),
      });
    // Warm-up: one short run each (JIT, connections, first segment).
    for (const t of targets) await t.target.latency(1024, 2, 300);
    const rows: Record<string, { p50: number[]; p99: number[]; clientUs: number[] }> = {};
    const windowStartUs = monotonicUs();
    for (let r = 0; r < reps; r++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length] as (typeof targets)[number];
        const h = monitorEventLoopDelay({ resolution: 1 });
        const before = t.url ? await readLeader(t.url) : undefined;
        const cpu0 = descendantsCpu();
        const server0 = t.server && schedTimes(t.server.pid, t.server.allThreads);
        const bench0 = schedTimes(process.pid, false);
        const self0 = process.cpuUsage();
        h.enable();
        const samples = await t.target.latency(1024, 2, durationMs);
        h.disable();
        const self = process.cpuUsage(self0);
        const cpu = cpuDelta(cpu0, descendantsCpu());
        const sched =
          `server ${t.server && server0 ? schedDelta(server0, schedTimes(t.server.pid, t.server.allThreads)) : "–"}; ` +
          `bench ${schedDelta(bench0, schedTimes(process.pid, false))}`;
        const after = t.url ? await readLeader(t.url) : undefined;
        const gc = before && after ? after.gcSeconds - before.gcSeconds : 0;
        const stages = before && after ? ` | broker ${describeStages(before, after)}` : "";
        const s = summariseLatencies(samples);
        // The benchmark process is the producer and the consumer: its CPU per message is the clients'.
        const clientUs = (self.user + self.system) / Math.max(1, s.count);
        const row = (rows[t.name] ??= { p50: [], p99: [], clientUs: [] });
        row.p50.push(s.p50Ms);
        row.p99.push(s.p99Ms);
        row.clientUs.push(clientUs);
        const sorted = [...samples].sort((a, b) => a - b);
        console.log(
          `rep ${r} ${t.name.padEnd(6)} n ${s.count} p50 ${s.p50Ms.toFixed(2)} p90 ${s.p90Ms.toFixed(2)} p99 ${s.p99Ms.toFixed(2)} max ${s.maxMs.toFixed(1)} ` +
            `>5ms ${sorted.filter((v) => v > 5).length} | bench loop p99 ${(h.percentile(99) / 1e6).toFixed(1)} max ${(h.max / 1e6).toFixed(1)} | broker gc ${(gc * 1000).toFixed(0)} ms loop p99 ${after?.loopP99Ms.toFixed(1) ?? "–"} max ${after?.loopMaxMs.toFixed(1) ?? "–"} | ${sched} | load ${loadavg()[0]?.toFixed(1)} | client µs/msg ${clientUs.toFixed(0)}${stages} | cpu ms ${cpu}`,
        );
      }
    }
    console.log(`profile window (monotonic µs): ${windowStartUs} ${monotonicUs()}`);
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
    for (const [name, row] of Object.entries(rows)) {
      console.log(
        `${name.padEnd(6)} median p50 ${med(row.p50).toFixed(2)} ms, median p99 ${med(row.p99).toFixed(2)} ms, ` +
          `median client CPU ${med(row.clientUs).toFixed(0)} µs/msg`,
      );
    }
    for (const t of targets) await t.target.close().catch(() => undefined);
    // With NODE_ARGS="--cpu-prof …": a graceful stop, so V8 writes each broker's profile.
    if (process.env.NODE_ARGS?.includes("--cpu-prof")) {
      for (const b of cluster.brokers.values()) await b.kill("SIGTERM");
    }
  } finally {
    for (const t of targets) await t.target.close().catch(() => undefined);
    await nats?.stop();
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
