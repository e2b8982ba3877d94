import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  Acks,
  MessageRequestSchema,
  ProduceError,
  type BrokerService,
  type MessageRequest,
} from "../src/gen/goulette/v1/broker_pb.js";
import { Pushable } from "../test/helpers/broker-process.js";
import { startCluster, type TestCluster } from "../test/helpers/cluster.js";
import { metricSum, readMetric } from "../test/helpers/sentinel-process.js";
import { Partition } from "../src/broker/partition.js";
import { Producer } from "../src/client/node.js";
import { backoffDelay } from "../src/common/backoff.js";
import { silentLogger } from "../src/observability/logger.js";
import type { BenchContext, BenchOutput, Benchmark } from "./lib/benchmark.js";
import {
  monotonicUs,
  profilePid,
  summariseProfile,
  type CpuProfile,
  type ProfileSummary,
  type ProfileWindow,
} from "./lib/cpu-profile.js";
import { benchNodeArgs } from "./lib/node-args.js";
import { collectGarbage } from "./lib/gc.js";
import { processCpuMs, processCpuSplitMs } from "./lib/cpu.js";
import { spread, type Spread } from "./lib/stats.js";
import { fmt, fmtBytes, fmtSpread, type Table } from "./lib/table.js";
import { addBuckets, bucketQuantile, histogramBuckets, type Buckets } from "./lib/histogram.js";
import { waitFor } from "./lib/wait.js";
import { DEPLOYED_BROKER_ARGS, DEPLOYED_SENTINEL_ARGS } from "./lib/deployed-timings.js";

/**
 * Partition scale: a dev-sized cluster (etcd, 3 sentinels, 3 brokers, all child processes on this
 * machine) grown to 300, 1,500 and 3,000 partition replicas per broker (topics of 3 partitions, RF 3 on
 * 3 brokers, so every broker holds every partition). At each size: per-broker idle CPU, RSS and open
 * files (from /proc/<pid>), and acks=all produce throughput spread over every partition vs over 3.
 * Last, 1,000 single-partition topics are created at once (a burst) and the failures counted.
 * Brokers run with `goulette dev`'s settings (--fsync interval, KeepAlive every 3 s, lag max 10 s).
 */

/** Partition replicas per broker at each step (= partitions, with RF 3 on 3 brokers). */
const STEPS = [300, 1_500, 3_000];
const QUICK_STEPS = [300, 1_500];
const PARTITIONS_PER_TOPIC = 3;
const BURST_TOPICS = 1_000;
const QUICK_BURST_TOPICS = 200;
const RECORD_BYTES = 100;
const RECORDS_PER_REQUEST = 10;
/** SendMessage requests in flight per broker stream. */
const WINDOW = 32;
/** `goulette dev`'s default; GOULETTE_BENCH_FSYNC=always measures fsync-before-ack instead. */
const FSYNC = process.env.GOULETTE_BENCH_FSYNC === "always" ? "always" : "interval";
/** --fsync-interval of the brokers (ms): GOULETTE_BENCH_FSYNC_INTERVAL, else the broker's default. */
const FSYNC_INTERVAL = process.env.GOULETTE_BENCH_FSYNC_INTERVAL;
/** --interval-sync of the brokers (volume or file): GOULETTE_BENCH_INTERVAL_SYNC, else the broker's default. */
const INTERVAL_SYNC = process.env.GOULETTE_BENCH_INTERVAL_SYNC;
const PHASES = ["memory", "idle", "produce", "burst"] as const;
/**
 * The produce load generators: `wire`, one SendMessage request per partition batch (RECORDS_PER_REQUEST
 * records, WINDOW in flight per leader); `sdk`, the SDK's Producer (batches per broker as it would for
 * an application); `sdk-nowindow`, the same without a bound on requests in flight per broker (the
 * producer before that window: the baseline to compare it with, only when named); `sdk-keyless`, the
 * SDK's Producer sending to the same topics in turn without naming a partition (its partitioner, sticky
 * by default, picks one; only when named).
 * PARTITIONS_CLIENT=wire,sdk (the default).
 */
const CLIENTS = ["wire", "sdk", "sdk-nowindow", "sdk-keyless"] as const;
const DEFAULT_CLIENTS = ["wire", "sdk"];
/** maxInFlightRequestsPerBroker of `sdk-nowindow`: more than it ever has in flight. */
const NO_WINDOW = 1_000_000;
type LoadGenerator = (typeof CLIENTS)[number];
/**
 * PARTITIONS_PROFILE=1: the cluster's processes run under `node --cpu-prof` (profiling costs them about
 * a third of their throughput); at the end the benchmark ranks each broker's samples taken during the
 * produce runs over every partition and, apart, over 3 (what the spread costs that the concentrated
 * load does not). Sentinel profiles are written too and ignored.
 */
const PROFILE = process.env.PARTITIONS_PROFILE === "1";
type Phase = (typeof PHASES)[number];

/**
 * Focused runs: PARTITIONS_PHASES=produce (a comma list of memory, idle, produce, burst; default all)
 * and PARTITIONS_STEPS=3000 (replicas per broker to grow to and measure at; default the full or quick list).
 */
function focus(quick: boolean): { phases: Set<Phase>; steps: number[]; clients: LoadGenerator[] } {
  const phases = (process.env.PARTITIONS_PHASES ?? PHASES.join(",")).split(",").map((p) => p.trim());
  for (const p of phases) {
    if (!(PHASES as readonly string[]).includes(p)) {
      throw new Error(`PARTITIONS_PHASES: unknown phase ${p} (known: ${PHASES.join(", ")})`);
    }
  }
  const steps = process.env.PARTITIONS_STEPS?.split(",").map(Number) ?? (quick ? QUICK_STEPS : STEPS);
  for (const n of steps) {
    if (!Number.isInteger(n) || n <= 0 || n % PARTITIONS_PER_TOPIC !== 0) {
      throw new Error(`PARTITIONS_STEPS: ${n} is not a positive multiple of ${PARTITIONS_PER_TOPIC}`);
    }
  }
  const clients = (process.env.PARTITIONS_CLIENT ?? DEFAULT_CLIENTS.join(","))
    .split(",")
    .map((c) => c.trim());
  for (const c of clients) {
    if (!(CLIENTS as readonly string[]).includes(c)) {
      throw new Error(`PARTITIONS_CLIENT: unknown load generator ${c} (known: ${CLIENTS.join(", ")})`);
    }
  }
  return { phases: new Set(phases as Phase[]), steps, clients: clients as LoadGenerator[] };
}

interface Placement {
  topic: string;
  partition: number;
  leader: string;
}

interface ProcSample {
  cpuMs: number;
  rssBytes: number;
  openFiles: number;
}

function sampleProcess(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  return {
    cpuMs: processCpuMs(pid),
    rssBytes: rss ? Number(rss[1]) * 1024 : Number.NaN,
    openFiles: readdirSync(`/proc/${pid}/fd`).length,
  };
}

/**
 * Memory of idle partitions in this process: `count` partitions opened on empty logs, each leading with
 * two followers (the broker's settings), measured after a full GC against a warmed-up baseline.
 */
async function partitionMemory(count: number): Promise<{ rssKiB: number; heapKiB: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-bench-partitions-"));
  const open = (name: string) =>
    Partition.open({
      topic: name,
      partition: 0,
      dir: path.join(dir, name),
      brokerId: "b1",
      log: { fsync: FSYNC, logger: silentLogger() },
      replicaLagMaxMs: 10_000,
      replicationTimeoutMs: 15_000,
      idempotencyWindow: 1024,
      maxProducers: 10_000,
      idempotencyScanRecords: 100_000,
      shipUnsynced: FSYNC === "interval",
      startFetcher: () => ({ stop: () => Promise.resolve() }),
      logger: silentLogger(),
    });
  const replicas = ["b1", "b2", "b3"].map((brokerId) => ({ brokerId, address: `${brokerId}:1` }));
  const all: Partition[] = [];
  try {
    for (let i = 0; i < 50; i++) all.push(await open(`warm-${i}`));
    collectGarbage();
    const before = process.memoryUsage();
    for (let i = 0; i < count; i++) {
      const p = await open(`idle-${i}`);
      p.applyRole({ role: "leader", epoch: 1, leader: replicas[0] as (typeof replicas)[number], replicas });
      all.push(p);
    }
    await sleep(500); // leadership set-up runs in the background
    collectGarbage();
    const after = process.memoryUsage();
    return {
      rssKiB: (after.rss - before.rss) / count / 1024,
      heapKiB: (after.heapUsed - before.heapUsed) / count / 1024,
    };
  } finally {
    await Promise.allSettled(all.map((p) => p.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

interface IdleResult {
  broker: string;
  cpuPercent: number;
  rssBytes: number;
  openFiles: number;
}

/** CPU over `seconds` with no traffic, then RSS and open files, of every broker process. */
async function measureIdle(cluster: TestCluster, seconds: number): Promise<IdleResult[]> {
  const brokers = [...cluster.brokers.values()];
  const before = brokers.map((b) => sampleProcess(b.process.pid as number));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsedMs = performance.now() - t0;
  return brokers.map((b, i) => {
    const after = sampleProcess(b.process.pid as number);
    return {
      broker: b.id,
      cpuPercent: (100 * (after.cpuMs - (before[i] as ProcSample).cpuMs)) / elapsedMs,
      rssBytes: after.rssBytes,
      openFiles: after.openFiles,
    };
  });
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i] as T);
      }
    }),
  );
  return out;
}

/** Creates topics (a few at a time, retried), returning where each partition's leader is. */
async function createTopics(cluster: TestCluster, names: string[], partitions: number): Promise<Placement[]> {
  const layouts = await pool(names, 8, async (topic) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await cluster
          .sentinel()
          .getBrokers({ topic, partitions, replicaCount: 3 }, { timeoutMs: 30_000 });
        return res.partitions.map((p) => ({ topic, partition: p.partition, leader: p.leader }));
      } catch (err) {
        // Creations beyond what the brokers can apply are refused as overload (retryable): wait it out.
        if (attempt >= 30) throw err;
        await sleep(Math.min(500 * attempt, 3_000));
      }
    }
  });
  return layouts.flat();
}

/** Waits until every broker serves `count` partition replicas (Health: led + followed). */
async function waitForReplicas(cluster: TestCluster, count: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await waitFor(
    async () => {
      for (const b of cluster.brokers.values()) {
        const h = await b.client.health({}, { timeoutMs: 10_000 });
        if (h.partitionsLed + h.partitionsFollowed < count) return false;
      }
      return true;
    },
    { timeoutMs, intervalMs: 500, what: `every broker to serve ${count} partition replicas` },
  );
  return (performance.now() - t0) / 1000;
}

/** Every SetTopicRole(s) call the brokers have answered (the sentinels push roles after creating topics). */
async function rolePushes(cluster: TestCluster): Promise<number> {
  let total = 0;
  for (const b of cluster.brokers.values()) {
    total += (await readMetric(b.url, "goulette_rpc_requests_total", { method: /^SetTopicRoles?$/ })) ?? 0;
  }
  return total;
}

/** User and system CPU of the broker processes so far, summed. */
function brokersCpu(cluster: TestCluster): { userMs: number; systemMs: number } {
  let userMs = 0;
  let systemMs = 0;
  for (const b of cluster.brokers.values()) {
    const cpu = processCpuSplitMs(b.process.pid);
    userMs += cpu.userMs;
    systemMs += cpu.systemMs;
  }
  return { userMs, systemMs };
}

/** What the produce runs report of the brokers: counters summed over every broker, and one gauge. */
interface BrokerCounters {
  /** fsyncs of partition logs. */
  fsyncs: number;
  /** Syncs of a data directory's filesystem (--interval-sync volume: one per interval covers every log). */
  volumeSyncs: number;
  /** Produce latency (request received → answered; every produce here is acks=all): seconds summed over records. */
  latencySeconds: number;
  latencyRecords: number;
  /** The same seconds split by stage: the leader's append, then the wait for the replicas. */
  appendSeconds: number;
  replicateSeconds: number;
  /** The replicate stage's cumulative histogram buckets, summed over the brokers: upper bound → count. */
  replicateBuckets: Buckets;
  /** The largest over the brokers of how long their oldest write not fsynced yet has waited (s). */
  oldestUnsyncedSeconds: number;
}

async function brokerCounters(cluster: TestCluster): Promise<BrokerCounters> {
  const total: BrokerCounters = {
    fsyncs: 0,
    volumeSyncs: 0,
    latencySeconds: 0,
    latencyRecords: 0,
    appendSeconds: 0,
    replicateSeconds: 0,
    replicateBuckets: new Map(),
    oldestUnsyncedSeconds: 0,
  };
  for (const b of cluster.brokers.values()) {
    // One scrape per broker (a scrape over thousands of partitions is not free).
    const text = await (await fetch(`${b.url}/metrics`)).text();
    const value = (name: string, labels: Record<string, string> = {}) => metricSum(text, name, labels) ?? 0;
    total.fsyncs += value("goulette_broker_fsync_duration_seconds_count");
    total.volumeSyncs += value("goulette_broker_volume_sync_duration_seconds_count");
    total.oldestUnsyncedSeconds = Math.max(
      total.oldestUnsyncedSeconds,
      value("goulette_broker_oldest_unsynced_write_seconds"),
    );
    total.latencySeconds += value("goulette_broker_produce_latency_seconds_sum");
    total.latencyRecords += value("goulette_broker_produce_latency_seconds_count");
    total.appendSeconds += value("goulette_broker_produce_stage_seconds_sum", { stage: "append" });
    total.replicateSeconds += value("goulette_broker_produce_stage_seconds_sum", { stage: "replicate" });
    addBuckets(
      total.replicateBuckets,
      histogramBuckets(text, "goulette_broker_produce_stage_seconds", { stage: "replicate" }),
    );
  }
  return total;
}

function quantiles(before: Buckets, after: Buckets): { replicateP50Ms?: number; replicateP99Ms?: number } {
  const p50 = bucketQuantile(before, after, 0.5);
  const p99 = bucketQuantile(before, after, 0.99);
  return {
    ...(p50 !== undefined ? { replicateP50Ms: p50 * 1000 } : {}),
    ...(p99 !== undefined ? { replicateP99Ms: p99 * 1000 } : {}),
  };
}

/**
 * One produce run with what the brokers and the load generator did meanwhile: fsyncs per second, each
 * broker's CPU (mean, user and system apart), the mean time a record spent at its leader, the generator's
 * CPU. The run's span of the monotonic clock goes to `window` (the CPU profiles are ranked over it). A run
 * that prepares first (the SDK's producer fetching its topics' metadata) calls `startMeasuring` when the
 * measured part begins; one that does not is measured from its start.
 */
async function measuredRun(
  cluster: TestCluster,
  run: (startMeasuring: () => Promise<void>) => Promise<ProduceResult>,
  window: ProfileWindow[],
): Promise<ProduceResult> {
  let before:
    | {
        counters: BrokerCounters;
        cpu: { userMs: number; systemMs: number };
        generator: NodeJS.CpuUsage;
        startUs: number;
      }
    | undefined;
  const startMeasuring = async () => {
    const counters = await brokerCounters(cluster);
    before = { counters, cpu: brokersCpu(cluster), generator: process.cpuUsage(), startUs: monotonicUs() };
  };
  const result = await run(startMeasuring);
  if (before === undefined) throw new Error("the produce run never started measuring");
  const { counters: countersBefore, cpu: cpuBefore, generator: generatorBefore, startUs } = before;
  const endUs = monotonicUs();
  const generator = process.cpuUsage(generatorBefore);
  const cpuAfter = brokersCpu(cluster);
  const countersAfter = await brokerCounters(cluster);
  window.push({ startUs, endUs });
  const seconds = (endUs - startUs) / 1e6;
  const records = countersAfter.latencyRecords - countersBefore.latencyRecords;
  const perRecordMs = (key: "latencySeconds" | "appendSeconds" | "replicateSeconds") =>
    (1000 * (countersAfter[key] - countersBefore[key])) / records;
  // ms of CPU per second of run → % of a core, per broker.
  const percentPerBroker = (ms: number) => ms / seconds / 10 / cluster.brokers.size;
  return {
    ...result,
    fsyncsPerSecond: (countersAfter.fsyncs - countersBefore.fsyncs) / seconds,
    volumeSyncsPerSecond: (countersAfter.volumeSyncs - countersBefore.volumeSyncs) / seconds,
    oldestUnsyncedSeconds: countersAfter.oldestUnsyncedSeconds,
    brokerCpu: {
      userPercent: percentPerBroker(cpuAfter.userMs - cpuBefore.userMs),
      systemPercent: percentPerBroker(cpuAfter.systemMs - cpuBefore.systemMs),
    },
    brokerLatencyMs: perRecordMs("latencySeconds"),
    brokerStageMs: { append: perRecordMs("appendSeconds"), replicate: perRecordMs("replicateSeconds") },
    ...quantiles(countersBefore.replicateBuckets, countersAfter.replicateBuckets),
    generatorCpuPercent: (generator.user + generator.system) / 1e4 / seconds,
  };
}

/** What the log line says of a run besides its rate. */
function describeRun(r: ProduceResult): string {
  return (
    (r.recordsPerRequest !== undefined ? ` (${fmt(r.recordsPerRequest)} records/request)` : "") +
    (r.producerInFlight !== undefined && r.producerQueued !== undefined
      ? ` [producer: ${fmt(r.producerInFlight)} in flight, ${fmt(r.producerQueued)} queued]`
      : "") +
    (r.fsyncsPerSecond !== undefined ? ` [${fmt(r.fsyncsPerSecond)} fsyncs/s]` : "") +
    (r.volumeSyncsPerSecond ? ` [${fmt(r.volumeSyncsPerSecond)} volume syncs/s]` : "") +
    (r.oldestUnsyncedSeconds !== undefined
      ? ` [oldest unsynced write ${fmt(r.oldestUnsyncedSeconds)} s at the end]`
      : "") +
    (r.brokerCpu
      ? ` [broker CPU ${fmt(r.brokerCpu.userPercent)} % user, ${fmt(r.brokerCpu.systemPercent)} % system]`
      : "") +
    (r.brokerLatencyMs !== undefined
      ? ` [at the leader ${fmt(r.brokerLatencyMs)} ms` +
        (r.brokerStageMs
          ? `: append ${fmt(r.brokerStageMs.append)}, replicas ${fmt(r.brokerStageMs.replicate)}`
          : "") +
        (r.replicateP50Ms !== undefined && r.replicateP99Ms !== undefined
          ? `; replicas p50 ${fmt(r.replicateP50Ms)}, p99 ${fmt(r.replicateP99Ms)}`
          : "") +
        "]"
      : "") +
    (r.generatorCpuPercent !== undefined ? ` [generator CPU ${fmt(r.generatorCpuPercent)} %]` : "") +
    (r.metadataSeconds !== undefined && r.metadataTopics !== undefined
      ? ` [before it: first send to each of ${r.metadataTopics.toLocaleString("en-US")} topics ${fmt(r.metadataSeconds)} s]`
      : "")
  );
}

/**
 * Waits until the sentinels stopped pushing roles (no SetTopicRole(s) call for 3 s): they push after
 * the brokers already learnt the roles from KeepAlive, and idle means no traffic at all.
 */
async function waitForQuiet(cluster: TestCluster, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  let last = await rolePushes(cluster);
  let quietSince = performance.now();
  while (performance.now() - quietSince < 3_000) {
    if (performance.now() - t0 > timeoutMs) break;
    await sleep(500);
    const now = await rolePushes(cluster);
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    }
  }
  return (performance.now() - t0) / 1000;
}

interface ProduceResult {
  partitions: number;
  recordsPerSecond: number;
  errors: number;
  /** The first failed send's error (sdk). */
  firstError?: string;
  /** Records per request the producer sent (sdk). */
  recordsPerRequest?: number;
  /** Records on the wire awaiting their acks, and records queued in the producer, on average (sdk). */
  producerInFlight?: number;
  producerQueued?: number;
  /** fsyncs of partition logs per second, the three brokers together. */
  fsyncsPerSecond?: number;
  /** Syncs of the brokers' data directories' filesystems per second, the three together. */
  volumeSyncsPerSecond?: number;
  /** At the end of the run, the longest any broker's oldest write not fsynced yet had waited (s). */
  oldestUnsyncedSeconds?: number;
  /** CPU of a broker process (mean of the three), % of a core: user and system (the kernel). */
  brokerCpu?: { userPercent: number; systemPercent: number };
  /** Mean time from a request's arrival at the leader to its answer, per record (ms). */
  brokerLatencyMs?: number;
  /** That time split: until the leader stored the records, then until the replicas had them (ms). */
  brokerStageMs?: { append: number; replicate: number };
  /** The wait for the replicas per record, median and 99th percentile (ms, from histogram buckets). */
  replicateP50Ms?: number;
  replicateP99Ms?: number;
  /** CPU of the load generator's process, % of a core. */
  generatorCpuPercent?: number;
  /** Before the run (not in it): the producer's first send to each topic, metadata and all (s; sdk). */
  metadataSeconds?: number;
  /** Topics the producer sent that first record to. */
  metadataTopics?: number;
}

/**
 * acks=all produce for `seconds`: one SendMessage stream per leader broker, WINDOW requests in flight,
 * each request RECORDS_PER_REQUEST records to the next partition that broker leads (round robin).
 */
async function produceSpread(
  cluster: TestCluster,
  placements: Placement[],
  seconds: number,
  /** Stop after this many rounds over each leader's partitions (default: only the time bounds it). */
  rounds = Number.POSITIVE_INFINITY,
): Promise<ProduceResult> {
  const byLeader = new Map<string, Placement[]>();
  for (const p of placements) byLeader.set(p.leader, [...(byLeader.get(p.leader) ?? []), p]);
  const payload = new Uint8Array(RECORD_BYTES).fill(97);
  const records = Array.from({ length: RECORDS_PER_REQUEST }, () => ({ messageId: 0n, payload }));
  let acked = 0;
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    [...byLeader].map(async ([leader, owned]) => {
      const client: Client<typeof BrokerService> = cluster.broker(leader).client;
      const requests = new Pushable<MessageRequest>();
      let next = 0;
      let inflight = 0;
      const send = () => {
        if (performance.now() >= deadline || next >= rounds * owned.length) return false;
        const p = owned[next++ % owned.length] as Placement;
        inflight++;
        requests.push(
          create(MessageRequestSchema, {
            topic: p.topic,
            partition: p.partition,
            acks: Acks.ALL,
            records,
          }),
        );
        return true;
      };
      for (let i = 0; i < WINDOW; i++) send();
      try {
        for await (const res of client.sendMessage(requests, { timeoutMs: seconds * 1000 + 60_000 })) {
          inflight--;
          for (const a of res.acks) {
            if (a.error === ProduceError.NONE) acked++;
            else errors++;
          }
          if (!send() && inflight === 0) requests.end();
        }
      } finally {
        requests.end();
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { partitions: placements.length, recordsPerSecond: acked / elapsed, errors };
}

/**
 * The SDK producer's settings are its defaults (an application's); PARTITIONS_SDK_PENDING sets its
 * waitForRoom bound (maxPendingMessages) and PARTITIONS_SDK_IN_FLIGHT its window (maxInFlightMessages),
 * to see how throughput over many partitions follows the records in flight.
 */
function sdkSettings(): { maxPendingMessages?: number; maxInFlightMessages?: number } {
  const read = (name: string) => {
    const raw = process.env[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: ${raw} is not a positive integer`);
    return n;
  };
  const pending = read("PARTITIONS_SDK_PENDING");
  const inFlight = read("PARTITIONS_SDK_IN_FLIGHT");
  return {
    ...(pending !== undefined ? { maxPendingMessages: pending } : {}),
    ...(inFlight !== undefined ? { maxInFlightMessages: inFlight } : {}),
  };
}

function describeSdkSettings(): string {
  const set = Object.entries(sdkSettings()).map(([name, value]) => `${name} ${value}`);
  return set.length > 0 ? ` but ${set.join(", ")}` : "";
}

/**
 * acks=all produce through the SDK's Producer for `seconds`: records of RECORD_BYTES sent round robin
 * over `placements` (explicit partitions; with `keyless`, over their topics, the producer's partitioner
 * choosing the partition), as an application would (waitForRoom, the producer's defaults unless
 * sdkSettings says otherwise): it batches and sends them (linger 5 ms, its window).
 */
async function produceSpreadSdk(
  cluster: TestCluster,
  placements: Placement[],
  seconds: number,
  variant: { window?: number; keyless?: boolean } = {},
  /** Called once the producer knows its topics, right before the measured sends. */
  startMeasuring?: () => Promise<void>,
): Promise<ProduceResult> {
  const { window, keyless = false } = variant;
  const producer = new Producer({
    sentinels: cluster.sentinelUrls,
    acks: "all",
    ...(window !== undefined ? { maxInFlightRequestsPerBroker: window } : {}),
    ...sdkSettings(),
    deliveryTimeoutMs: seconds * 1000 + 60_000,
  });
  const value = new Uint8Array(RECORD_BYTES).fill(97);
  let acked = 0;
  let errors = 0;
  let firstError: string | undefined;
  try {
    // Topic metadata first, so the measured window is produce only.
    const topics = [...new Set(placements.map((p) => p.topic))];
    const metadataStart = performance.now();
    await pool(topics, 8, (topic) =>
      producer.send({ topic, partition: 0, value }).catch((err: unknown) => {
        // Counted, not fatal: an overloaded cluster failing a send is a result too.
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }),
    );
    const metadataSeconds = (performance.now() - metadataStart) / 1000;
    await startMeasuring?.();
    const requestsBefore = producer.stats().requests;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    // Records in flight and waiting in the producer, sampled: which of its bounds holds the rate.
    const occupancy = { inFlight: 0, queued: 0, samples: 0 };
    const sampler = setInterval(() => {
      const stats = producer.stats();
      occupancy.inFlight += stats.inFlight;
      occupancy.queued += stats.pending - stats.inFlight;
      occupancy.samples++;
    }, 50);
    let next = 0;
    while (performance.now() < deadline) {
      await producer.waitForRoom();
      for (let i = 0; i < 256; i++) {
        const p = placements[next++ % placements.length] as Placement;
        producer
          .send(keyless ? { topic: p.topic, value } : { topic: p.topic, partition: p.partition, value })
          .then(
            () => void acked++,
            (err: unknown) => {
              errors++;
              firstError ??= err instanceof Error ? err.message : String(err);
            },
          );
      }
    }
    clearInterval(sampler);
    await producer.flush();
    const elapsed = (performance.now() - t0) / 1000;
    const requests = producer.stats().requests - requestsBefore;
    return {
      partitions: placements.length,
      recordsPerSecond: acked / elapsed,
      errors,
      recordsPerRequest: requests > 0 ? (acked + errors) / requests : 0,
      metadataSeconds,
      metadataTopics: topics.length,
      ...(occupancy.samples > 0
        ? {
            producerInFlight: occupancy.inFlight / occupancy.samples,
            producerQueued: occupancy.queued / occupancy.samples,
          }
        : {}),
      ...(firstError !== undefined ? { firstError } : {}),
    };
  } finally {
    await producer.close({ flush: false });
  }
}

interface StepResult {
  replicasPerBroker: number;
  topicsCreated: number;
  creationSeconds: number;
  idle: IdleResult[];
  /** Every repetition, the two variants back to back in alternating order, per load generator. */
  produce: { client: LoadGenerator; overThree: ProduceResult; overAll: ProduceResult }[];
}

interface BurstResult {
  topics: number;
  answered: number;
  failed: number;
  /** Retryable admission refusals (ResourceExhausted), each retried after a backoff. */
  refusals: number;
  firstError?: string;
  firstRefusal?: string;
  answeredSeconds: number;
  /** Until every broker served every burst partition; undefined when that did not happen in time. */
  servedSeconds?: number;
}

/**
 * BURST topics of 1 partition, RF 3, requested all at once. A creation the sentinel leader cannot
 * admit yet is refused with a retryable ResourceExhausted (its admission bound); each is retried as the
 * SDK retries it (jittered backoff from 250 ms, doubling up to 2 s) until a deadline of 120 s: those
 * refusals are counted apart, "failed" is what never got created.
 */
async function burst(cluster: TestCluster, topics: number, baseReplicas: number): Promise<BurstResult> {
  const names = Array.from({ length: topics }, (_, i) => `burst-${String(i).padStart(4, "0")}`);
  let failed = 0;
  let refusals = 0;
  let firstError: string | undefined;
  let firstRefusal: string | undefined;
  const t0 = performance.now();
  const deadline = t0 + 120_000;
  await Promise.all(
    names.map(async (topic) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await cluster
            .sentinel()
            .getBrokers(
              { topic, partitions: 1, replicaCount: 3 },
              { timeoutMs: Math.max(1, Math.floor(deadline - performance.now())) },
            );
          return;
        } catch (err) {
          const refused = err instanceof ConnectError && err.code === Code.ResourceExhausted;
          if (refused && performance.now() < deadline) {
            refusals++;
            firstRefusal ??= err.message;
            await sleep(backoffDelay(attempt, 250, 2_000));
            continue;
          }
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
          return;
        }
      }
    }),
  );
  const answeredSeconds = (performance.now() - t0) / 1000;
  let servedSeconds: number | undefined;
  if (failed === 0) {
    try {
      await waitForReplicas(cluster, baseReplicas + topics, 180_000);
      servedSeconds = (performance.now() - t0) / 1000;
    } catch {
      servedSeconds = undefined;
    }
  }
  return {
    topics,
    answered: topics - failed,
    failed,
    refusals,
    ...(firstError !== undefined ? { firstError } : {}),
    ...(firstRefusal !== undefined ? { firstRefusal } : {}),
    answeredSeconds,
    ...(servedSeconds !== undefined ? { servedSeconds } : {}),
  };
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const { phases, steps, clients } = focus(ctx.quick);
  const idleSeconds = ctx.quick ? 5 : 10;
  const produceSeconds = ctx.quick ? 3 : 5;
  const produceReps = ctx.quick ? 1 : 3;
  const burstTopics = ctx.quick ? QUICK_BURST_TOPICS : BURST_TOPICS;
  let memory = { rssKiB: Number.NaN, heapKiB: Number.NaN };
  if (phases.has("memory")) {
    ctx.log("memory of 2,000 idle partitions in this process");
    memory = await partitionMemory(2_000);
    ctx.log(`${fmt(memory.rssKiB)} KiB RSS, ${fmt(memory.heapKiB)} KiB JS heap per idle partition`);
  }
  ctx.log("starting etcd, 3 sentinels, 3 brokers");
  const profileDir = PROFILE ? await mkdtemp(path.join(tmpdir(), "goulette-partitions-prof-")) : undefined;
  const profileWindows = { three: [] as ProfileWindow[], all: [] as ProfileWindow[] };
  // The defaults of `goulette dev` (the test helper's are tuned for fast failure detection).
  const cluster = await startCluster({
    sentinels: 3,
    brokers: 3,
    nodeArgs: [...benchNodeArgs(), ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])],
    // A shared machine may be busy: give the processes time to come up.
    readyTimeoutMs: 60_000,
    sentinelArgs: [...DEPLOYED_SENTINEL_ARGS],
    brokerArgs: [
      ...DEPLOYED_BROKER_ARGS,
      "--fsync",
      FSYNC,
      ...(FSYNC_INTERVAL !== undefined ? ["--fsync-interval", FSYNC_INTERVAL] : []),
      ...(INTERVAL_SYNC !== undefined ? ["--interval-sync", INTERVAL_SYNC] : []),
    ],
  });
  const results: StepResult[] = [];
  let stepFailure: { replicasPerBroker: number; error: string } | undefined;
  let placements: Placement[] = [];
  let burstResult: BurstResult | undefined;
  const brokerPids = new Map<number, string>();
  try {
    for (const replicas of steps) {
      const topicsWanted = replicas / PARTITIONS_PER_TOPIC;
      const have = placements.length / PARTITIONS_PER_TOPIC;
      const names = Array.from(
        { length: topicsWanted - have },
        (_, i) => `scale-${String(have + i).padStart(4, "0")}`,
      );
      ctx.log(`creating ${names.length} topics (to ${replicas} partition replicas per broker)`);
      const t0 = performance.now();
      try {
        placements = placements.concat(await createTopics(cluster, names, PARTITIONS_PER_TOPIC));
        await waitForReplicas(cluster, replicas, 180_000);
      } catch (err) {
        // Recorded, not fatal: how the cluster fails at this size is a result too.
        stepFailure = {
          replicasPerBroker: replicas,
          error: err instanceof Error ? err.message : String(err),
        };
        ctx.log(`growing to ${replicas} partition replicas per broker failed: ${stepFailure.error}`);
        break;
      }
      const creationSeconds = (performance.now() - t0) / 1000;
      const quietSeconds = await waitForQuiet(cluster, 180_000);
      ctx.log(`served after ${fmt(creationSeconds)} s, role pushes over after ${fmt(quietSeconds)} s more`);
      let idle: IdleResult[] = [];
      if (phases.has("idle")) {
        ctx.log(`idle for ${idleSeconds} s`);
        idle = await measureIdle(cluster, idleSeconds);
        ctx.log(`idle CPU ${idle.map((r) => `${r.broker} ${fmt(r.cpuPercent)}%`).join(", ")}`);
      }
      const three = [...new Map(placements.map((p) => [p.leader, p])).values()];
      if (phases.has("produce")) {
        // Not measured: the first write of each new partition is also each follower's first record of
        // the leader's epoch (an epoch-history file written and fsynced once), a one-time cost of creation.
        ctx.log(`warm-up: one request to each of the ${placements.length} partitions`);
        const warm = await produceSpread(cluster, placements, 120, 1);
        if (warm.errors > 0) ctx.log(`warm-up: ${warm.errors} records failed`);
      }
      const produce: StepResult["produce"] = [];
      for (let rep = 0; rep < (phases.has("produce") ? produceReps : 0); rep++) {
        for (const client of clients) {
          // Alternating order, so a drift of the machine's load hits both variants alike.
          const first = rep % 2 === 0 ? three : placements;
          const second = rep % 2 === 0 ? placements : three;
          ctx.log(
            `produce (${client}) rep ${rep + 1}/${produceReps}: over ${first.length}, then ${second.length} partitions`,
          );
          const generate = (over: Placement[], startMeasuring: () => Promise<void>) =>
            client === "wire"
              ? startMeasuring().then(() => produceSpread(cluster, over, produceSeconds))
              : produceSpreadSdk(
                  cluster,
                  over,
                  produceSeconds,
                  client === "sdk-nowindow"
                    ? { window: NO_WINDOW }
                    : client === "sdk-keyless"
                      ? { keyless: true }
                      : {},
                  startMeasuring,
                );
          const timed = (over: Placement[]) =>
            measuredRun(
              cluster,
              (startMeasuring) => generate(over, startMeasuring),
              over === three ? profileWindows.three : profileWindows.all,
            );
          const a = await timed(first);
          const b = await timed(second);
          const run = rep % 2 === 0 ? { overThree: a, overAll: b } : { overThree: b, overAll: a };
          ctx.log(
            `${fmt(run.overThree.recordsPerSecond)}${describeRun(run.overThree)} vs ${fmt(run.overAll.recordsPerSecond)}${describeRun(run.overAll)} records/s`,
          );
          produce.push({ client, ...run });
        }
      }
      results.push({
        replicasPerBroker: replicas,
        topicsCreated: names.length,
        creationSeconds,
        idle,
        produce,
      });
    }
    if (phases.has("burst")) {
      ctx.log(`burst: ${burstTopics} topics at once`);
      burstResult = await burst(cluster, burstTopics, placements.length);
      ctx.log(
        `burst: ${burstResult.answered} created, ${burstResult.failed} failed, ${burstResult.refusals} refusals retried, in ${fmt(burstResult.answeredSeconds)} s`,
      );
    }
  } finally {
    if (profileDir) {
      // A clean exit writes the profile (SIGKILL, as stop() uses, would not).
      for (const id of [...cluster.brokers.keys()])
        brokerPids.set(cluster.broker(id).process.pid as number, id);
      for (const id of brokerPids.values()) await cluster.killBroker(id, "SIGTERM");
    }
    await cluster.stop();
  }
  const profiles = profileDir ? await readBrokerProfiles(profileDir, brokerPids, profileWindows) : [];

  const maxOf = (values: number[]) => Math.max(...values);
  const idleTable: Table = {
    title: "Idle brokers by partition replicas per broker (RF 3 on 3 brokers; max over the 3 brokers)",
    columns: ["replicas / broker", "idle CPU (% of a core)", "RSS", "open files", "created in"],
    rows: results
      .filter((r) => r.idle.length > 0)
      .map((r) => [
        fmt(r.replicasPerBroker),
        `${fmt(maxOf(r.idle.map((i) => i.cpuPercent)))} %`,
        fmtBytes(maxOf(r.idle.map((i) => i.rssBytes))),
        fmt(maxOf(r.idle.map((i) => i.openFiles))),
        `${fmt(r.creationSeconds)} s (${r.topicsCreated} topics)`,
      ]),
    notes: [
      `memory per idle partition (2,000 opened in the benchmark process on empty logs, each leading with 2 followers, after a full GC): ${fmt(memory.rssKiB)} KiB RSS, of which ${fmt(memory.heapKiB)} KiB JS heap`,
      `idle CPU measured over ${idleSeconds} s from /proc/<pid>/stat, once every replica took its role and the sentinels made no SetTopicRole(s) call for 3 s`,
      ...(stepFailure
        ? [
            `growing to ${fmt(stepFailure.replicasPerBroker)} replicas per broker failed: ${stepFailure.error}`,
          ]
        : []),
    ],
  };
  const produceSpreads = (runs: StepResult["produce"]) => ({
    three: spread(runs.map((p) => p.overThree.recordsPerSecond)),
    all: spread(runs.map((p) => p.overAll.recordsPerSecond)),
    ratio: spread(runs.map((p) => (100 * p.overAll.recordsPerSecond) / p.overThree.recordsPerSecond)),
    errors: runs.reduce((sum, p) => sum + p.overThree.errors + p.overAll.errors, 0),
  });
  const rate = (s: Spread) => fmtSpread(s, 3, " rec/s");
  const produceTable: Table = {
    title: `acks=all produce (--fsync ${FSYNC}) of ${RECORD_BYTES} B records`,
    columns: ["replicas / broker", "client", "over 3 partitions", "over every partition", "ratio", "errors"],
    rows: results.flatMap((r) =>
      clients
        .map((client) => ({ client, runs: r.produce.filter((p) => p.client === client) }))
        .filter(({ runs }) => runs.length > 0)
        .map(({ client, runs }) => {
          const p = produceSpreads(runs);
          return [
            fmt(r.replicasPerBroker),
            client,
            rate(p.three),
            rate(p.all),
            fmtSpread(p.ratio, 3, " %"),
            String(p.errors),
          ];
        }),
    ),
    notes: [
      `wire: ${RECORDS_PER_REQUEST} records per SendMessage request (one partition), ${WINDOW} requests in flight per leader, round robin over the partitions; sdk: the SDK's Producer, records round robin over the partitions, its defaults${describeSdkSettings()} (sdk-nowindow: no bound on requests in flight per broker; sdk-keyless: the same producer naming only the topic, its partitioner choosing the partition)`,
      `median (min–max) of ${produceReps} repetitions of ${produceSeconds} s each variant, back to back in alternating order; the ratio is taken per repetition`,
    ],
  };
  const burstTable: Table = {
    title: `${burstResult?.topics ?? burstTopics} topics (1 partition, RF 3) created at once, on top of the last step`,
    columns: [
      "created",
      "failed",
      "refused, retried",
      "all answered after",
      "all served by the brokers after",
    ],
    rows: burstResult
      ? [
          [
            fmt(burstResult.answered),
            fmt(burstResult.failed),
            fmt(burstResult.refusals),
            `${fmt(burstResult.answeredSeconds)} s`,
            burstResult.servedSeconds !== undefined ? `${fmt(burstResult.servedSeconds)} s` : "—",
          ],
        ]
      : [],
    notes: [
      "a refusal (ResourceExhausted: the leader's admission bound) is retried as the SDK does, jittered backoff from 250 ms to 2 s",
      ...(burstResult?.firstError ? [`first error: ${burstResult.firstError}`] : []),
      ...(burstResult?.firstRefusal ? [`first refusal: ${burstResult.firstRefusal}`] : []),
    ],
  };
  return {
    tables: [idleTable, produceTable, burstTable, ...profiles.flatMap(profileTables)],
    settings: {
      steps,
      phases: [...phases],
      partitionsPerTopic: PARTITIONS_PER_TOPIC,
      idleSeconds,
      produceSeconds,
      produceReps,
      recordBytes: RECORD_BYTES,
      recordsPerRequest: RECORDS_PER_REQUEST,
      window: WINDOW,
      clients,
      sdk: sdkSettings(),
      burstTopics,
      fsync: FSYNC,
      ...(FSYNC_INTERVAL !== undefined ? { fsyncIntervalMs: Number(FSYNC_INTERVAL) } : {}),
    },
    data: {
      memoryPerIdlePartition: memory,
      steps: results,
      stepFailure,
      burst: burstResult,
      ...(profiles.length > 0 ? { profiles } : {}),
    },
    notes: [
      "every process of the cluster (etcd, 3 sentinels, 3 brokers) and the load generator share this machine",
    ],
  };
}

interface BrokerProfile {
  broker: string;
  overAll: ProfileSummary;
  overThree: ProfileSummary;
}

/** Each broker's profile (named CPU.<date>.<time>.<pid>.….cpuprofile), ranked over both kinds of run. */
async function readBrokerProfiles(
  dir: string,
  pids: ReadonlyMap<number, string>,
  windows: { three: ProfileWindow[]; all: ProfileWindow[] },
): Promise<BrokerProfile[]> {
  const out: BrokerProfile[] = [];
  try {
    for (const file of (await readdir(dir)).sort()) {
      const pid = profilePid(file);
      const broker = pids.get(pid);
      if (broker === undefined) continue;
      const profile = JSON.parse(await readFile(path.join(dir, file), "utf8")) as CpuProfile;
      out.push({
        broker,
        overAll: summariseProfile(profile, windows.all, 25),
        overThree: summariseProfile(profile, windows.three, 25),
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out.sort((a, b) => a.broker.localeCompare(b.broker));
}

function profileTables(p: BrokerProfile): Table[] {
  const busy = (s: ProfileSummary) => s.totalMs - s.idleMs;
  const note = (s: ProfileSummary) =>
    `busy ${fmt(busy(s))} of ${fmt(s.totalMs)} ms; by area: ${s.byArea
      .slice(0, 6)
      .map((a) => `${a.frame} ${fmt(a.percent, 2)}%`)
      .join(", ")}`;
  const rows = (frames: ProfileSummary["self"]) =>
    frames.map((f) => [f.frame, f.area, fmt(f.ms), `${fmt(f.percent, 2)}%`]);
  return [
    {
      title: `Broker ${p.broker} under produce over every partition: top frames by self time`,
      columns: ["frame", "area", "self ms", "share of busy"],
      rows: rows(p.overAll.self),
      notes: [note(p.overAll), `over 3 partitions: ${note(p.overThree)}`],
    },
    {
      title: `Broker ${p.broker} under produce over every partition: goulette functions by inclusive time`,
      columns: ["function", "area", "ms", "share of busy"],
      rows: rows(p.overAll.inclusive),
      notes: [],
    },
  ];
}

export const partitionsBenchmark: Benchmark = {
  name: "partitions",
  description:
    "idle CPU/RSS/open files of brokers at 300–3,000 partition replicas, spread produce, topic burst",
  run,
};
