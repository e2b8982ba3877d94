/**
 * The failure detector's decision, as a pure function of the evidence (docs/architecture.md, "Failure
 * detection"). An expired heartbeat alone does not make a broker dead: under overload the sentinel's own
 * event loop, or etcd, may be what was slow, and moving replicas then only adds load (a metastable
 * failure). A broker is declared down when its heartbeat is still absent in etcd, the sentinel itself
 * was healthy while it looked, a direct Health probe fails (or it answers, yet its heartbeat stays away
 * for `probeHoldMs`: it cannot reach the sentinels, so it has fenced itself and serves no writes), and
 * not more than half of the brokers would be declared dead at once; otherwise the verdict is held and
 * checked again, at most `maxHoldMs`.
 */

/** Why a verdict was held (the `reason` label of goulette_failure_verdicts_suspect_total). */
export type SuspectReason =
  /** The broker answers a direct Health probe: alive, its heartbeats may only be late (for probeHoldMs). */
  | "probe-answers"
  /** This sentinel's event loop lagged in the window: the heartbeats may have been late because of it. */
  | "sentinel-lagging"
  /** etcd answered slowly: heartbeat writes (and lease renewals) may have been what failed. */
  | "etcd-slow"
  /** More than half of the healthy brokers would be declared dead at once: more likely a shared cause. */
  | "mass-verdict";

export const SUSPECT_REASONS: readonly SuspectReason[] = [
  "probe-answers",
  "sentinel-lagging",
  "etcd-slow",
  "mass-verdict",
];

export interface SuspectEvidence {
  brokerId: string;
  /** Its heartbeat key exists in etcd again (read just now). */
  heartbeatPresent: boolean;
  /** It answered a direct Health probe just now. */
  probeAnswered: boolean;
  /** How long it has been suspected (since its heartbeat expired), ms. */
  suspectForMs: number;
}

export interface VerdictLimits {
  /** Event-loop lag above this (ms) in the window makes this sentinel's own evidence suspect. */
  maxEventLoopLagMs: number;
  /** An etcd read slower than this (ms) makes the evidence suspect. */
  maxEtcdLatencyMs: number;
  /**
   * A broker that answers Health is given this long (ms) for its heartbeat to come back. Past it, it is
   * treated as confirmed: a broker cut off from the sentinels fences itself after one heartbeat TTL, so
   * holding longer only keeps its partitions unavailable.
   */
  probeHoldMs: number;
  /** A verdict is held at most this long (ms): past it, a broker still silent in etcd is declared down. */
  maxHoldMs: number;
}

export const DEFAULT_VERDICT_LIMITS: VerdictLimits = {
  maxEventLoopLagMs: 1_000,
  maxEtcdLatencyMs: 1_000,
  probeHoldMs: 3_000,
  maxHoldMs: 30_000,
};

export interface VerdictInput {
  suspects: readonly SuspectEvidence[];
  /** Brokers the state calls healthy (the suspects included). */
  healthyBrokers: number;
  /** The largest event-loop delay of this sentinel since the suspects' heartbeats could last have come. */
  eventLoopLagMs: number;
  /** How long the evidence read from etcd took. */
  etcdLatencyMs: number;
  limits: VerdictLimits;
}

export interface Verdict {
  /** Declare these down now (one operation). */
  down: string[];
  /** Their heartbeat is back: no longer suspected. */
  cleared: string[];
  /** Check these again later. */
  held: { brokerId: string; reason: SuspectReason }[];
}

export function decideVerdict(input: VerdictInput): Verdict {
  const { limits } = input;
  const verdict: Verdict = { down: [], cleared: [], held: [] };
  const silent: SuspectEvidence[] = [];
  for (const suspect of input.suspects) {
    if (suspect.heartbeatPresent) verdict.cleared.push(suspect.brokerId);
    else silent.push(suspect);
  }
  // Held long enough: a broker etcd still has no heartbeat from is down, whatever else is going on.
  const overdue = (s: SuspectEvidence) => s.suspectForMs >= limits.maxHoldMs;
  const hold = (reason: SuspectReason, suspects: readonly SuspectEvidence[]) => {
    for (const s of suspects) {
      if (overdue(s)) verdict.down.push(s.brokerId);
      else verdict.held.push({ brokerId: s.brokerId, reason });
    }
  };
  const sentinelReason: SuspectReason | undefined =
    input.eventLoopLagMs > limits.maxEventLoopLagMs
      ? "sentinel-lagging"
      : input.etcdLatencyMs > limits.maxEtcdLatencyMs
        ? "etcd-slow"
        : undefined;
  if (sentinelReason) {
    hold(sentinelReason, silent);
    return verdict;
  }
  const gettingAGrace = (s: SuspectEvidence) => s.probeAnswered && s.suspectForMs < limits.probeHoldMs;
  hold("probe-answers", silent.filter(gettingAGrace));
  const confirmed = silent.filter((s) => !gettingAGrace(s));
  // Losing more than half of the brokers at once is rarer than a shared cause for missing heartbeats.
  if (confirmed.length > 1 && confirmed.length * 2 > input.healthyBrokers) hold("mass-verdict", confirmed);
  else verdict.down.push(...confirmed.map((s) => s.brokerId));
  return verdict;
}
