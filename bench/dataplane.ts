import { tmpdir } from "node:os";
import { startCluster } from "../test/helpers/cluster.js";
import { benchNodeArgs } from "./lib/node-args.js";
import { Acks, createGouletteTarget } from "./dataplane-goulette.js";
import { diskWriteSyncRate, loopbackBytesPerSecond, type DiskRate } from "./dataplane-ceiling.js";
import { createNatsTarget, createRedisTarget } from "./dataplane-peers.js";
import { profileProduce } from "./dataplane-profile.js";
import type { QueueTarget } from "./dataplane-target.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { startNats, startRedis } from "./lib/peers.js";
import { ratioSpread, spread, summariseLatencies, type Spread } from "./lib/stats.js";
import { fmt, fmtSpread, type Table } from "./lib/table.js";
import { DEPLOYED_BROKER_ARGS, DEPLOYED_SENTINEL_ARGS } from "./lib/deployed-timings.js";

/**
 * Data plane side by side: Goulette (3 brokers, acks=leader on RF 1, acks=all on RF 3) vs NATS JetStream
 * (file storage) vs Redis Streams (AOF), at 100 B / 1 KiB / 64 KiB, fsync interval-class and always;
 * produce and consume throughput, end-to-end latency, the machine's ceiling, and a broker CPU profile.
 */
type Durability = "interval" | "always";

interface Measured {
  system: string;
  durability: Durability;
  size: number;
  produceMsgs: number[];
  produceBytes: number[];
  consumeMsgs: number[];
  consumeBytes: number[];
}

interface LatencyMeasured {
  system: string;
  durability: Durability;
  p50: number[];
  p99: number[];
  samples: number[];
}

const SIZES = [100, 1024, 64 * 1024];
/** Broker CPU profiles taken after the measurements: (record size, workload). */
const PROFILES: Array<[number, "produce" | "consume"]> = [
  [1024, "produce"],
  [1024, "consume"],
  [64 * 1024, "produce"],
  [64 * 1024, "consume"],
];
type BrokerProfile = Awaited<ReturnType<typeof profileProduce>>;
const MB = 1e6;

/** Rows a filtered run measures; everything when no filter is set. */
interface Filter {
  sizes: number[];
  fsyncs: Durability[];
  /** leader, pull, gzip, all, redis, nats; connect on request */
  systems: Set<string>;
  latency: boolean;
  profiles: Array<[number, "produce" | "consume"]>;
  /**
   * Unmeasured produce-and-consume repetitions per system and size before the measured ones, and
   * unmeasured latency runs per system.
   */
  warmups: number;
}

const ALL_SYSTEMS = ["leader", "pull", "gzip", "all", "redis", "nats"];
/** Measured when named: acks=leader through connect-node's stream client instead of the SDK's lean one. */
const OPT_IN_SYSTEMS = ["connect"];

/**
 * A focused run (before/after comparisons while working on one row) from the environment, as run.ts takes
 * no per-benchmark flags: DATAPLANE_SIZES=1024,65536 DATAPLANE_FSYNC=interval
 * DATAPLANE_SYSTEMS=leader,redis,nats DATAPLANE_LATENCY=0 DATAPLANE_PROFILES=65536:produce (or "none");
 * DATAPLANE_BROKER_ARGS="--no-grpc-fast-path" adds flags to every broker (a variant to compare);
 * DATAPLANE_SYSTEMS=leader,connect compares the SDK's lean stream client with connect-node's (in the
 * order named: connect,leader measures connect first); DATAPLANE_WARMUPS=0 measures from the first
 * repetition (default 1 unmeasured repetition per system and size, and per system for latency).
 */
function filterFromEnv(env: NodeJS.ProcessEnv): Filter {
  const list = (name: string): string[] | undefined =>
    env[name]
      ?.split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  const sizes = list("DATAPLANE_SIZES")?.map(Number) ?? SIZES;
  for (const size of sizes) {
    if (!SIZES.includes(size)) throw new Error(`DATAPLANE_SIZES: ${size} is not one of ${SIZES.join(", ")}`);
  }
  const fsyncs = (list("DATAPLANE_FSYNC") ?? ["interval", "always"]) as Durability[];
  for (const f of fsyncs) {
    if (f !== "interval" && f !== "always") throw new Error(`DATAPLANE_FSYNC: unknown policy ${f}`);
  }
  const systems = list("DATAPLANE_SYSTEMS") ?? ALL_SYSTEMS;
  for (const s of systems) {
    if (!ALL_SYSTEMS.includes(s) && !OPT_IN_SYSTEMS.includes(s))
      throw new Error(
        `DATAPLANE_SYSTEMS: ${s} is not one of ${[...ALL_SYSTEMS, ...OPT_IN_SYSTEMS].join(", ")}`,
      );
  }
  const profileList = list("DATAPLANE_PROFILES");
  const profiles =
    profileList === undefined
      ? PROFILES
      : profileList
          .filter((p) => p !== "none")
          .map((p): [number, "produce" | "consume"] => {
            const [size, workload = "produce"] = p.split(":");
            if (workload !== "produce" && workload !== "consume") {
              throw new Error(`DATAPLANE_PROFILES: unknown workload ${workload}`);
            }
            return [Number(size), workload];
          });
  const warmups = Number(env.DATAPLANE_WARMUPS ?? 1);
  if (!Number.isSafeInteger(warmups) || warmups < 0) {
    throw new Error(`DATAPLANE_WARMUPS: ${env.DATAPLANE_WARMUPS} is not a whole number ≥ 0`);
  }
  return {
    sizes,
    fsyncs,
    systems: new Set(systems),
    latency: env.DATAPLANE_LATENCY !== "0",
    profiles,
    warmups,
  };
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const filter = filterFromEnv(process.env);
  const reps = Math.max(3, ctx.quick ? 3 : Math.min(ctx.reps, 3));
  const runMs = ctx.quick ? 400 : 1_500;
  const scale = ctx.quick ? 0.25 : 1;
  const counts = new Map([
    [100, Math.round(300_000 * scale)],
    [1024, Math.round(150_000 * scale)],
    [64 * 1024, Math.round(4_000 * scale)],
  ]);
  const latencySize = 1024;
  const latencyIntervalMs = 2;
  const latencyMs = ctx.quick ? 700 : 2_000;
  const fsyncIntervalMs = 1_000;
  const results: Measured[] = [];
  const latencies: LatencyMeasured[] = [];

  // --- the physical ceiling
  ctx.log("ceiling: loopback TCP and disk write+fdatasync");
  const loopback: number[] = [];
  const disk4k: DiskRate[] = [];
  const disk1m: DiskRate[] = [];
  for (let r = 0; r < reps; r++) {
    loopback.push(await loopbackBytesPerSecond(ctx.quick ? 500 : 1_500));
    disk4k.push(diskWriteSyncRate(tmpdir(), 4096, ctx.quick ? 300 : 1_000));
    disk1m.push(diskWriteSyncRate(tmpdir(), 1024 * 1024, ctx.quick ? 300 : 1_000));
  }
  const loopbackSpread = spread(loopback);

  const measure = async (target: QueueTarget, system: string, durability: Durability) => {
    for (const size of filter.sizes) {
      const m: Measured = {
        system,
        durability,
        size,
        produceMsgs: [],
        produceBytes: [],
        consumeMsgs: [],
        consumeBytes: [],
      };
      // Every system gets the same unmeasured start: the first repetition on a new server (code not yet
      // optimised, buffers and pages not yet reused) measures the start, not the steady state.
      for (let w = 0; w < filter.warmups; w++) {
        await target.produce(size, counts.get(size) as number, runMs);
        await target.consume();
      }
      for (let r = 0; r < reps; r++) {
        const p = await target.produce(size, counts.get(size) as number, runMs);
        const c = await target.consume();
        m.produceMsgs.push(p.messages / p.seconds);
        m.produceBytes.push(p.bytes / p.seconds);
        m.consumeMsgs.push(c.messages / c.seconds);
        m.consumeBytes.push((c.messages * size) / c.seconds);
      }
      ctx.log(
        `  ${system} ${durability} ${size} B: produce ${fmt(spread(m.produceMsgs).median)} msg/s, consume ${fmt(spread(m.consumeMsgs).median)} msg/s`,
      );
      results.push(m);
    }
    if (!filter.latency) return;
    const l: LatencyMeasured = { system, durability, p50: [], p99: [], samples: [] };
    // The same unmeasured start for latency: a one-record path warms over its first seconds (the
    // broker's JIT, the client's) — docs/benchmarks.md, Tail latency: waiting for a CPU.
    for (let w = 0; w < filter.warmups; w++) await target.latency(latencySize, latencyIntervalMs, latencyMs);
    for (let r = 0; r < reps; r++) {
      const samples = await target.latency(latencySize, latencyIntervalMs, latencyMs);
      const s = summariseLatencies(samples);
      l.p50.push(s.p50Ms);
      l.p99.push(s.p99Ms);
      l.samples.push(s.count);
    }
    latencies.push(l);
  };

  // --- Goulette: one cluster per fsync policy
  const goulette = ["leader", "connect", "pull", "gzip", "all"].some((s) => filter.systems.has(s));
  for (const fsync of goulette ? filter.fsyncs : []) {
    ctx.log(`Goulette fsync=${fsync}: 1 sentinel, 3 brokers`);
    const cluster = await startCluster({
      sentinels: 1,
      brokers: 3,
      // A busy shared machine can take longer than the default 20 s to start three brokers.
      readyTimeoutMs: 90_000,
      // A deployed cluster's liveness timings, not the test helper's (whose background work the
      // latency runs would measure too).
      sentinelArgs: [...DEPLOYED_SENTINEL_ARGS],
      brokerArgs: [
        ...DEPLOYED_BROKER_ARGS,
        "--fsync",
        fsync,
        "--fsync-interval",
        String(fsyncIntervalMs),
        ...(process.env.DATAPLANE_BROKER_ARGS?.split(" ").filter(Boolean) ?? []),
      ],
      nodeArgs: benchNodeArgs(),
    });
    try {
      const rf1 = await cluster.createTopic("bench-rf1", { partitions: 1, replicas: 1 });
      const rf3 = await cluster.createTopic("bench-rf3", { partitions: 1, replicas: 3 });
      const leaderOf = (layout: typeof rf1) => cluster.brokerAddress(layout.partitions[0]?.leader as string);
      // As the SDK does: no gzip/brotli negotiated with brokers, consume with FetchMessages (batches).
      // acks=leader through the SDK's lean stream client ("leader") and through connect-node's
      // ("connect"), in the order DATAPLANE_SYSTEMS names them: the first measured has an emptier log.
      const clients = [...filter.systems].filter((s) => s === "leader" || s === "connect");
      for (const client of clients) {
        const lean = client === "leader";
        const target = createGouletteTarget({
          label: lean ? "leader" : "leader, Connect's client",
          leaderAddress: leaderOf(rf1),
          topic: "bench-rf1",
          acks: Acks.LEADER,
          compression: false,
          leanStreams: lean,
        });
        const title = lean
          ? "Goulette acks=leader (RF 1)"
          : "Goulette acks=leader (RF 1), connect-node's stream client";
        await measure(target, title, fsync);
        await target.close();
      }
      if (fsync === "interval" && filter.systems.has("pull")) {
        // The same with PullMessage (one stream message per record, the API before FetchMessages), and
        // with a client that negotiates gzip (connect-node's default): what each costs.
        const pull = createGouletteTarget({
          label: "leader, PullMessage",
          leaderAddress: leaderOf(rf1),
          topic: "bench-rf1",
          acks: Acks.LEADER,
          compression: false,
          consumeApi: "pull",
        });
        await measure(pull, "Goulette acks=leader (RF 1), consume with PullMessage", fsync);
        await pull.close();
      }
      if (fsync === "interval" && filter.systems.has("gzip")) {
        const gzip = createGouletteTarget({
          label: "leader, gzip",
          leaderAddress: leaderOf(rf1),
          topic: "bench-rf1",
          acks: Acks.LEADER,
          compression: true,
        });
        await measure(gzip, "Goulette acks=leader (RF 1), client negotiating gzip", fsync);
        await gzip.close();
      }
      const all = createGouletteTarget({
        label: "all",
        leaderAddress: leaderOf(rf3),
        topic: "bench-rf3",
        acks: Acks.ALL,
        compression: false,
      });
      if (filter.systems.has("all")) await measure(all, "Goulette acks=all (RF 3)", fsync);
      await all.close();
    } finally {
      await cluster.stop();
    }
  }

  // --- Redis Streams: appendfsync everysec ~ fsync=interval (1 s), always ~ fsync=always
  for (const fsync of filter.systems.has("redis") ? filter.fsyncs : []) {
    const appendfsync = fsync === "interval" ? "everysec" : "always";
    ctx.log(`Redis appendfsync=${appendfsync}`);
    const redis = await startRedis({ appendfsync });
    try {
      const target = await createRedisTarget({ label: "redis", port: redis.port, key: "bench" });
      await measure(target, `Redis Streams (appendfsync ${appendfsync})`, fsync);
      await target.close();
    } finally {
      await redis.stop();
    }
  }

  // --- NATS JetStream: one durability setting only (see the notes)
  if (filter.systems.has("nats")) {
    ctx.log("NATS JetStream (file storage)");
    const nats = await startNats();
    try {
      const target = await createNatsTarget({ label: "nats", port: nats.port, stream: "bench" });
      await measure(target, "NATS JetStream (file, default sync)", "interval");
      await target.close();
    } finally {
      await nats.stop();
    }
  }

  // --- CPU profiles of the broker hot paths
  const profileMs = ctx.quick ? 2_000 : 5_000;
  const profiles: BrokerProfile[] = [];
  for (const [size, workload] of filter.profiles) {
    ctx.log(`CPU profile of a broker under ${sizeLabel(size)} acks=leader ${workload} load`);
    // A failed profile must not throw away the measurements above.
    const prof = await profileProduce(size, profileMs, workload).catch((err: unknown) => {
      ctx.log(`profile FAILED: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    });
    if (prof) profiles.push(prof);
  }

  return {
    tables: buildTables({ results, latencies, loopbackSpread, disk4k, disk1m, profiles, reps, runMs }),
    settings: {
      reps,
      warmups: filter.warmups,
      runMs,
      counts: Object.fromEntries(counts),
      sizes: filter.sizes,
      filter: { ...filter, systems: [...filter.systems] },
      goulette: { brokers: 3, fsyncIntervalMs, window: 8, batchBytes: 256 * 1024, maxRecordsPerRequest: 500 },
      peers: { window: 256 },
      latency: { size: latencySize, intervalMs: latencyIntervalMs, durationMs: latencyMs },
      profiles: { runs: filter.profiles, durationMs: profileMs },
    },
    data: {
      ceiling: { loopbackBytesPerSecond: loopback, disk4k, disk1m },
      results,
      latencies,
      profiles,
    },
    notes: [
      "Goal: ahead of NATS JetStream and Redis Streams on produce and consume throughput at equal durability. See docs/benchmarks.md (Data plane) for where it is not, and why.",
      "Every system starts each produce run empty: Redis DELs its stream key, NATS purges its stream, Goulette deletes the partition's records (DeleteRecords). On this VM page-cache pages the guest has not used lately cost a host fault, so a log that kept growing would pay for memory the others reuse (docs/benchmarks.md, 64 KiB produce: the page cache).",
      "NATS 2.9.10 (Debian) has no sync_interval / sync always option: JetStream's file store fsyncs on its own schedule (every 2 min in 2.9), so its row is weaker durability than either Goulette row against a machine crash; it is shown in both tables, unchanged.",
    ],
  };
}

interface TableInput {
  results: Measured[];
  latencies: LatencyMeasured[];
  loopbackSpread: Spread;
  disk4k: DiskRate[];
  disk1m: DiskRate[];
  profiles: BrokerProfile[];
  reps: number;
  runMs: number;
}

function sizeLabel(size: number): string {
  return size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

function buildTables(input: TableInput): Table[] {
  const { results, latencies, loopbackSpread, disk4k, disk1m, profiles } = input;
  const disk1mBytes = spread(disk1m.map((d) => d.bytesPerSecond));
  const mb = (values: number[]) => {
    const s = spread(values.map((v) => v / MB));
    return fmtSpread(s);
  };
  const pct = (values: number[], limit: number) => `${fmt((100 * spread(values).median) / limit, 2)}%`;
  const tables: Table[] = [
    {
      title: "Data plane: the ceiling of this machine",
      columns: ["limit", "median (min–max)"],
      rows: [
        ["loopback TCP, 64 KiB writes, process → process (MB/s)", mb(input.loopbackSpread.runs)],
        ["disk: 4 KiB write + fdatasync (ops/s)", fmtSpread(spread(disk4k.map((d) => d.opsPerSecond)))],
        ["disk: 4 KiB write + fdatasync (MB/s)", mb(disk4k.map((d) => d.bytesPerSecond))],
        ["disk: 1 MiB write + fdatasync (ops/s)", fmtSpread(spread(disk1m.map((d) => d.opsPerSecond)))],
        ["disk: 1 MiB write + fdatasync (MB/s)", mb(disk1m.map((d) => d.bytesPerSecond))],
      ],
      notes: [
        "MB = 10^6 bytes. The disk rates are measured in the temp dir where every broker, Redis and NATS keep their data.",
      ],
    },
  ];
  for (const durability of ["interval", "always"] as const) {
    const rows: string[][] = [];
    for (const size of SIZES) {
      const group = results.filter(
        (r) => r.size === size && (r.durability === durability || r.system.startsWith("NATS")),
      );
      for (const r of group) {
        rows.push([
          sizeLabel(size),
          r.system,
          fmtSpread(spread(r.produceMsgs)),
          mb(r.produceBytes),
          pct(r.produceBytes, loopbackSpread.median),
          durability === "always" ? pct(r.produceBytes, disk1mBytes.median) : "",
          fmtSpread(spread(r.consumeMsgs)),
          mb(r.consumeBytes),
        ]);
      }
    }
    tables.push({
      title:
        durability === "interval"
          ? "Produce and consume, periodic fsync (Goulette --fsync interval 1 s, Redis everysec, NATS default)"
          : "Produce and consume, fsync before the ack (Goulette --fsync always, Redis appendfsync always)",
      columns: [
        "size",
        "system",
        "produce msg/s",
        "produce MB/s",
        "% loopback",
        durability === "always" ? "% disk 1 MiB+fsync" : "",
        "consume msg/s",
        "consume MB/s",
      ],
      rows,
      notes: [
        `median (min–max) of ${input.reps} runs; each produce run stops at its message count or after ${input.runMs} ms; consume reads that run's messages from the start`,
      ],
    });
  }
  // Ratios per run: Goulette acks=leader over each peer at the same size and durability class.
  const ratioRows: string[][] = [];
  for (const durability of ["interval", "always"] as const) {
    for (const size of SIZES) {
      const g = results.find(
        (r) => r.size === size && r.durability === durability && r.system.startsWith("Goulette acks=leader"),
      );
      if (!g) continue;
      for (const peer of results.filter(
        (r) =>
          r.size === size &&
          !r.system.startsWith("Goulette") &&
          (r.durability === durability || r.system.startsWith("NATS")),
      )) {
        ratioRows.push([
          durability,
          sizeLabel(size),
          peer.system,
          `${fmtSpread(ratioSpread(g.produceMsgs, peer.produceMsgs), 2)}×`,
          `${fmtSpread(ratioSpread(g.consumeMsgs, peer.consumeMsgs), 2)}×`,
        ]);
      }
    }
  }
  tables.push({
    title: "Goulette acks=leader ÷ peer (> 1 = Goulette ahead)",
    columns: ["fsync", "size", "peer", "produce", "consume"],
    rows: ratioRows,
    notes: ["ratio of run i of Goulette to run i of the peer, same size and settings, same session"],
  });
  tables.push({
    title: `End-to-end latency, 1 KiB, one message every 2 ms (produce stamp → consumer receipt)`,
    columns: ["system", "fsync", "p50 ms", "p99 ms", "samples/run"],
    rows: latencies.map((l) => [
      l.system,
      l.durability,
      fmtSpread(spread(l.p50)),
      fmtSpread(spread(l.p99)),
      fmt(spread(l.samples).median),
    ]),
    notes: [
      "producer and consumer in the benchmark process (one clock); Goulette reads with a long-poll FetchMessages stream, NATS an ordered consumer, Redis XREAD BLOCK",
    ],
  });
  for (const prof of profiles) {
    const busy = prof.summary.totalMs - prof.summary.idleMs;
    const workload = prof.workload ?? "produce";
    const what = `Broker ${workload} hot path (${sizeLabel(prof.size)}, acks=leader, fsync=interval${workload === "consume" ? ", FetchMessages" : ""})`;
    tables.push({
      title: `${what}: top frames by self time`,
      columns: ["frame", "area", "ms", "% of busy"],
      rows: prof.summary.self.map((f) => [f.frame, f.area, fmt(f.ms), `${fmt(f.percent, 2)}%`]),
      notes: [
        `${fmt(prof.load.messages / prof.load.seconds)} msg/s during ${fmt(prof.load.seconds)} s; broker main thread busy ${fmt(busy)} of ${fmt(prof.summary.totalMs)} ms, ${fmt((busy * 1000) / Math.max(1, prof.load.messages), 3)} µs CPU per message`,
        `by area: ${prof.summary.byArea
          .slice(0, 8)
          .map((a) => `${a.frame} ${fmt(a.percent, 2)}%`)
          .join(", ")}`,
      ],
    });
    tables.push({
      title: `${what}: goulette functions by inclusive time`,
      columns: ["frame", "area", "ms", "% of busy"],
      rows: prof.summary.inclusive.map((f) => [f.frame, f.area, fmt(f.ms), `${fmt(f.percent, 2)}%`]),
    });
  }
  return tables;
}

export const dataplaneBenchmark: Benchmark = {
  name: "dataplane",
  description: "produce/consume/e2e latency vs NATS JetStream and Redis Streams, ceiling, broker CPU profile",
  run,
};
