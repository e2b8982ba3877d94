import { performance } from "node:perf_hooks";
import { createKeyspace } from "../src/coordination/keyspace.js";
import { planNewTopic } from "../src/fsm/planner.js";
import { silentLogger } from "../src/observability/logger.js";
import { createRegistry, createSentinelMetrics } from "../src/observability/metrics.js";
import type { ControlPlane } from "../src/sentinel/control-plane.js";
import { createEtcdControlPlane } from "../src/sentinel/etcd-control-plane.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { startEtcd } from "./lib/etcd.js";
import { collectGarbage } from "./lib/gc.js";
import { createLoadGenerator } from "./lib/load.js";
import { stopPlane } from "./lib/plane.js";
import { runSequential, type SequentialResult } from "./lib/sequential.js";
import { registerBrokers, startLeaderSentinel } from "./lib/sentinel.js";
import { ratioSpread, spread, summariseLatencies } from "./lib/stats.js";
import { startStubBroker } from "./lib/stub-broker.js";
import { fmt, fmtSpread, type Table } from "./lib/table.js";
import { waitFor } from "./lib/wait.js";

const BROKERS = 5;
const PARTITIONS = 3;
const REPLICAS = 3;
/** Writers in flight in the concurrent variants (group commit batches what queues behind a txn). */
const CONCURRENCY = 16;

type Variant =
  | "getbrokers-create"
  | "propose"
  | "propose-bare"
  | "raw-txn"
  | "getbrokers-create-concurrent"
  | "propose-concurrent"
  | "propose-bare-concurrent"
  | "raw-txn-concurrent";
const SEQUENTIAL: { name: Variant; label: string }[] = [
  { name: "getbrokers-create", label: "GetBrokers creating a topic (RPC → propose → fenced txn → apply)" },
  { name: "propose", label: "ControlPlane.propose(generateTopicReplicas) on the sentinel" },
  {
    name: "propose-bare",
    label: "ControlPlane.propose on a bare ControlPlane (no RPC server, no role notifications)",
  },
  { name: "raw-txn", label: "raw etcd txn: 2 compares, 3 puts of the same sizes" },
];
const CONCURRENT: { name: Variant; label: string }[] = [
  { name: "getbrokers-create-concurrent", label: "GetBrokers creating a topic" },
  { name: "propose-concurrent", label: "ControlPlane.propose on the sentinel" },
  { name: "propose-bare-concurrent", label: "ControlPlane.propose on a bare ControlPlane" },
  {
    name: "raw-txn-concurrent",
    label:
      "raw etcd txn: fence compare, 3 puts of the same sizes (no head compare: concurrent txns cannot share one)",
  },
];
const VARIANTS = [...SEQUENTIAL, ...CONCURRENT];

interface Row {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  firstError?: string;
}

/**
 * Op-log append rate on the leader, sequential (each append waits for the previous one: the leader
 * serialises its writes), beside a raw etcd transaction of the same shape and sizes: the fence and head
 * compares, then puts of the head, an operation and a topic key. Variants take turns in every repetition.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  const durationMs = ctx.quick ? 800 : 2_000;
  const maxOps = 5_000;
  const warmupOps = 20;
  const etcd = await startEtcd();
  const stub = await startStubBroker();
  const load = createLoadGenerator();
  // No periodic snapshot during the measurement: this is the append path alone. Nor admission: every
  // role push goes to the one stub broker and trails the creations by design, so the role-push backlog
  // cap would refuse GetBrokers creations (ResourceExhausted) and measure admission instead of appends.
  const { sentinel, client } = await startLeaderSentinel(etcd.client(), {
    snapshotEvery: 1_000_000_000,
    maxPendingRolePushes: Number.MAX_SAFE_INTEGER,
    maxPendingTopicCreations: Number.MAX_SAFE_INTEGER,
  });
  const raw = etcd.client();
  const keys = createKeyspace("/goulette");
  const runs = new Map<Variant, Row[]>();
  try {
    await registerBrokers(client, BROKERS, stub.address);
    const plane = sentinel.plane;
    // Sizes for the raw txn: one real operation and topic value as the leader writes them.
    await client.getBrokers({ topic: "size-probe-topic", replicaCount: REPLICAS, partitions: PARTITIONS });
    const opValue = (await raw.get(keys.operation(plane.state.appliedId)).string()) ?? "";
    const topicValue = (await raw.get(keys.topic("size-probe-topic")).string()) ?? "";
    const fence = raw.lease(60);
    const fenceKey = "/bench/raw/fence";
    await fence.put(fenceKey).value("bench");
    // The raw baselines write the operation log's own key layout, under prefixes of their own.
    const rawKeys = createKeyspace("/bench/raw");
    const rawConcurrentKeys = createKeyspace("/bench/raw-concurrent");
    const rawHead = rawKeys.head;
    let head = 0;
    const rawTxn = async (i: number) => {
      const next = head + 1;
      const compare =
        head === 0
          ? raw.if(fenceKey, "Create", ">", 0).and(rawHead, "Version", "==", 0)
          : raw.if(fenceKey, "Create", ">", 0).and(rawHead, "Value", "==", String(head));
      const res = await compare
        .then(
          raw.put(rawHead).value(String(next)),
          raw.put(rawKeys.operation(next)).value(opValue),
          raw.put(rawKeys.topic(`raw-${i}`)).value(topicValue),
        )
        .commit();
      if (!res.succeeded) throw new Error("raw txn compare failed");
      head = next;
    };
    let rawConcurrentId = 0;
    const rawTxnConcurrent = async (i: number) => {
      const next = ++rawConcurrentId;
      const res = await raw
        .if(fenceKey, "Create", ">", 0)
        .then(
          raw.put(rawConcurrentKeys.head).value(String(next)),
          raw.put(rawConcurrentKeys.operation(next)).value(opValue),
          raw.put(rawConcurrentKeys.topic(`raw-${i}`)).value(topicValue),
        )
        .commit();
      if (!res.succeeded) throw new Error("raw txn compare failed");
    };
    // A bare ControlPlane leading its own keyspace on the same etcd: the propose path without the
    // sentinel around it (no RPC server, no SetTopicRole notifications to brokers after each append).
    const bareClient = etcd.client();
    const bare = createEtcdControlPlane({
      id: "bare",
      url: "http://127.0.0.1:1",
      etcd: bareClient,
      keys: createKeyspace("/bare"),
      logger: silentLogger(),
      metrics: createSentinelMetrics(createRegistry()),
      virtualNodes: 150,
      snapshotEvery: 1_000_000_000,
      electionTtlSeconds: 5,
    });
    await bare.start();
    await waitFor(() => bare.isLeader, { timeoutMs: 20_000, what: "the bare ControlPlane to lead" });
    for (let b = 0; b < BROKERS; b++) {
      await bare.propose(() => ({
        type: "registerBroker",
        data: { brokerId: `broker-${b}`, address: stub.address },
      }));
    }
    const proposeTopic = (plane: ControlPlane, topic: string) =>
      plane.propose(() =>
        planNewTopic(plane.state, plane.ring, { topic, partitions: PARTITIONS, replicaCount: REPLICAS }),
      );
    for (let rep = 0; rep < ctx.reps; rep++) {
      const order = VARIANTS.map(
        (_, i) => VARIANTS[(i + rep) % VARIANTS.length] as (typeof VARIANTS)[number],
      );
      for (const variant of order) {
        collectGarbage();
        let row: Row;
        const concurrent = variant.name.endsWith("-concurrent");
        const concurrency = concurrent ? CONCURRENCY : 1;
        if (variant.name.startsWith("getbrokers-create")) {
          const r = await load.run({
            target: {
              kind: "getBrokers",
              url: sentinel.url,
              topics: [],
              replicaCount: REPLICAS,
              partitions: PARTITIONS,
              uniquePrefix: `${variant.name}-${rep}`,
            },
            concurrency,
            warmupMs: 5_000,
            warmupRequests: warmupOps,
            durationMs,
            maxRequests: maxOps,
            callTimeoutMs: 10_000,
          });
          row = {
            opsPerSecond: r.rps,
            p50Ms: r.p50Ms,
            p99Ms: r.p99Ms,
            errors: r.errors,
            ...(r.firstError ? { firstError: r.firstError } : {}),
          };
        } else if (variant.name.startsWith("propose")) {
          const target = variant.name.startsWith("propose-bare") ? bare : plane;
          const op = (i: number) => proposeTopic(target, `${variant.name}-${rep}-${i}`);
          const options = { warmupOps, durationMs, maxOps };
          const r = concurrent
            ? await runConcurrent(op, CONCURRENCY, options)
            : await runSequential(op, options);
          row = { ...r, ...(r.firstError ? { firstError: r.firstError } : {}) };
        } else {
          const options = { warmupOps, durationMs, maxOps };
          const r = concurrent
            ? await runConcurrent(rawTxnConcurrent, CONCURRENCY, options)
            : await runSequential(rawTxn, options);
          row = { ...r };
        }
        const list = runs.get(variant.name) ?? [];
        list.push(row);
        runs.set(variant.name, list);
      }
      ctx.log(
        `  rep ${rep + 1}/${ctx.reps}: ${VARIANTS.map((v) => `${v.name} ${fmt(runs.get(v.name)?.at(-1)?.opsPerSecond ?? 0)}/s`).join(", ")}`,
      );
    }
    await fence.revoke();
    await stopPlane(bare, bareClient, "append: bare ControlPlane");

    const ops = (v: Variant) => (runs.get(v) ?? []).map((r) => r.opsPerSecond);
    const rowsOf = (variants: typeof VARIANTS, rawName: Variant) =>
      variants.map((v) => {
        const list = runs.get(v.name) ?? [];
        return [
          v.label,
          fmtSpread(spread(ops(v.name))),
          fmtSpread(spread(list.map((r) => r.p50Ms))),
          fmtSpread(spread(list.map((r) => r.p99Ms))),
          v.name === rawName ? "1" : fmtSpread(ratioSpread(ops(v.name), ops(rawName)), 2),
        ];
      });
    const notes = [...runs.entries()].flatMap(([name, list]) => {
      const errors = list.reduce((n, r) => n + r.errors, 0);
      return errors > 0 ? [`${name}: ${errors} errors (${list.find((r) => r.firstError)?.firstError})`] : [];
    });
    const proposeRatio = ratioSpread(ops("propose"), ops("raw-txn"));
    const bareRatio = ratioSpread(ops("propose-bare"), ops("raw-txn"));
    const rpcRatio = ratioSpread(ops("getbrokers-create"), ops("raw-txn"));
    const met = (ratio: number) => `${fmt(ratio, 2)} (${ratio >= 0.5 ? "met" : "not met"})`;
    const tables: Table[] = [
      {
        title: "Op-log append (sequential) vs a raw etcd txn of the same shape",
        columns: ["variant", "ops/s", "p50 ms", "p99 ms", "× raw txn"],
        rows: rowsOf(SEQUENTIAL, "raw-txn"),
        notes: [
          `median (min–max) of ${ctx.reps} runs of ${durationMs} ms (or ${maxOps} ops) after ${warmupOps} warm-up ops; ratios per run, then the median`,
          `operation ${opValue.length} B + topic ${topicValue.length} B + head; etcd on the local disk (one fsync per txn); ${BROKERS} brokers, ${PARTITIONS} partitions × ${REPLICAS} replicas per topic`,
          `goal: append ≥ 0.5 × raw txn — sentinel propose ${met(proposeRatio.median)}, bare propose ${met(bareRatio.median)}, through GetBrokers ${met(rpcRatio.median)}`,
          "the sentinel also pushes the 9 roles of each new topic with SetTopicRoles (one call per broker per turn; here every broker is the one stub, so about one call per topic) after the operation is applied, off the write path; the bare ControlPlane does not",
        ],
      },
      {
        title: `Op-log append with ${CONCURRENCY} writers in flight vs raw etcd txns with ${CONCURRENCY} in flight`,
        columns: ["variant", "ops/s", "p50 ms", "p99 ms", "× raw txn"],
        rows: rowsOf(CONCURRENT, "raw-txn-concurrent"),
        notes: [
          `same runs and sizes as above, ${CONCURRENCY} calls in flight; the leader commits the operations queued behind a transaction together in the next one (group commit), each still its own key`,
          `goal: append ≥ 0.5 × raw txn — sentinel propose ${met(ratioSpread(ops("propose-concurrent"), ops("raw-txn-concurrent")).median)}, bare propose ${met(ratioSpread(ops("propose-bare-concurrent"), ops("raw-txn-concurrent")).median)}, through GetBrokers ${met(ratioSpread(ops("getbrokers-create-concurrent"), ops("raw-txn-concurrent")).median)}`,
        ],
      },
    ];
    return {
      tables,
      settings: {
        durationMs,
        maxOps,
        warmupOps,
        brokers: BROKERS,
        partitions: PARTITIONS,
        replicas: REPLICAS,
        concurrency: CONCURRENCY,
        operationBytes: opValue.length,
        topicBytes: topicValue.length,
        snapshotEvery: "off",
      },
      data: Object.fromEntries(runs),
      notes,
    };
  } finally {
    await load.close();
    await sentinel.stop();
    await stub.stop();
    await etcd.stop();
  }
}

/** Keeps `concurrency` calls of `op(i)` in flight, timing each; the measured phase as in runSequential. */
async function runConcurrent(
  op: (i: number) => Promise<unknown>,
  concurrency: number,
  options: { warmupOps: number; durationMs: number; maxOps: number },
): Promise<SequentialResult> {
  let i = 0;
  await Promise.all(Array.from({ length: options.warmupOps }, () => op(i++)));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const begin = performance.now();
  const deadline = begin + options.durationMs;
  const worker = async () => {
    while (latencies.length < options.maxOps && performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await op(i++);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - begin;
  return {
    ...summariseLatencies(latencies),
    ops: latencies.length,
    errors,
    elapsedMs,
    opsPerSecond: ((latencies.length - errors) * 1000) / elapsedMs,
    ...(firstError ? { firstError } : {}),
  };
}

export const appendBenchmark: Benchmark = {
  name: "append",
  description:
    "Op-log append rate on the leader (GetBrokers creating topics, ControlPlane.propose) vs a raw etcd txn",
  run,
};
