import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { copyFile, cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchContext, Benchmark } from "./lib/benchmark.js";
import { machineBusyMs, ownTreeCpuMs } from "./lib/cpu.js";
import { machineInfo } from "./lib/machine.js";
import { renderTable } from "./lib/table.js";
import { appendBenchmark } from "./append.js";
import { crcBenchmark } from "./crc.js";
import { dataplaneBenchmark } from "./dataplane.js";
import { decodeBenchmark } from "./decode.js";
import { failoverBenchmark } from "./failover.js";
import { getBrokersBenchmark } from "./getbrokers.js";
import { groupsBenchmark } from "./groups.js";
import { leadersBenchmark } from "./leaders.js";
import { partitionsBenchmark } from "./partitions.js";
import { profileBenchmark } from "./profile.js";
import { recoveryBenchmark } from "./recovery.js";
import { ringBenchmark } from "./ring.js";
import { scalingBenchmark } from "./scaling.js";

/**
 * `npm run bench` runs every control-plane benchmark; `npm run bench -- <name>...` runs some.
 * Flags: --quick (fewer repetitions: a smoke run), --reps N (repetitions behind each median).
 * Each benchmark prints Markdown tables and writes bench/results/<name>.json.
 */
const BENCHMARKS: Benchmark[] = [
  getBrokersBenchmark,
  appendBenchmark,
  recoveryBenchmark,
  failoverBenchmark,
  scalingBenchmark,
  groupsBenchmark,
  leadersBenchmark,
  dataplaneBenchmark,
];
/** Run only when named: not part of the default set. */
const EXTRA: Benchmark[] = [
  profileBenchmark,
  partitionsBenchmark,
  crcBenchmark,
  decodeBenchmark,
  ringBenchmark,
];

/** Set in the re-executed run: the repository the frozen copy was taken from. */
const FROZEN_FROM = "GOULETTE_BENCH_FROZEN_FROM";
const REPO_ROOT =
  process.env[FROZEN_FROM] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const RESULTS_DIR = path.join(REPO_ROOT, "bench/results");

/**
 * Runs the benchmarks from a private copy of dist/: they start processes from compiled files (sentinels,
 * the stub broker, worker threads) for a quarter of an hour, and a rebuild of the shared dist/ meanwhile
 * (other work in the same tree) must not swap half of them for newer or half-written files.
 */
async function runFrozen(args: string[]): Promise<number> {
  const frozen = await mkdtemp(path.join(tmpdir(), "goulette-bench-"));
  try {
    await cp(path.join(REPO_ROOT, "dist"), path.join(frozen, "dist"), { recursive: true });
    await copyFile(path.join(REPO_ROOT, "package.json"), path.join(frozen, "package.json"));
    await symlink(path.join(REPO_ROOT, "node_modules"), path.join(frozen, "node_modules"));
    const child = spawn(process.execPath, [path.join(frozen, "dist/bench/run.js"), ...args], {
      stdio: "inherit",
      env: { ...process.env, [FROZEN_FROM]: REPO_ROOT },
    });
    // Before children.ts's own handlers (which exit at once): the copy cleans up its etcd and sentinels.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.prependListener("SIGINT", forward);
    process.prependListener("SIGTERM", forward);
    process.once("exit", () => rmSync(frozen, { recursive: true, force: true }));
    const code = await new Promise<number>((resolve) =>
      child.once("exit", (c, signal) => resolve(c ?? (signal ? 128 : 1))),
    );
    process.off("SIGINT", forward);
    process.off("SIGTERM", forward);
    return code;
  } finally {
    await rm(frozen, { recursive: true, force: true });
  }
}

/** 872 → "14 min 32 s". */
function minutes(seconds: number): string {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function usage(): string {
  const list = [...BENCHMARKS, ...EXTRA]
    .map((b) => `  ${b.name.padEnd(11)} ${b.description}${EXTRA.includes(b) ? " (only when named)" : ""}`)
    .join("\n");
  return `Usage: npm run bench [-- [--quick] [--reps N] [name...]]\n\nBenchmarks:\n${list}\n`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (process.env[FROZEN_FROM] === undefined && !args.includes("--help") && !args.includes("-h")) {
    return runFrozen(args);
  }
  let quick = false;
  let reps: number | undefined;
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--quick") quick = true;
    else if (arg === "--reps") reps = Number(args[++i]);
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write(usage());
      return 0;
    } else if (arg.startsWith("-")) {
      process.stderr.write(`unknown flag ${arg}\n\n${usage()}`);
      return 2;
    } else names.push(arg);
  }
  if (reps !== undefined && (!Number.isInteger(reps) || reps < 1)) {
    process.stderr.write(`--reps must be a positive integer, got ${String(reps)}\n`);
    return 2;
  }
  const all = [...BENCHMARKS, ...EXTRA];
  const unknown = names.filter((n) => !all.some((b) => b.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark ${unknown.join(", ")}\n\n${usage()}`);
    return 2;
  }
  const selected = names.length > 0 ? all.filter((b) => names.includes(b.name)) : BENCHMARKS;
  const ctx: BenchContext = {
    quick,
    reps: reps ?? (quick ? 3 : 5),
    log: (message) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`),
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const machine = machineInfo();
  ctx.log(
    `machine: ${machine.nproc} × ${machine.cpuModel}, node ${machine.node}, etcd ${machine.etcd}, load ${machine.loadAverage.join(" ")}`,
  );
  const failed: string[] = [];
  const timings: { name: string; seconds: number }[] = [];
  const begin = Date.now();
  for (const bench of selected) {
    ctx.log(`== ${bench.name}: ${bench.description}`);
    const started = new Date();
    const busyBefore = machineBusyMs();
    const ownBefore = ownTreeCpuMs();
    try {
      const output = await bench.run(ctx);
      const seconds = (Date.now() - started.getTime()) / 1000;
      timings.push({ name: bench.name, seconds });
      // The machine is shared: how much of it did other processes take meanwhile?
      // (clock-tick rounding makes it slightly negative on an idle machine)
      const othersPercent = Math.max(
        0,
        (100 * (machineBusyMs() - busyBefore - (ownTreeCpuMs() - ownBefore))) /
          (seconds * 1000 * machine.nproc),
      );
      output.notes.push(
        `while this ran, processes outside the benchmark used ${othersPercent.toFixed(0)}% of the machine's ${machine.nproc} cores (load average at the end: ${machineInfo().loadAverage.join(" ")})`,
      );
      process.stdout.write(`\n## ${bench.name}\n\n`);
      for (const table of output.tables) process.stdout.write(`${renderTable(table)}\n\n`);
      for (const note of output.notes) process.stdout.write(`> ${note}\n`);
      const file = path.join(RESULTS_DIR, `${bench.name}.json`);
      await writeFile(
        file,
        JSON.stringify(
          {
            name: bench.name,
            description: bench.description,
            startedAt: started.toISOString(),
            seconds,
            quick,
            reps: ctx.reps,
            machine: {
              ...machineInfo(),
              loadAverageAtStart: machine.loadAverage,
              othersCpuPercent: Math.round(othersPercent),
            },
            settings: output.settings,
            tables: output.tables,
            notes: output.notes,
            data: output.data,
          },
          null,
          2,
        ) + "\n",
      );
      ctx.log(`${bench.name} done in ${seconds.toFixed(1)} s → ${path.relative(process.cwd(), file)}`);
    } catch (err) {
      failed.push(bench.name);
      ctx.log(`${bench.name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  const total = (Date.now() - begin) / 1000;
  const perBenchmark = timings.map((t) => `${t.name} ${t.seconds.toFixed(0)} s`).join(", ");
  const summary = `total wall time ${minutes(total)} (${perBenchmark})${failed.length ? `; failed: ${failed.join(", ")}` : ""}`;
  process.stdout.write(`\n> ${summary}\n`);
  ctx.log(`all done: ${summary}`);
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = await main();
// Lingering sockets (etcd3 reconnect timers, HTTP/2 sessions) must not keep a finished run alive.
setTimeout(() => process.exit(), 500).unref();
