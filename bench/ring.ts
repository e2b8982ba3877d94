import { performance } from "node:perf_hooks";
import { createHashRing, DEFAULT_VIRTUAL_NODES } from "../src/ring/hash-ring.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { ratioSpread, spread } from "./lib/stats.js";
import { fmtSpread, type Table } from "./lib/table.js";

const SIZES = [10, 100, 300, 1000];

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `broker-${i}`);
}

/** Milliseconds of one call of `fn`. */
function timed(fn: () => unknown): number {
  const started = performance.now();
  fn();
  return performance.now() - started;
}

/**
 * The consistent-hash ring's cost as the broker count grows: a fresh build of n + 1 brokers (hash and
 * radix-sort every virtual node) against adding one broker to a ring of n (hash its virtual nodes, merge
 * them in linearly), alternating in one process. What the control plane pays on every registration.
 */
export const ringBenchmark: Benchmark = {
  name: "ring",
  description: "hash ring: fresh build vs adding one broker, 10–1,000 brokers × 150 virtual nodes (≈ 5 s)",
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const reps = ctx.quick ? 5 : Math.max(ctx.reps, 15);
    const rows: string[][] = [];
    const data: Record<string, { build: number[]; add: number[] }> = {};
    createHashRing({ brokers: ids(50) }).withBroker("warm-up"); // the JIT, before any timed call
    for (const n of SIZES) {
      const brokers = ids(n);
      const ring = createHashRing({ brokers });
      const runs = { build: [] as number[], add: [] as number[] };
      for (let r = 0; r < reps; r++) {
        runs.build.push(timed(() => createHashRing({ brokers: [...brokers, "broker-new"] })));
        runs.add.push(timed(() => ring.withBroker("broker-new")));
      }
      data[String(n)] = runs;
      rows.push([
        String(n),
        String(n * DEFAULT_VIRTUAL_NODES),
        fmtSpread(spread(runs.build), 3, " ms"),
        fmtSpread(spread(runs.add), 3, " ms"),
        fmtSpread(ratioSpread(runs.build, runs.add), 3, "×"),
      ]);
      ctx.log(`ring ${n} brokers done`);
    }
    const tables: Table[] = [
      {
        title: "Hash ring with one more broker, median (min–max) of alternating samples in one process",
        columns: ["brokers", "virtual nodes", "fresh build", "withBroker", "build / withBroker"],
        rows,
      },
    ];
    return {
      tables,
      settings: { sizes: SIZES, reps, virtualNodes: DEFAULT_VIRTUAL_NODES },
      data,
      notes: ["both grow linearly with the ring: a time that grows faster between sizes is a regression"],
    };
  },
};
