import { setFlagsFromString } from "node:v8";

export interface V8Tuning {
  /** V8's allocation-site pretenuring (V8's default: on). */
  pretenuring: boolean;
}

/**
 * Runtime settings of V8 a server process applies at start-up, before its hot paths first run.
 *
 * Pretenuring: V8 allocates the objects of an allocation site straight into the old generation once most
 * of that site's objects were found alive by a young-generation GC. On a follower broker, whose young GCs
 * are rare, sites of objects that live only for one write got pretenured: the old generation filled with
 * dead objects and V8 ran three or four full GCs a second, half the follower's CPU under acks=all; with
 * pretenuring off only young GCs ran and acks=all produced ×1.7 (docs/benchmarks.md, "acks=all: what
 * the followers spend their time on").
 */
export function applyV8Tuning(tuning: V8Tuning): void {
  if (!tuning.pretenuring) setFlagsFromString("--no-allocation-site-pretenuring");
}
