import v8 from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Preloaded (`node --import`) into a sentinel process the scaling benchmark starts: on the IPC message
 * "memory" it runs a full GC and answers with process.memoryUsage(), so the benchmark reads RSS and the
 * heap the sentinel really holds, without any change to the sentinel itself.
 */
v8.setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

if (process.send) {
  process.on("message", (message: unknown) => {
    if (message !== "memory") return;
    gc();
    gc();
    process.send?.({ memory: process.memoryUsage() });
  });
  // The IPC channel must not keep a sentinel alive that was asked to stop.
  process.channel?.unref();
}
