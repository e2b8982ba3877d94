import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { trackChild } from "./lib/children.js";
import { summariseProfile, type CpuProfile, type FrameTime, type ProfileSummary } from "./lib/cpu-profile.js";
import type { LoadResult } from "./lib/load.js";
import { fmt, type Table } from "./lib/table.js";

const TARGET = path.join(path.dirname(fileURLToPath(import.meta.url)), "profile-target.js");

/**
 * CPU profile of the GetBrokers hot path: profile-target.js under `node --cpu-prof` (an in-process
 * sentinel at 64 requests in flight), then the main thread's profile ranked by self time, by area
 * (package) and by inclusive time of goulette's own functions. The raw .cpuprofile (tens of MB) is
 * written to a temporary directory and removed once summarised.
 */
interface Profiled {
  load: LoadResult;
  summary: ProfileSummary;
}

/** Runs profile-target.js in `mode` under --cpu-prof and summarises its main thread's measured window. */
async function profileTarget(mode: "read" | "append", durationMs: number): Promise<Profiled> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-cpu-prof-"));
  try {
    const child = spawn(
      process.execPath,
      ["--cpu-prof", `--cpu-prof-dir=${dir}`, TARGET, mode, String(durationMs)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    trackChild(child);
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`profile target (${mode}) exited with ${code}`);
    const { result: load, window } = JSON.parse(out.trim().split("\n").pop() ?? "{}") as {
      result: LoadResult;
      window: { startUs: number; endUs: number };
    };
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread (the sentinel).
    const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
    const main = files.find((f) => f.split(".")[4] === "0");
    if (!main) throw new Error(`no main-thread profile among ${files.join(", ")}`);
    const profile = JSON.parse(await readFile(path.join(dir, main), "utf8")) as CpuProfile;
    return { load, summary: summariseProfile(profile, window) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function tablesOf(what: string, unit: string, durationMs: number, p: Profiled): Table[] {
  const { load, summary } = p;
  const busy = summary.totalMs - summary.idleMs;
  const rows = (frames: FrameTime[]) =>
    frames.map((f) => [f.frame, f.area, fmt(f.ms), `${fmt(f.percent, 2)}%`]);
  return [
    {
      title: `${what}: where the sentinel's main thread spends CPU, by area`,
      columns: ["area", "ms", "% of busy"],
      rows: summary.byArea.slice(0, 12).map((f) => [f.frame, fmt(f.ms), `${fmt(f.percent, 2)}%`]),
      notes: [
        `${fmt(durationMs / 1000)} s measured after a warm-up: ${fmt(load.rps)} ${unit}/s, ${load.requests} ${unit}s; main thread busy ${fmt(busy)} ms of ${fmt(summary.totalMs)} ms (${fmt((100 * busy) / summary.totalMs, 2)}%), i.e. ${fmt((busy * 1000) / Math.max(1, load.requests))} µs of main-thread CPU per ${unit}`,
        "only samples taken during the measured phase count (start-up, registration and warm-up are left out)",
      ],
    },
    {
      title: `${what}: top frames by self time`,
      columns: ["frame", "area", "ms", "% of busy"],
      rows: rows(summary.self),
    },
    {
      title: `${what}: goulette's own functions by inclusive time`,
      columns: ["frame", "area", "ms", "% of busy"],
      rows: rows(summary.inclusive),
    },
  ];
}

/**
 * CPU profiles (node --cpu-prof) of the sentinel's two hot paths: GetBrokers reads at 64 in flight, and
 * sequential appends (ControlPlane.propose on the sentinel, role notifications included).
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  const readMs = ctx.quick ? 3_000 : 8_000;
  const appendMs = ctx.quick ? 2_000 : 5_000;
  const read = await profileTarget("read", readMs);
  ctx.log(`  read: ${fmt(read.load.rps)} req/s while profiling`);
  const append = await profileTarget("append", appendMs);
  ctx.log(`  append: ${fmt(append.load.rps)} ops/s while profiling`);
  return {
    tables: [
      ...tablesOf("GetBrokers (64 in flight)", "request", readMs, read),
      ...tablesOf("Append (ControlPlane.propose on the sentinel)", "append", appendMs, append),
    ],
    settings: { readMs, appendMs, readConcurrency: 64 },
    data: { read, append },
    notes: [],
  };
}

export const profileBenchmark: Benchmark = {
  name: "profile",
  description: "CPU profiles (node --cpu-prof) of the GetBrokers and append hot paths, top frames",
  run,
};
