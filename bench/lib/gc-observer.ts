/**
 * Loaded with `node --import` into a process under study: every 2 s it appends one JSON line to
 * `$GOULETTE_GC_REPORT_DIR/gc-<pid>.jsonl` with the GCs of those 2 s by kind and V8's flags (count, total
 * and longest pause) and the process's heap and external memory. Flags say why a full GC ran (32:
 * external memory; 64: finished from a task after incremental marking).
 */
import { appendFileSync } from "node:fs";
import path from "node:path";
import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

const dir = process.env.GOULETTE_GC_REPORT_DIR;
const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

interface GcTally {
  count: number;
  ms: number;
  maxMs: number;
}

if (dir !== undefined) {
  const file = path.join(dir, `gc-${process.pid}.jsonl`);
  let tallies = new Map<string, GcTally>();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & {
      detail?: { kind?: number; flags?: number };
    })[]) {
      const kind = KINDS[entry.detail?.kind ?? -1] ?? "other";
      const key = kind === "minor" ? kind : `${kind}:flags=${entry.detail?.flags ?? 0}`;
      const t = tallies.get(key) ?? { count: 0, ms: 0, maxMs: 0 };
      t.count++;
      t.ms += entry.duration;
      t.maxMs = Math.max(t.maxMs, entry.duration);
      tallies.set(key, t);
    }
  }).observe({ entryTypes: ["gc"] });
  setInterval(() => {
    const memory = process.memoryUsage();
    const line = {
      at: Date.now(),
      heapMiB: memory.heapUsed / 2 ** 20,
      externalMiB: memory.external / 2 ** 20,
      gc: Object.fromEntries(tallies),
      // Used / committed MiB of each V8 heap space: which one grows between full GCs.
      spaces: Object.fromEntries(
        getHeapSpaceStatistics().map((s) => [
          s.space_name,
          [+(s.space_used_size / 2 ** 20).toFixed(1), +(s.space_size / 2 ** 20).toFixed(1)],
        ]),
      ),
    };
    tallies = new Map();
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  }, 2_000).unref();
}
