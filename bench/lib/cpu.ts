import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * CPU time from /proc (Linux), so a benchmark can say which side was saturated: the calling thread
 * (/proc/thread-self: the server's event loop, or the load worker's) or another process (etcd).
 * Resolution is one clock tick (10 ms at the usual 100 Hz): fine over runs of a second or more.
 */
let ticksPerSecond: number | undefined;

function msPerTick(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return 1000 / ticksPerSecond;
}

/** utime and stime of a /proc/<pid>/stat-style file, in ms; NaN for both when it cannot be read. */
function cpuSplitFromStat(file: string): { userMs: number; systemMs: number } {
  try {
    const text = readFileSync(file, "utf8");
    // Fields after the command name (which may contain spaces) start at ") ": utime is field 14, stime 15.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { userMs: Number(fields[11]) * msPerTick(), systemMs: Number(fields[12]) * msPerTick() };
  } catch {
    return { userMs: Number.NaN, systemMs: Number.NaN };
  }
}

function cpuFromStat(file: string): number {
  const { userMs, systemMs } = cpuSplitFromStat(file);
  return userMs + systemMs;
}

/** User and system CPU milliseconds used so far by a whole process (system: the kernel on its behalf). */
export function processCpuSplitMs(pid: number | undefined): { userMs: number; systemMs: number } {
  return pid === undefined
    ? { userMs: Number.NaN, systemMs: Number.NaN }
    : cpuSplitFromStat(`/proc/${pid}/stat`);
}

/** CPU milliseconds used so far by the calling thread. */
export function threadCpuMs(): number {
  return cpuFromStat("/proc/thread-self/stat");
}

/** CPU milliseconds used so far by a whole process (all its threads). */
export function processCpuMs(pid: number | undefined): number {
  return pid === undefined ? Number.NaN : cpuFromStat(`/proc/${pid}/stat`);
}

/** CPU milliseconds the whole machine spent busy so far (all cores; /proc/stat minus idle and iowait). */
export function machineBusyMs(): number {
  try {
    const fields =
      readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    // user nice system idle iowait irq softirq steal …
    const busy = fields.reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + (i < 8 ? v : 0)), 0);
    return busy * msPerTick();
  } catch {
    return Number.NaN;
  }
}

/** CPU milliseconds of this process plus its reaped children (etcd, sentinels, …) so far. */
export function ownTreeCpuMs(): number {
  try {
    const text = readFileSync("/proc/self/stat", "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * msPerTick();
  } catch {
    return Number.NaN;
  }
}
