import v8 from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * A full garbage collection on demand without starting node with --expose-gc (npm run bench runs plain
 * `node`): between repetitions, so one run's garbage is not collected during the next one's timing.
 */
let gcFn: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gcFn) {
    v8.setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  gcFn();
}
