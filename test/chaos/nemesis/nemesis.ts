import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { startCluster, type TestCluster } from "../../helpers/cluster.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";
import { waitFor } from "../../helpers/wait.js";
import { EtcdControl, waitForHealthyBrokers, waitForSentinelAgreement } from "../harness.js";
import { checkHistory, type CheckResult, type History } from "./checker.js";
import { FAULT_SLOTS, injectFault, type ActiveFault, type FaultKind, type FaultTargets } from "./faults.js";
import { NODE_PRELOAD, NodeControls } from "./node-control.js";
import { Rng } from "./rng.js";
import {
  CLIENT_LISTENER,
  startGroup,
  startIdempotentProducer,
  startLeaderObserver,
  startPlainProducer,
  type WorkloadTarget,
} from "./workload.js";

/**
 * A cluster the nemesis can fault (etcd, 3 sentinels, 3 brokers, every node under the preload of
 * node-preload.ts) and one seeded run on it: a fresh topic, the workload, faults drawn from the seed
 * until the duration is over, then the heal, the drain and the checker.
 */

/** Segment size of the nemesis's brokers: a partition of a short run rolls several segments. */
const SEGMENT_BYTES = 8 * 1024;
/** Between scrub passes of sealed segments (the first one this long after a broker starts). */
const SCRUB_INTERVAL_MS = 5_000;

export interface NemesisClusterOptions {
  /** --fsync of every broker. */
  fsync: "always" | "interval";
  /** --min-insync-replicas of every broker. */
  minInsyncReplicas: number;
  /** --heartbeat-ttl of the sentinels (s): a broker restarting within it keeps its partitions. */
  heartbeatTtlS: number;
}

export class NemesisCluster {
  private constructor(
    readonly cluster: TestCluster,
    readonly etcd: EtcdControl,
    readonly controls: NodeControls,
    readonly proxies: Map<string, TcpProxy>,
    readonly sentinelProxies: TcpProxy[],
    readonly options: NemesisClusterOptions,
  ) {}

  static async start(options: NemesisClusterOptions): Promise<NemesisCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), "goulette-nemesis-"));
    const controls = new NodeControls(dir);
    const brokerIds = ["b1", "b2", "b3"];
    for (const [i, id] of brokerIds.entries())
      await controls.init(id, { sourceAddress: sourceOf(id, i), lazyFs: true });
    for (const id of ["s1", "s2", "s3"]) await controls.init(id, {});
    const cluster = await startCluster({
      sentinels: 3,
      brokers: 3,
      nodeArgs: ["--import", NODE_PRELOAD],
      // Three sentinels and three brokers starting at once on a loaded 2-core machine.
      readyTimeoutMs: 60_000,
      brokerEnv: { GOULETTE_NEMESIS_DIR: dir },
      sentinelEnv: { GOULETTE_NEMESIS_DIR: dir },
      sentinelArgs: [
        "--election-ttl",
        "2",
        "--heartbeat-ttl",
        String(options.heartbeatTtlS),
        "--probe-timeout",
        "500",
      ],
      brokerArgs: [
        "--fsync",
        options.fsync,
        "--fsync-interval",
        "500",
        "--min-insync-replicas",
        String(options.minInsyncReplicas),
        // Small segments and a scrub every few seconds: the run rolls segments, so bit flips and
        // truncations also hit sealed segments, which the scrub finds and repairs under the faults.
        "--segment-bytes",
        String(SEGMENT_BYTES),
        "--scrub-interval",
        String(SCRUB_INTERVAL_MS),
      ],
    });
    const proxies = new Map<string, TcpProxy>();
    const sentinelProxies: TcpProxy[] = [];
    const env = new NemesisCluster(
      cluster,
      new EtcdControl(cluster),
      controls,
      proxies,
      sentinelProxies,
      options,
    );
    try {
      // Brokers replicate through a proxy in front of each broker (their registered default address);
      // clients dial the direct address on the "client" listener. No topic exists yet: restarting with
      // these flags moves no data.
      for (const id of brokerIds) proxies.set(id, await startTcpProxy({ target: cluster.brokerAddress(id) }));
      // Brokers reach the sentinels through proxies too, so one can be cut off from the control plane.
      for (const url of cluster.sentinelUrls)
        sentinelProxies.push(await startTcpProxy({ target: new URL(url).host }));
      for (const id of brokerIds) await cluster.restartBroker(id, env.brokerArgs(id));
      await waitForHealthyBrokers(cluster, 60_000);
      await waitForSentinelAgreement(cluster, 30_000);
    } catch (err) {
      await env.stop();
      throw err;
    }
    return env;
  }

  brokerArgs(id: string): string[] {
    const proxy = this.proxies.get(id);
    if (!proxy) throw new Error(`no proxy for broker ${id}`);
    return [
      "--advertise-address",
      proxy.address,
      "--advertise-listeners",
      `${CLIENT_LISTENER}=${this.cluster.brokerAddress(id)}`,
      "--sentinels",
      this.sentinelProxies.map((p) => `http://${p.address}`).join(","),
    ];
  }

  async stop(): Promise<void> {
    await this.etcd.stop().catch(() => undefined);
    await this.cluster.stop().catch(() => undefined);
    for (const p of [...this.proxies.values(), ...this.sentinelProxies])
      await p.close().catch(() => undefined);
    await rm(this.controls.dir, { recursive: true, force: true });
  }
}

function sourceOf(broker: string, index = Number(broker.slice(1)) - 1): string {
  return `127.0.0.${11 + index}`;
}

export interface NemesisRunOptions {
  seed: number;
  /** How long faults are injected (ms). */
  durationMs: number;
  faults: readonly FaultKind[];
  partitions: number;
  /** Chance that a step injects two faults (of different slots) at once. */
  combineChance?: number;
  /** A fault lasts between these (ms). */
  holdMs?: [number, number];
  /** Quiet time after each step once the cluster is whole again (ms). */
  quietMs?: [number, number];
}

export interface NemesisRun {
  seed: number;
  topic: string;
  durationMs: number;
  history: History;
  result: CheckResult;
  /** Faults that could not be injected or healed, waits that timed out. */
  problems: string[];
  sentinelsConverged: boolean;
  /** Applied operation id and state digest every sentinel agreed on (when converged). */
  sentinelState: string;
}

export async function runNemesis(env: NemesisCluster, options: NemesisRunOptions): Promise<NemesisRun> {
  const rng = new Rng(options.seed);
  const { cluster } = env;
  const topic = `nemesis-${options.seed}-${Date.now().toString(36)}`;
  // The previous seed's heal may still be settling on the sentinel leader (a broker it has not seen
  // healthy again yet, e.g. after a clock step of that sentinel): a topic of 3 replicas waits for it.
  await waitFor(
    async () => {
      try {
        await cluster.createTopic(topic, { partitions: options.partitions, replicas: 3 });
        return true;
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return false;
        throw err;
      }
    },
    { timeoutMs: 60_000, what: `topic ${topic} created with every broker healthy` },
  );
  const down = new Set<string>();
  const liveSentinels = () =>
    [...cluster.sentinels.values()]
      .filter((s) => !down.has(s.id) && s.process.exitCode === null && s.process.signalCode === null)
      .map((s) => ({ id: s.id, client: s.client }));
  const target: WorkloadTarget = {
    topic,
    partitions: options.partitions,
    sentinelUrls: cluster.sentinelUrls,
    liveSentinels,
    liveSentinel: () => {
      const live = liveSentinels();
      return live.length === 0 ? undefined : live[Math.floor(Math.random() * live.length)];
    },
    brokerAddress: (id) => cluster.brokerAddress(id),
  };
  const history: History = { partitions: options.partitions, sends: [], reads: [], leaders: [], faults: [] };
  const problems: string[] = [];
  const maxMessages = 20_000;
  const group = startGroup(target, `${topic}-group`, 2, history.reads);
  const producers = [
    startIdempotentProducer(target, "idem-1", history.sends, { intervalMs: 15, inFlight: 32, maxMessages }),
    startIdempotentProducer(target, "idem-2", history.sends, { intervalMs: 15, inFlight: 32, maxMessages }),
    startPlainProducer(target, "plain-1", history.sends, { intervalMs: 20, maxMessages }),
  ];
  const observer = startLeaderObserver(target, history.leaders, 500);
  const targets: FaultTargets = {
    cluster,
    etcd: env.etcd,
    controls: env.controls,
    proxies: env.proxies,
    sentinelProxies: env.sentinelProxies,
    sourceOf: (b) => sourceOf(b),
    brokerArgs: (b) => env.brokerArgs(b),
    down,
    topic,
  };
  const [holdMin, holdMax] = options.holdMs ?? [2_000, 6_000];
  const [quietMin, quietMax] = options.quietMs ?? [1_000, 3_000];

  const started = Date.now();
  // Warm-up: every partition serves before the first fault.
  await waitFor(
    () =>
      new Set(history.sends.filter((s) => s.outcome === "ok").map((s) => s.partition)).size ===
      options.partitions,
    { timeoutMs: 60_000, what: "an acknowledgement on every partition before the first fault" },
  ).catch((err: Error) => problems.push(err.message));

  while (Date.now() - started < options.durationMs && options.faults.length > 0) {
    const first = rng.pick(options.faults);
    const kinds: FaultKind[] = [first];
    if (rng.chance(options.combineChance ?? 0.4)) {
      const others = options.faults.filter((k) => FAULT_SLOTS[k] !== FAULT_SLOTS[first]);
      if (others.length > 0) kinds.push(rng.pick(others));
    }
    const active: ActiveFault[] = [];
    for (const kind of kinds) {
      try {
        const fault = await injectFault(kind, targets, rng);
        active.push(fault);
        history.faults.push(fault.event);
      } catch (err) {
        problems.push(`inject ${kind}: ${(err as Error).message}`);
      }
    }
    await sleep(rng.int(holdMin, holdMax));
    for (const fault of active.reverse()) {
      try {
        await fault.heal();
      } catch (err) {
        problems.push(`heal ${fault.event.kind} of ${fault.event.target}: ${(err as Error).message}`);
      }
      fault.event.healAt = Date.now();
    }
    try {
      await waitForHealthyBrokers(cluster, 60_000);
    } catch (err) {
      problems.push(`after ${kinds.join(" + ")}: ${(err as Error).message}`);
      await restoreEverything(env, targets);
    }
    await sleep(rng.int(quietMin, quietMax));
  }
  const faultsOverAt = Date.now();

  // The end: stop producing, read everything acknowledged, check.
  await Promise.all(producers.map((p) => p.stop(Date.now() + 60_000)));
  const acked = history.sends.filter((s) => s.outcome === "ok").map((s) => s.value);
  await waitFor(() => acked.every((v) => group.read().has(v)), {
    timeoutMs: 60_000,
    what: "the group to read every acknowledged message",
  }).catch(() => undefined);
  await group.stop(Date.now() + 20_000);
  await observer.stop(Date.now());
  let sentinelsConverged = false;
  let sentinelState = "";
  try {
    const agreement = await waitForSentinelAgreement(cluster, 30_000);
    sentinelsConverged = agreement.leadersByMetric.length === 1;
    sentinelState = `op ${agreement.appliedId}, digest ${agreement.digest.slice(0, 12)}`;
  } catch (err) {
    problems.push(`sentinels did not converge: ${(err as Error).message}`);
  }
  return {
    seed: options.seed,
    topic,
    durationMs: faultsOverAt - started,
    history,
    result: checkHistory(history),
    problems,
    sentinelsConverged,
    sentinelState,
  };
}

/** A step left the cluster broken: bring every process back so the run can go on. */
async function restoreEverything(env: NemesisCluster, t: FaultTargets): Promise<void> {
  for (const proxy of [...env.proxies.values(), ...env.sentinelProxies]) {
    proxy.setMode("forward");
    for (const b of env.proxies.keys()) proxy.setSourceMode(t.sourceOf(b), undefined);
  }
  for (const b of env.cluster.brokers.values()) {
    if (!b.alive) await env.cluster.restartBroker(b.id, env.brokerArgs(b.id)).catch(() => undefined);
    else b.resume();
  }
  t.down.clear();
  await waitForHealthyBrokers(env.cluster, 60_000).catch(() => undefined);
}
