import { create, toBinary } from "@bufbuild/protobuf";
import { GetBrokersResponseSchema, type GetBrokersResponse } from "../src/gen/goulette/v1/sentinel_pb.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { threadCpuMs, processCpuMs } from "./lib/cpu.js";
import { startEtcd } from "./lib/etcd.js";
import { createLoadGenerator, type LoadResult, type LoadTarget } from "./lib/load.js";
import { startConnectNoop, startGouletteNoop, startGrpcJsNoop, type NoopServer } from "./lib/noop-servers.js";
import { registerBrokers, startLeaderSentinel } from "./lib/sentinel.js";
import { ratioSpread, spread } from "./lib/stats.js";
import { startStubBroker } from "./lib/stub-broker.js";
import { fmt, fmtSpread, type Table } from "./lib/table.js";

const TOPIC = "orders";
const BROKERS = 5;
const PARTITIONS = 3;
const REPLICAS = 3;
const CONCURRENCY = [1, 16, 64, 256];

type TargetName =
  | "sentinel"
  | "sentinel-fast"
  | "sentinel-fast-lean"
  | "noop"
  | "noop-full"
  | "connect-noop"
  | "grpc-js-noop"
  | "etcd-get";
const TARGETS: { name: TargetName; label: string }[] = [
  { name: "sentinel", label: "sentinel GetBrokers" },
  { name: "sentinel-fast", label: "sentinel GetBrokers (fast path)" },
  { name: "sentinel-fast-lean", label: "sentinel GetBrokers (fast path, SDK lean client)" },
  { name: "noop", label: "no-op handler (empty response)" },
  { name: "noop-full", label: "no-op handler (same response)" },
  { name: "connect-noop", label: "bare connect-node no-op (same response)" },
  { name: "grpc-js-noop", label: "grpc-js server no-op (same response)" },
  { name: "etcd-get", label: "raw etcd3 get" },
];

interface Run extends LoadResult {
  /** CPU of the process side serving the request: the main thread (sentinel, no-op) or etcd. */
  serverCpuMs: number;
}

/**
 * GetBrokers read path of one sentinel (answered from its applied state) side by side with a raw etcd3
 * get of the same topic key and with a no-op handler served by the same startRpcServer stack. Sentinel and
 * no-op server run on this process's main thread; the load comes from a worker thread over gRPC/HTTP/2;
 * targets take turns within each repetition so machine noise hits all of them alike.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  // 8 targets × 4 concurrencies × reps: 600 ms phases keep the whole benchmark near 2.5 minutes.
  const durationMs = ctx.quick ? 400 : 600;
  const warmupMs = 100; // clients and connections stay open across runs: this only re-warms the JIT
  const etcd = await startEtcd();
  const stub = await startStubBroker();
  const load = createLoadGenerator();
  // Through connect-node (the fast path off), and on the gRPC fast path: two leaders, each its own prefix.
  const { sentinel, client } = await startLeaderSentinel(etcd.client(), { grpcFastPath: false });
  const fast = await startLeaderSentinel(etcd.client(), {
    id: "bench-sentinel-fast",
    etcdPrefix: "/goulette-fast",
  });
  const EMPTY = create(GetBrokersResponseSchema);
  let canned: GetBrokersResponse = EMPTY;
  const servers: NoopServer[] = [];
  const start = async (starter: typeof startGouletteNoop) => {
    const server = await starter((req) => (req.topic === TOPIC ? canned : EMPTY));
    servers.push(server);
    return server;
  };
  const runs = new Map<string, Run[]>();
  try {
    const noop = await start(startGouletteNoop);
    const connectNoop = await start(startConnectNoop);
    const grpcJsNoop = await start(startGrpcJsNoop);
    await registerBrokers(client, BROKERS, stub.address);
    await registerBrokers(fast.client, BROKERS, stub.address);
    canned = await client.getBrokers({ topic: TOPIC, replicaCount: REPLICAS, partitions: PARTITIONS });
    await fast.client.getBrokers({ topic: TOPIC, replicaCount: REPLICAS, partitions: PARTITIONS });
    const responseBytes = toBinary(GetBrokersResponseSchema, canned).length;
    const noopUrl = noop.url;
    const sameResponse = (url: string): LoadTarget => ({
      kind: "getBrokers",
      url,
      topics: [TOPIC],
      replicaCount: REPLICAS,
      partitions: 0,
    });
    const targets: Record<TargetName, LoadTarget> = {
      sentinel: {
        kind: "getBrokers",
        url: sentinel.url,
        topics: [TOPIC],
        replicaCount: REPLICAS,
        partitions: 0,
      },
      "sentinel-fast": {
        kind: "getBrokers",
        url: fast.sentinel.url,
        topics: [TOPIC],
        replicaCount: REPLICAS,
        partitions: 0,
      },
      "sentinel-fast-lean": {
        kind: "getBrokers",
        client: "lean",
        url: fast.sentinel.url,
        topics: [TOPIC],
        replicaCount: REPLICAS,
        partitions: 0,
      },
      noop: { kind: "getBrokers", url: noopUrl, topics: ["noop"], replicaCount: REPLICAS, partitions: 0 },
      "noop-full": sameResponse(noopUrl),
      "connect-noop": sameResponse(connectNoop.url),
      "grpc-js-noop": sameResponse(grpcJsNoop.url),
      "etcd-get": { kind: "etcdGet", endpoint: etcd.endpoint, keys: [`/goulette/topics/${TOPIC}`] },
    };
    for (const concurrency of CONCURRENCY) {
      for (let rep = 0; rep < ctx.reps; rep++) {
        // Rotate the order each repetition: no target always runs first (cold) or last.
        const order = TARGETS.map((_, i) => TARGETS[(i + rep) % TARGETS.length] as (typeof TARGETS)[number]);
        for (const target of order) {
          const serverCpu = () =>
            target.name === "etcd-get" ? processCpuMs(etcd.process.pid) : threadCpuMs();
          const before = serverCpu();
          const result = await load.run({
            target: targets[target.name],
            concurrency,
            warmupMs,
            warmupRequests: 100_000,
            durationMs,
            maxRequests: 500_000,
            callTimeoutMs: 10_000,
          });
          const key = `${target.name}@${concurrency}`;
          const list = runs.get(key) ?? [];
          list.push({ ...result, serverCpuMs: serverCpu() - before });
          runs.set(key, list);
        }
      }
      const s = runs.get(`sentinel@${concurrency}`) ?? [];
      ctx.log(`  ${concurrency} in flight: sentinel ${fmt(spread(s.map((r) => r.rps)).median)} req/s`);
    }

    const rows: string[][] = [];
    const summaryRows: string[][] = [];
    const layerRows: string[][] = [];
    const errorNotes: string[] = [];
    for (const concurrency of CONCURRENCY) {
      const get = (name: TargetName) => runs.get(`${name}@${concurrency}`) ?? [];
      const rps = (name: TargetName) => get(name).map((r) => r.rps);
      for (const target of TARGETS) {
        const list = get(target.name);
        const errors = list.reduce((n, r) => n + r.errors, 0);
        if (errors > 0)
          errorNotes.push(
            `${target.label} at ${concurrency}: ${errors} errors (${list.find((r) => r.firstError)?.firstError})`,
          );
        rows.push([
          String(concurrency),
          target.label,
          fmtSpread(spread(rps(target.name))),
          fmtSpread(spread(list.map((r) => r.p50Ms))),
          fmtSpread(spread(list.map((r) => r.p99Ms))),
          `${fmt(spread(list.map((r) => (100 * r.serverCpuMs) / r.elapsedMs)).median, 2)}%`,
          `${fmt(spread(list.map((r) => (100 * r.clientCpuMs) / r.elapsedMs)).median, 2)}%`,
          fmt(spread(list.map((r) => (1000 * r.serverCpuMs) / Math.max(1, r.requests))).median),
          fmt(spread(list.map((r) => (1000 * r.clientCpuMs) / Math.max(1, r.requests))).median),
          target.name === "noop" ? "1" : fmtSpread(ratioSpread(rps(target.name), rps("noop")), 2),
          target.name === "etcd-get" ? "1" : fmtSpread(ratioSpread(rps(target.name), rps("etcd-get")), 2),
        ]);
      }
      const vsNoop = ratioSpread(rps("sentinel"), rps("noop"));
      const vsFull = ratioSpread(rps("sentinel"), rps("noop-full"));
      const vsEtcd = ratioSpread(rps("sentinel"), rps("etcd-get"));
      const fastVsEtcd = ratioSpread(rps("sentinel-fast"), rps("etcd-get"));
      const leanVsEtcd = ratioSpread(rps("sentinel-fast-lean"), rps("etcd-get"));
      const clientUs = (name: TargetName) =>
        get(name).map((r) => (1000 * r.clientCpuMs) / Math.max(1, r.requests));
      const leanCpuVsEtcd = ratioSpread(clientUs("sentinel-fast-lean"), clientUs("etcd-get"));
      summaryRows.push([
        String(concurrency),
        fmtSpread(vsNoop, 2),
        fmtSpread(vsFull, 2),
        fmtSpread(vsEtcd, 2),
        fmtSpread(fastVsEtcd, 2),
        fmtSpread(ratioSpread(rps("sentinel-fast"), rps("sentinel")), 2),
        fmtSpread(leanVsEtcd, 2),
        fmtSpread(ratioSpread(clientUs("sentinel-fast-lean"), clientUs("sentinel-fast")), 2),
        fmtSpread(leanCpuVsEtcd, 2),
        vsNoop.median >= 0.8 ? "yes" : "no",
        leanVsEtcd.median >= 1 ? "yes" : "no",
        leanCpuVsEtcd.median <= 1 ? "yes" : "no",
      ]);
      const ratio = (a: TargetName, b: TargetName) => fmtSpread(ratioSpread(rps(a), rps(b)), 2);
      layerRows.push([
        String(concurrency),
        ratio("sentinel", "noop-full"),
        ratio("noop-full", "connect-noop"),
        ratio("connect-noop", "grpc-js-noop"),
        ratio("grpc-js-noop", "etcd-get"),
        fmtSpread(vsEtcd, 2),
      ]);
    }
    const tables: Table[] = [
      {
        title: "GetBrokers read path vs no-op handler vs raw etcd get (gRPC over HTTP/2, one connection)",
        columns: [
          "in flight",
          "target",
          "req/s",
          "p50 ms",
          "p99 ms",
          "server CPU",
          "client CPU",
          "server µs/req",
          "client µs/req",
          "× no-op",
          "× etcd get",
        ],
        rows,
        notes: [
          `median (min–max) of ${ctx.reps} runs of ${durationMs} ms each after ${warmupMs} ms warm-up; ratios are per run (same repetition), then the median`,
          "server CPU: the main thread's CPU (sentinel or no-op server) or the etcd process's, as % of one core; client CPU: the load worker thread's; µs/req: that CPU per request",
          `topic '${TOPIC}': ${PARTITIONS} partitions × ${REPLICAS} replicas over ${BROKERS} brokers; response ${responseBytes} bytes of protobuf`,
          "sentinel GetBrokers: served through connect-node (grpcFastPath off); (fast path): the same handler and interceptors on the gRPC fast path (src/server/grpc-fast-path.ts)",
          "every row's client is connect-node's gRPC client (createGrpcTransport) except (SDK lean client): the SDK's sentinel transport (src/client/node.ts → grpc-unary-client.ts) and raw etcd3 get: the etcd3 client (grpc-js)",
        ],
      },
      {
        title:
          "GetBrokers goals: ≥ 0.8 × no-op handler; fast path with the SDK's lean client ≥ 1 × raw etcd get, its client CPU per call ≤ etcd3's",
        columns: [
          "in flight",
          "sentinel / no-op (empty)",
          "sentinel / no-op (same response)",
          "sentinel / etcd get",
          "fast path / etcd get",
          "fast path / Connect path",
          "fast path, lean client / etcd get",
          "lean ÷ Connect client µs/req",
          "lean ÷ etcd3 client µs/req",
          "≥ 0.8 × no-op",
          "lean ≥ 1 × etcd",
          "lean client ≤ etcd3's",
        ],
        rows: summaryRows,
      },
      {
        title:
          "Where the gap to etcd is: each layer's throughput ÷ the next one down (same 402-byte answer, same client)",
        columns: [
          "in flight",
          "sentinel ÷ goulette no-op",
          "goulette no-op ÷ bare connect-node",
          "bare connect-node ÷ grpc-js server",
          "grpc-js server ÷ etcd get",
          "product: sentinel ÷ etcd get",
        ],
        rows: layerRows,
        notes: [
          "sentinel: its GetBrokers handler and interceptors; goulette no-op: startRpcServer (request guard, shared HTTP/1.1+HTTP/2 port); bare connect-node: connectNodeAdapter on http2.createServer; grpc-js server: @grpc/grpc-js (etcd3's stack), same protobuf encoding; etcd get: a Go server, and the etcd3 client (grpc-js) instead of the Connect client",
        ],
      },
    ];
    return {
      tables,
      settings: {
        topic: TOPIC,
        brokers: BROKERS,
        partitions: PARTITIONS,
        replicas: REPLICAS,
        concurrency: CONCURRENCY,
        durationMs,
        warmupMs,
        responseBytes,
      },
      data: Object.fromEntries(runs),
      notes: errorNotes,
    };
  } finally {
    await load.close();
    for (const server of servers) await server.close();
    await sentinel.stop();
    await fast.sentinel.stop();
    await stub.stop();
    await etcd.stop();
  }
}

export const getBrokersBenchmark: Benchmark = {
  name: "getbrokers",
  description: "GetBrokers read path vs a no-op handler vs a raw etcd get, at 1/16/64/256 in flight",
  run,
};
