import type { MemberRecord } from "../../src/groups/model.js";

/** A seeded generator (mulberry32): the cases are pseudo-random but the same on every run. */
export function generator(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  /** An integer in [lo, hi]. */
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)] as T;
  const shuffle = <T>(items: readonly T[]): T[] => {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(0, i);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  };
  return { next, int, pick, shuffle };
}
export type Generator = ReturnType<typeof generator>;

/** A group member record subscribing to `topics`. */
export function member(memberId: string, topics: readonly string[]): MemberRecord {
  return {
    memberId,
    instanceId: "",
    clientId: "client",
    topics: [...new Set(topics)].sort(),
    sessionTimeoutMs: 10_000,
    joinedAt: 0,
    lastHeartbeat: 0,
  };
}
