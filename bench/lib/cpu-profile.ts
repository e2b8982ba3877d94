/** Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self and inclusive time. */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock, µs (the clock of process.hrtime on Linux). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameTime {
  frame: string;
  /** Where it lives: a package, node internals, goulette's src/, or a V8 pseudo-frame. */
  area: string;
  ms: number;
  /** Share of the non-idle time. */
  percent: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  self: FrameTime[];
  inclusive: FrameTime[];
  byArea: FrameTime[];
}

function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  if (url.includes("/dist/src/gen/")) return "goulette src/gen";
  if (url.includes("/dist/src/")) return "goulette src";
  if (url.includes("/dist/bench/")) return "bench harness";
  return url;
}

function frameOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || "(anonymous)";
  if (!url) return name;
  const short = url
    .replace(/^.*\/node_modules\//, "")
    .replace(/^.*\/dist\//, "dist/")
    .replace(/^file:\/\//, "");
  return `${name} ${short}:${lineNumber + 1}`;
}

/** The monotonic clock in µs, as profiles and ProfileWindow count it. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The pid in a `--cpu-prof` file name (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile). */
export function profilePid(fileName: string): number {
  return Number(fileName.split(".")[3]);
}

/** A span of the monotonic clock, µs (as process.hrtime.bigint() / 1000n). */
export interface ProfileWindow {
  startUs: number;
  endUs: number;
}

/**
 * Ranks the samples taken within `window` (or any of several windows), or all of them: start-up and
 * warm-up are not the hot path.
 */
export function summariseProfile(
  profile: CpuProfile,
  window?: ProfileWindow | readonly ProfileWindow[],
  top = 15,
): ProfileSummary {
  const windows = window === undefined ? undefined : "startUs" in window ? [window] : window;
  const inWindow = (at: number) =>
    windows === undefined || windows.some((w) => at >= w.startUs && at <= w.endUs);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, { area: string; ms: number }>();
  const inclusive = new Map<string, { area: string; ms: number }>();
  const areas = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (!inWindow(at)) continue;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(profile.samples[i] as number);
    if (!node) continue;
    totalMs += ms;
    if (node.callFrame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    const frame = frameOf(node);
    const area = areaOf(node.callFrame.url, node.callFrame.functionName);
    const s = self.get(frame) ?? { area, ms: 0 };
    s.ms += ms;
    self.set(frame, s);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    // Inclusive: every distinct frame on the stack gets the sample once (recursion counted once).
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (!n || n.callFrame.functionName === "(root)") continue;
      const f = frameOf(n);
      if (seen.has(f)) continue;
      seen.add(f);
      const entry = inclusive.get(f) ?? { area: areaOf(n.callFrame.url, n.callFrame.functionName), ms: 0 };
      entry.ms += ms;
      inclusive.set(f, entry);
    }
  }
  const busy = totalMs - idleMs;
  const rank = (m: Map<string, { area: string; ms: number }>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, n)
      .map(([frame, v]) => ({ frame, area: v.area, ms: v.ms, percent: (100 * v.ms) / busy }));
  return {
    totalMs,
    idleMs,
    self: rank(self, top),
    inclusive: rank(inclusive, 200)
      .filter((f) => f.area === "goulette src")
      .slice(0, top),
    byArea: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, ms]) => ({ frame: area, area, ms, percent: (100 * ms) / busy })),
  };
}
