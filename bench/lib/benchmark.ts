import type { Table } from "./table.js";

/** What every benchmark gets from the runner. */
export interface BenchContext {
  /** --quick: fewer repetitions and trials, shorter load phases (a smoke run, not figures to publish). */
  quick: boolean;
  /** Repetitions behind every median (≥ 5 unless --quick). */
  reps: number;
  /** Progress line on stderr (stdout carries the tables). */
  log(message: string): void;
}

export interface BenchOutput {
  tables: Table[];
  /** Parameters of the run (sizes, durations, flags) so the JSON says what was measured. */
  settings: Record<string, unknown>;
  /** Raw measurements behind the tables: every run, not only medians. */
  data: unknown;
  /** Findings and caveats worth reading beside the tables. */
  notes: string[];
}

export interface Benchmark {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchOutput>;
}
