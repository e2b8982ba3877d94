import type { NemesisRun } from "./nemesis.js";

/** The results tables of nemesis runs (markdown), as docs/reliability.md shows them. */

const seconds = (ms: number | undefined) => (ms === undefined ? "—" : (ms / 1000).toFixed(1));

function table(head: string[], rows: string[][]): string {
  const lines = [head, ...rows].map((cells) => `| ${cells.join(" | ")} |`);
  lines.splice(1, 0, `|${head.map(() => "---").join("|")}|`);
  return lines.join("\n");
}

/** One row per run: what was acknowledged and what the checker found. */
export function formatRuns(runs: readonly NemesisRun[]): string {
  return table(
    [
      "seed",
      "faults",
      "fault time (s)",
      "acked",
      "indeterminate",
      "lost",
      "dup: non-idempotent retry",
      "dup: other",
      "redelivered",
      "phantom",
      "reordered",
      "2 leaders / epoch",
      "sentinels converged",
    ],
    runs.map((r) => [
      String(r.seed),
      String(r.history.faults.length),
      seconds(r.durationMs),
      String(r.result.acknowledged),
      String(r.result.indeterminate),
      String(r.result.lost.length + r.result.offsetConflicts.length),
      String(r.result.duplicates.retry),
      String(r.result.duplicates.other),
      String(r.result.redeliveries),
      String(r.result.phantoms.length),
      String(r.result.orderViolations.length),
      String(r.result.leaderConflicts.length),
      r.sentinelsConverged ? `yes (${r.sentinelState})` : "NO",
    ]),
  );
}

/** One row per fault kind over all runs: how often, and how long produce took to serve on every partition after the heal. */
export function formatFaults(runs: readonly NemesisRun[]): string {
  const byKind = new Map<string, { count: number; recoveries: number[]; unrecovered: number }>();
  for (const run of runs) {
    run.history.faults.forEach((f, i) => {
      const entry = byKind.get(f.kind) ?? { count: 0, recoveries: [], unrecovered: 0 };
      entry.count++;
      const r = run.result.recoveryMs[i];
      if (r === undefined) entry.unrecovered++;
      else entry.recoveries.push(r);
      byKind.set(f.kind, entry);
    });
  }
  const rows = [...byKind]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, e]) => {
      const sorted = [...e.recoveries].sort((x, y) => x - y);
      const median = sorted.length === 0 ? undefined : sorted[Math.floor(sorted.length / 2)];
      const max = sorted.length === 0 ? undefined : sorted[sorted.length - 1];
      return [kind, String(e.count), seconds(median), seconds(max), String(e.unrecovered)];
    });
  return table(
    [
      "fault",
      "injected",
      "produce back on every partition after heal, median (s)",
      "max (s)",
      "no ack after heal before the run ended",
    ],
    rows,
  );
}

/** Every fault of a run in order, for reproducing or reading a finding. */
export function formatSchedule(run: NemesisRun): string {
  const t0 = run.history.faults[0]?.startAt ?? 0;
  return run.history.faults
    .map(
      (f, i) =>
        `  ${seconds(f.startAt - t0).padStart(6)} s  ${f.kind} ${f.target}${f.detail ? ` (${f.detail})` : ""}` +
        `, healed after ${seconds(f.healAt === undefined ? undefined : f.healAt - f.startAt)} s` +
        `, produce back ${seconds(run.result.recoveryMs[i])} s later`,
    )
    .join("\n");
}
