import { setFlagsFromString } from "node:v8";

export interface V8Tuning {
  /** V8's allocation-site pretenuring (V8's default: on). */
  pretenuring: boolean;
}

/**
 * Runtime settings of V8 a server process applies at start-up, before its hot paths first run.
 *
 * Pretenuring: V8 allocates the objects of an allocation site straight into the old generation once most
 * of that site's objects were found alive by a young-generation GC, and keeps a site so for the process's
 * life whatever its objects do later (its own trace shows sites tenured while modules load). On follower
 * brokers under acks=all the old generation then filled with objects already dead and V8 ran three or
 * four full GCs a second, half their CPU; with pretenuring off they ran young GCs only and acks=all
 * produced ×1.5 at 1 KiB (docs/benchmarks.md, "Pretenuring off: the followers' full GCs").
 */
export function applyV8Tuning(tuning: V8Tuning): void {
  if (!tuning.pretenuring) setFlagsFromString("--no-allocation-site-pretenuring");
}
