/**
 * Probe: what do the brokers of a replicated partition spend their time on? (an experiment, not in the
 * default set)
 *
 * One cluster (1 sentinel, 3 brokers), one partition of RF 3 written by the dataplane benchmark's producer
 * (acks=all unless ACKS=leader) for DURATION_MS after a 3 s warm-up. Every broker runs under `--cpu-prof`
 * and the GC observer (lib/gc-observer.ts); the brokers are stopped with SIGTERM so their profiles are
 * written, and each one's samples of the measured window are ranked: busy time, GC share, the top frames,
 * and its GCs by kind and V8's flags. BUFFERS=1 also loads the buffer observer (lib/buffer-observer.ts)
 * and lists, per broker, who allocated the most bytes of large Buffers over the window (the memory
 * outside the JS heap that starts V8's full GCs).
 *
 *   node dist/bench/replication-probe.js        ACKS=all SIZE=1024 DURATION_MS=8000 FSYNC=interval BUFFERS=1
 *
 * GOULETTE_BENCH_NODE_ARGS adds node flags to every process of the cluster (lib/node-args.ts); KEEP=1
 * keeps the profiles and the observers' reports (whose GC lines also give each V8 heap space's size).
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Acks } from "../src/gen/goulette/v1/broker_pb.js";
import { startCluster } from "../test/helpers/cluster.js";
import { createGouletteTarget } from "./dataplane-goulette.js";
import { benchNodeArgs } from "./lib/node-args.js";
import { monotonicUs, profilePid, summariseProfile, type CpuProfile } from "./lib/cpu-profile.js";

const ACKS = process.env.ACKS === "leader" ? Acks.LEADER : Acks.ALL;
const SIZE = Number(process.env.SIZE ?? 1024);
const DURATION_MS = Number(process.env.DURATION_MS ?? 8_000);
const FSYNC = process.env.FSYNC === "always" ? "always" : "interval";
const BUFFERS = process.env.BUFFERS === "1";
const LIB = path.join(path.dirname(fileURLToPath(import.meta.url)), "lib");
const GC_OBSERVER = path.join(LIB, "gc-observer.js");
const BUFFER_OBSERVER = path.join(LIB, "buffer-observer.js");

interface GcLine {
  at: number;
  gc: Record<string, { count: number; ms: number; maxMs: number }>;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-replication-probe-"));
  process.env.GOULETTE_GC_REPORT_DIR = dir;
  if (BUFFERS) process.env.GOULETTE_BUFFER_REPORT_DIR = dir;
  const cluster = await startCluster({
    sentinels: 1,
    brokers: 3,
    readyTimeoutMs: 90_000,
    brokerArgs: ["--fsync", FSYNC],
    nodeArgs: [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      "--import",
      GC_OBSERVER,
      ...(BUFFERS ? ["--import", BUFFER_OBSERVER] : []),
      ...benchNodeArgs(),
    ],
  });
  const pids = new Map<number, string>();
  let leader = "";
  let windowUs = { startUs: 0, endUs: 0 };
  let windowMs = { start: 0, end: 0 };
  try {
    const layout = await cluster.createTopic("probe-rf3", { partitions: 1, replicas: 3 });
    leader = layout.partitions[0]?.leader ?? "";
    const target = createGouletteTarget({
      label: "probe",
      leaderAddress: cluster.brokerAddress(leader),
      topic: "probe-rf3",
      acks: ACKS,
      compression: false,
    });
    await target.produce(SIZE, 1_000_000, 3_000);
    windowMs = { start: Date.now(), end: 0 };
    const startUs = monotonicUs();
    const result = await target.produce(SIZE, 10_000_000, DURATION_MS);
    windowUs = { startUs, endUs: monotonicUs() };
    windowMs.end = Date.now();
    console.log(
      `${ACKS === Acks.ALL ? "acks=all" : "acks=leader"} RF 3, ${SIZE} B, --fsync ${FSYNC}: ` +
        `${Math.round(result.messages / result.seconds).toLocaleString("en-US")} msg/s over ${result.seconds.toFixed(1)} s`,
    );
    await target.close();
    for (const id of [...cluster.brokers.keys()]) pids.set(cluster.broker(id).process.pid as number, id);
    for (const id of pids.values()) await cluster.killBroker(id, "SIGTERM");
  } finally {
    await cluster.stop();
  }
  const files = await readdir(dir);
  for (const [pid, id] of pids) {
    const profileFile = files.find((f) => f.endsWith(".cpuprofile") && profilePid(f) === pid);
    const role = id === leader ? "leader" : "follower";
    if (profileFile === undefined) {
      console.log(`\n${id} (${role}): no profile written`);
      continue;
    }
    const profile = JSON.parse(await readFile(path.join(dir, profileFile), "utf8")) as CpuProfile;
    const summary = summariseProfile(profile, windowUs, 12);
    const busy = summary.totalMs - summary.idleMs;
    const gcMs = summary.self.find((f) => f.frame === "(garbage collector)")?.ms ?? 0;
    console.log(
      `\n${id} (${role}): busy ${busy.toFixed(0)} of ${summary.totalMs.toFixed(0)} ms, ` +
        `garbage collector ${((100 * gcMs) / Math.max(1, busy)).toFixed(0)} % of busy`,
    );
    for (const f of summary.self.slice(0, 12)) {
      console.log(
        `  ${f.ms.toFixed(0).padStart(6)} ms  ${((100 * f.ms) / Math.max(1, busy)).toFixed(1).padStart(5)} %  ${f.frame}`,
      );
    }
    const lines = await reportLines<GcLine>(path.join(dir, `gc-${pid}.jsonl`), windowMs, 2_000);
    const totals = new Map<string, { count: number; ms: number; maxMs: number }>();
    for (const line of lines) {
      for (const [kind, t] of Object.entries(line.gc)) {
        const sum = totals.get(kind) ?? { count: 0, ms: 0, maxMs: 0 };
        sum.count += t.count;
        sum.ms += t.ms;
        sum.maxMs = Math.max(sum.maxMs, t.maxMs);
        totals.set(kind, sum);
      }
    }
    const gcText = [...totals]
      .map(([k, t]) => `${k} ${t.count} × (${t.ms.toFixed(0)} ms, longest ${t.maxMs.toFixed(1)})`)
      .join("; ");
    console.log(`  GCs over the window: ${gcText || "none"}`);
    if (BUFFERS) await printBufferSites(path.join(dir, `buffers-${pid}.jsonl`), windowMs, windowUs);
  }
  if (process.env.KEEP !== "1") await rm(dir, { recursive: true, force: true });
  else console.log(`reports kept in ${dir}`);
}

/** An observer's JSON lines (one per `periodMs`, stamped at its end) whose period overlaps the window. */
async function reportLines<T extends { at: number }>(
  file: string,
  windowMs: { start: number; end: number },
  periodMs: number,
): Promise<T[]> {
  return (await readFile(file, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T)
    .filter((l) => l.at > windowMs.start && l.at <= windowMs.end + periodMs);
}

/** The buffer observer's sites over the window, summed: MB per second and allocations, largest first. */
async function printBufferSites(
  file: string,
  windowMs: { start: number; end: number },
  windowUs: { startUs: number; endUs: number },
): Promise<void> {
  const totals = new Map<string, { count: number; bytes: number }>();
  const lines = await reportLines<{ at: number; sites: Record<string, { count: number; bytes: number }> }>(
    file,
    windowMs,
    4_000,
  );
  for (const line of lines) {
    for (const [site, s] of Object.entries(line.sites)) {
      const sum = totals.get(site) ?? { count: 0, bytes: 0 };
      sum.count += s.count;
      sum.bytes += s.bytes;
      totals.set(site, sum);
    }
  }
  // The observer's periods overlap the window's edges: rates are over the periods read.
  const seconds = Math.max(1, lines.length * 4, (windowUs.endUs - windowUs.startUs) / 1e6);
  console.log("  large Buffers allocated (MB/s, count), by site:");
  for (const [site, s] of [...totals].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 6)) {
    console.log(
      `    ${(s.bytes / 1e6 / seconds).toFixed(1).padStart(6)} MB/s ${String(s.count).padStart(6)} × ${site}`,
    );
  }
}

await main();
