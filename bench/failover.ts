import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { BrokerStatus } from "../src/gen/goulette/v1/common_pb.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { startEtcd, type BenchEtcd } from "./lib/etcd.js";
import { startSentinelProcess, type SentinelProcess } from "./lib/sentinel-process.js";
import { spread, type Spread } from "./lib/stats.js";
import { startStubBroker, type StubBroker } from "./lib/stub-broker.js";
import { fmt, fmtSpread, type Table } from "./lib/table.js";
import { waitFor } from "./lib/wait.js";

const SENTINELS = ["s1", "s2", "s3"];
/** Probe loops per survivor: each sends a topic-creating GetBrokers, then the next, with a short deadline. */
const PROBES_PER_SURVIVOR = 4;
const PROBE_TIMEOUT_MS = 1_000;

/** Three `goulette sentinel` processes on one etcd; restarts the ones a trial kills. */
class Cluster {
  readonly sentinels = new Map<string, SentinelProcess>();
  constructor(
    private readonly etcd: BenchEtcd,
    private readonly args: string[],
  ) {}

  async start(id: string): Promise<SentinelProcess> {
    const s = await startSentinelProcess({ id, etcdEndpoint: this.etcd.endpoint, args: this.args });
    this.sentinels.set(id, s);
    return s;
  }

  live(): SentinelProcess[] {
    return [...this.sentinels.values()].filter((s) => s.alive);
  }

  /** The one sentinel that says it leads (and has caught up), once every live one agrees there is one. */
  async leader(timeoutMs = 30_000): Promise<SentinelProcess> {
    return waitFor(
      async () => {
        const statuses = await Promise.all(
          this.live().map(async (s) => ({ s, st: await s.client.getClusterStatus({}) })),
        );
        const leading = statuses.filter(({ s, st }) => st.leaderId === s.id);
        const applied = new Set(statuses.map(({ st }) => st.oplogAppliedId));
        return leading.length === 1 && applied.size === 1 ? leading[0]?.s : undefined;
      },
      { timeoutMs, what: "exactly one leader, every sentinel caught up" },
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels.values()].map((s) => s.kill()));
  }
}

interface FailoverTrial {
  /** SIGKILL of the leader → a survivor reports itself leader (elected and caught up). */
  electedMs: number;
  /** SIGKILL of the leader → first topic-creating GetBrokers answered OK by a survivor. */
  firstWriteMs: number;
}

async function failoverTrials(
  ctx: BenchContext,
  stub: StubBroker,
  electionTtl: number,
  trials: number,
): Promise<FailoverTrial[]> {
  const etcd = await startEtcd();
  // Long heartbeat TTL: the simulated brokers send no heartbeats and must stay healthy throughout.
  const cluster = new Cluster(etcd, ["--election-ttl", String(electionTtl), "--heartbeat-ttl", "3600"]);
  const results: FailoverTrial[] = [];
  try {
    await Promise.all(SENTINELS.map((id) => cluster.start(id)));
    const first = await cluster.leader();
    for (let b = 0; b < 3; b++) {
      await first.client.registerBroker({ brokerId: `broker-${b}`, address: stub.address });
    }
    await first.client.getBrokers({ topic: "warm-up", replicaCount: 2, partitions: 1 });
    for (let trial = 0; trial < trials; trial++) {
      const leader = await cluster.leader();
      const survivors = cluster.live().filter((s) => s !== leader);
      // Kill at a random point of the leader's lease keep-alive cycle, as a real crash would.
      await sleep(Math.random() * ((electionTtl * 1000) / 3));
      const t0 = performance.now();
      leader.process.kill("SIGKILL");
      // Restarted at once, as Kubernetes would; it rejoins as the last candidate, so it cannot win.
      const restarted = leader.kill().then(() => cluster.start(leader.id));
      restarted.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      const deadline = t0 + electionTtl * 1000 + 30_000;
      let firstWriteMs: number | undefined;
      let electedMs: number | undefined;
      let n = 0;
      const probe = async (s: SentinelProcess, offsetMs: number) => {
        await sleep(offsetMs);
        while (firstWriteMs === undefined && performance.now() < deadline) {
          const topic = `failover-${electionTtl}-${trial}-${n++}`;
          try {
            await s.client.getBrokers(
              { topic, replicaCount: 2, partitions: 1 },
              { timeoutMs: PROBE_TIMEOUT_MS },
            );
            firstWriteMs ??= performance.now() - t0;
          } catch {
            // no leader yet (or forwarding to the dead one): try again with a new topic
          }
        }
      };
      const watchElection = async () => {
        while (electedMs === undefined && performance.now() < deadline) {
          for (const s of survivors) {
            const st = await s.client.getClusterStatus({}, { timeoutMs: 500 }).catch(() => undefined);
            if (st?.leaderId === s.id) electedMs ??= performance.now() - t0;
          }
          await sleep(20);
        }
      };
      await Promise.all([
        watchElection(),
        ...survivors.flatMap((s) =>
          Array.from({ length: PROBES_PER_SURVIVOR }, (_, i) =>
            probe(s, (i * PROBE_TIMEOUT_MS) / PROBES_PER_SURVIVOR),
          ),
        ),
      ]);
      if (firstWriteMs === undefined || electedMs === undefined) {
        throw new Error(`trial ${trial}: no new leader / successful write within ${deadline - t0} ms`);
      }
      results.push({ electedMs, firstWriteMs });
      ctx.log(
        `    ttl ${electionTtl} s trial ${trial + 1}/${trials}: elected ${fmt(electedMs)} ms, first write ${fmt(firstWriteMs)} ms`,
      );
      await restarted;
    }
    return results;
  } finally {
    await cluster.stop();
    await etcd.stop();
  }
}

interface HeartbeatTrial {
  /** Heartbeats stopped → the broker is gone from the topic's replicas (GetBrokers on the leader). */
  sinceStopMs: number;
  /** Its last successful KeepAlive → the same moment (≈ TTL + detection + reassignment). */
  sinceLastBeatMs: number;
}

async function heartbeatTrials(
  ctx: BenchContext,
  stub: StubBroker,
  heartbeatTtl: number,
  trials: number,
): Promise<HeartbeatTrial[]> {
  const etcd = await startEtcd();
  const cluster = new Cluster(etcd, ["--election-ttl", "5", "--heartbeat-ttl", String(heartbeatTtl)]);
  const beating = new Map<string, { timer: NodeJS.Timeout; last: number }>();
  const results: HeartbeatTrial[] = [];
  try {
    await Promise.all(SENTINELS.map((id) => cluster.start(id)));
    const leader = await cluster.leader();
    const client = leader.client;
    const brokers = Array.from({ length: 6 }, (_, b) => `broker-${b}`);
    // Brokers beat every TTL/3, like a broker would, through any sentinel (here the leader).
    const beat = (brokerId: string) => {
      // A failed beat (the sentinel is being stopped) must not go unhandled: it ended a run at teardown.
      const entry = {
        timer: setInterval(() => void send().catch(() => undefined), (heartbeatTtl * 1000) / 3),
        last: 0,
      };
      const send = async () => {
        await client.keepAlive(
          { brokerId, address: stub.address, status: BrokerStatus.HEALTHY },
          { timeoutMs: 1_000 },
        );
        if (beating.get(brokerId) === entry) entry.last = performance.now();
      };
      beating.set(brokerId, entry);
      void send().catch(() => undefined);
    };
    for (const id of brokers) {
      await client.registerBroker({ brokerId: id, address: stub.address });
      beat(id);
    }
    for (let trial = 0; trial < trials; trial++) {
      const topic = `heartbeat-${trial}`;
      const created = await client.getBrokers({ topic, replicaCount: 2, partitions: 3 });
      const victim = created.partitions[0]?.leader;
      const entry = victim ? beating.get(victim) : undefined;
      if (!victim || !entry) throw new Error(`topic ${topic} has no leader on a beating broker`);
      // Die at a random point between two beats.
      await sleep(Math.random() * ((heartbeatTtl * 1000) / 3));
      clearInterval(entry.timer);
      beating.delete(victim);
      const t0 = performance.now();
      const lastBeat = entry.last;
      await waitFor(
        async () => {
          const res = await client.getBrokers({ topic, replicaCount: 2 }, { timeoutMs: 1_000 });
          return res.partitions.every((p) => !p.replicas.includes(victim));
        },
        { timeoutMs: heartbeatTtl * 1000 + 30_000, intervalMs: 20, what: `${victim}'s partitions to move` },
      );
      const t1 = performance.now();
      results.push({ sinceStopMs: t1 - t0, sinceLastBeatMs: t1 - lastBeat });
      ctx.log(
        `    heartbeat ttl ${heartbeatTtl} s trial ${trial + 1}/${trials}: moved ${fmt(t1 - t0)} ms after the beats stopped (${fmt(t1 - lastBeat)} ms after the last one)`,
      );
      // Bring it back (the leader marks it up) before the next trial.
      beat(victim);
      await waitFor(
        async () => {
          const st = await client.getClusterStatus({});
          return st.brokers.find((b) => b.brokerId === victim)?.status === BrokerStatus.HEALTHY;
        },
        { timeoutMs: 30_000, what: `${victim} to be healthy again` },
      );
    }
    return results;
  } finally {
    for (const entry of beating.values()) clearInterval(entry.timer);
    await cluster.stop();
    await etcd.stop();
  }
}

/**
 * Failover: SIGKILL the leader of 3 sentinel processes and time until a survivor serves a write
 * (a topic-creating GetBrokers), over many trials, with election TTL 2 s and 5 s. And failure detection:
 * a broker whose heartbeats stop (heartbeat TTL 3 s) until its partitions are reassigned.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  const trials = ctx.quick ? 4 : 12; // 20 made the default set take over 15 minutes
  const heartbeatRuns = ctx.quick ? 3 : 6;
  const stub = await startStubBroker();
  try {
    const failover: Record<string, FailoverTrial[]> = {};
    for (const ttl of [2, 5]) {
      ctx.log(`  election TTL ${ttl} s, ${trials} trials`);
      failover[`ttl${ttl}`] = await failoverTrials(ctx, stub, ttl, trials);
    }
    ctx.log(`  heartbeat expiry, TTL 3 s, ${heartbeatRuns} trials`);
    const heartbeat = await heartbeatTrials(ctx, stub, 3, heartbeatRuns);

    const p = (values: number[], q: number) => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
    };
    const describe = (values: number[]): [Spread, number] => [
      spread(values.map((v) => v / 1000)),
      p(values, 0.9) / 1000,
    ];
    const rows = [2, 5].flatMap((ttl) => {
      const list = failover[`ttl${ttl}`] ?? [];
      const [elected, electedP90] = describe(list.map((t) => t.electedMs));
      const [write, writeP90] = describe(list.map((t) => t.firstWriteMs));
      return [
        [
          `${ttl} s`,
          "leader elected and caught up",
          String(list.length),
          fmtSpread(elected),
          fmt(electedP90),
          fmt(elected.median / ttl, 2),
        ],
        [
          `${ttl} s`,
          "first successful write",
          String(list.length),
          fmtSpread(write),
          fmt(writeP90),
          fmt(write.median / ttl, 2),
        ],
      ];
    });
    const [sinceStop, sinceStopP90] = describe(heartbeat.map((t) => t.sinceStopMs));
    const [sinceLast, sinceLastP90] = describe(heartbeat.map((t) => t.sinceLastBeatMs));
    const tables: Table[] = [
      {
        title: "Leader failover: SIGKILL of the leader (3 sentinel processes) → …",
        columns: ["election TTL", "until", "trials", "seconds: median (min–max)", "p90 s", "median / TTL"],
        rows,
        notes: [
          "the kill lands at a random point of the lease keep-alive cycle; the killed sentinel is restarted at once (as Kubernetes would), in parallel with the failover, and rejoins as a follower",
          `writes: ${PROBES_PER_SURVIVOR} staggered probe loops per survivor send topic-creating GetBrokers (deadline ${PROBE_TIMEOUT_MS} ms, forwarded to the leader), so the first success is seen within ~${PROBE_TIMEOUT_MS / PROBES_PER_SURVIVOR} ms`,
          "elected: a survivor's GetClusterStatus names itself leader (it has caught up with the log), polled every 20 ms",
        ],
      },
      {
        title: "Broker death → its partitions reassigned (heartbeat TTL 3 s)",
        columns: ["measured from", "trials", "seconds: median (min–max)", "p90 s"],
        rows: [
          ["heartbeats stop", String(heartbeat.length), fmtSpread(sinceStop), fmt(sinceStopP90)],
          ["its last heartbeat", String(heartbeat.length), fmtSpread(sinceLast), fmt(sinceLastP90)],
        ],
        notes: [
          "brokers beat every TTL/3 through KeepAlive; the victim leads partition 0 of a fresh topic and stops at a random point between two beats",
          "done when GetBrokers on the leader no longer lists the victim in any partition; etcd expires the heartbeat lease, the leader's watch sees the delete, proposes handleUnreachableBrokers",
          "the pod-watch path (Kubernetes NotReady/deleted) is not measured here",
        ],
      },
    ];
    return {
      tables,
      settings: {
        sentinels: SENTINELS.length,
        electionTtls: [2, 5],
        trials,
        heartbeatTtl: 3,
        heartbeatTrials: heartbeatRuns,
        probesPerSurvivor: PROBES_PER_SURVIVOR,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
      },
      data: { failover, heartbeat },
      notes: [],
    };
  } finally {
    await stub.stop();
  }
}

export const failoverBenchmark: Benchmark = {
  name: "failover",
  description:
    "Leader kill → first successful write (election TTL 2 s, 5 s); broker death → reassignment (heartbeat TTL 3 s)",
  run,
};
