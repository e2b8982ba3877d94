import { performance } from "node:perf_hooks";
import type { Etcd3 } from "etcd3";
import type { Keyspace } from "../../src/coordination/keyspace.js";
import { createRegistry, createSentinelMetrics } from "../../src/observability/metrics.js";
import type { ControlPlane } from "../../src/sentinel/control-plane.js";
import { createEtcdControlPlane } from "../../src/sentinel/etcd-control-plane.js";
import { captureLogger } from "./capture-logger.js";
import type { BenchEtcd } from "./etcd.js";
import { withTimeout } from "./wait.js";

/** How long a ControlPlane.stop() may take before the benchmark moves on. */
const STOP_TIMEOUT_MS = 3_000;

/** ControlPlane.stop() calls that did not finish in time (reported by the benchmarks that stop planes). */
export const stopHangs: string[] = [];

/**
 * Stops an in-process ControlPlane, bounded: LeaderElection.stop() awaits a second cancel() of its
 * predecessor watch when this plane became leader after waiting behind another candidate, and etcd3
 * never resolves a second cancel of the same watcher. Closing the etcd client afterwards ends every
 * stream either way.
 */
export async function stopPlane(plane: ControlPlane, client: Etcd3, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const hung = await Promise.race([plane.stop().then(() => false), timedOut]);
  clearTimeout(timer);
  if (hung) stopHangs.push(what);
  client.close();
}

export interface Recovered {
  /** ControlPlane.start() → resolved (recovered, watching, campaigning). */
  seconds: number;
  appliedId: number;
  /** Why recovery failed (the first "recovery failed" the plane logged, or the timeout). */
  error?: string;
}

/**
 * Starts a ControlPlane — the recovery a restarting sentinel does: newest snapshot, paged replay, watch —
 * on its own etcd client (configured like the sentinel's) and times start(). The caller stops it with
 * stopPlane. A recovery that logs a failure is stopped at once and reported with its error, rather
 * than retried until the timeout.
 */
export async function recoverPlane(
  etcd: BenchEtcd,
  keys: Keyspace,
  options: { virtualNodes: number; timeoutMs: number },
): Promise<{ recovered: Recovered; plane: ControlPlane; client: Etcd3 }> {
  const client = etcd.client();
  const captured = captureLogger();
  const plane = createEtcdControlPlane({
    id: "recovering",
    url: "http://127.0.0.1:1",
    etcd: client,
    keys,
    logger: captured.logger,
    metrics: createSentinelMetrics(createRegistry()),
    virtualNodes: options.virtualNodes,
    snapshotEvery: 1_000_000_000,
    electionTtlSeconds: 5,
  });
  let failure: string | undefined;
  captured.onLine = (line) => {
    if (failure === undefined && line.msg.startsWith("recovery failed")) {
      failure = line.err ?? line.msg;
      void plane.stop();
    }
  };
  const t0 = performance.now();
  try {
    await withTimeout(plane.start(), options.timeoutMs, "recovery");
  } catch (err) {
    failure ??= err instanceof Error ? err.message : String(err);
  }
  return {
    recovered: {
      seconds: (performance.now() - t0) / 1000,
      appliedId: plane.state.appliedId,
      ...(failure !== undefined ? { error: failure } : {}),
    },
    plane,
    client,
  };
}
