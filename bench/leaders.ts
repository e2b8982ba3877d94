import type { Command, Operation } from "../src/fsm/operations.js";
import { leaderCounts } from "../src/fsm/leader-balance.js";
import { planNewTopic } from "../src/fsm/planner.js";
import { ClusterState } from "../src/fsm/state.js";
import { createHashRing } from "../src/ring/hash-ring.js";
import { partitionKey } from "../src/ring/placement.js";
import { Producer } from "../src/index.js";
import { startCluster, type TopicLayout } from "../test/helpers/cluster.js";
import { waitFor } from "../test/helpers/wait.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { spread as spreadOf } from "./lib/stats.js";
import { fmt, fmtSpread, type Table } from "./lib/table.js";

const SHAPES = [
  { brokers: 3, partitions: 3 },
  { brokers: 6, partitions: 6 },
  { brokers: 10, partitions: 30 },
] as const;

interface ShapeResult {
  brokers: number;
  partitions: number;
  topics: number;
  /** Topics where some broker leads more than its fair share, ceil(partitions / brokers). */
  ringOrderSkewed: number;
  balancedSkewed: number;
  ringOrderWorst: number;
  balancedWorst: number;
}

/** Max − min partitions led per broker of the topic (brokers holding no replica of it not counted). */
function leaderSpread(partitions: ReadonlyArray<{ replicas: readonly string[] }>): number {
  const counts = [...leaderCounts(partitions).values()];
  return Math.max(...counts) - Math.min(...counts);
}

/** The most partitions one broker leads. */
function mostLed(partitions: ReadonlyArray<{ replicas: readonly string[] }>): number {
  return Math.max(...leaderCounts(partitions).values());
}

/**
 * Leadership spread within topics: the ring's first broker as leader (placement before leaders were
 * balanced) against the planner's balanced choice, over the same replica sets, for many topic names.
 * Pure computation: no cluster runs.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  const topics = ctx.quick ? 300 : 2_000;
  const results: ShapeResult[] = [];
  for (const shape of SHAPES) {
    const state = new ClusterState();
    for (let i = 0; i < shape.brokers; i++) {
      const command: Command = {
        type: "registerBroker",
        data: { brokerId: `broker-${i}`, address: `h:${i}` },
      };
      state.apply({ ...command, id: i + 1, timestamp: 0, leaderId: "bench" } as Operation);
    }
    const ring = createHashRing({ brokers: state.ringMembers() });
    const result: ShapeResult = {
      ...shape,
      topics,
      ringOrderSkewed: 0,
      balancedSkewed: 0,
      ringOrderWorst: 0,
      balancedWorst: 0,
    };
    for (let t = 0; t < topics; t++) {
      const topic = `topic-${t}`;
      const ringOrder = Array.from({ length: shape.partitions }, (_, p) => ({
        replicas: ring.pick(partitionKey(topic, p), 3),
      }));
      const command = planNewTopic(state, ring, { topic, partitions: shape.partitions, replicaCount: 3 });
      const balanced = command.type === "generateTopicReplicas" ? command.data.partitions : [];
      const fairShare = Math.ceil(shape.partitions / shape.brokers);
      const before = leaderSpread(ringOrder);
      const after = leaderSpread(balanced);
      if (mostLed(ringOrder) > fairShare) result.ringOrderSkewed++;
      if (mostLed(balanced) > fairShare) result.balancedSkewed++;
      result.ringOrderWorst = Math.max(result.ringOrderWorst, before);
      result.balancedWorst = Math.max(result.balancedWorst, after);
    }
    ctx.log(`${shape.partitions} partitions on ${shape.brokers} brokers: done`);
    results.push(result);
  }
  const pct = (n: number) => `${fmt((100 * n) / topics, 2)} %`;
  const throughput = await measureThroughput(ctx);
  return {
    tables: [
      throughput.table,
      {
        title:
          "Partition leaders within a topic (RF 3): share of topics where a broker leads more than its share",
        columns: ["shape", "topics", "ring order (before)", "balanced (now)", "worst spread before → now"],
        rows: results.map((r) => [
          `${r.partitions} partitions, ${r.brokers} brokers`,
          String(r.topics),
          pct(r.ringOrderSkewed),
          pct(r.balancedSkewed),
          `${r.ringOrderWorst} → ${r.balancedWorst}`,
        ]),
        notes: [
          "Same replica sets on both sides (the ring's); only who leads differs. Spread = max − min partitions led per broker holding a replica of the topic.",
        ],
      },
    ],
    settings: { topics, shapes: SHAPES, replicaCount: 3, throughput: throughput.settings },
    data: { placement: results, throughput: throughput.data },
    notes: [],
  };
}

const leaderCount = (layout: TopicLayout) => {
  const counts = new Map<string, number>();
  for (const p of layout.partitions) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
  return counts;
};
const describeLayout = (layout: TopicLayout) =>
  [...leaderCount(layout)]
    .sort()
    .map(([id, n]) => `${id}:${n}`)
    .join(" ");

/**
 * Single-topic produce throughput (SDK Producer, acks=all, RF 3, 1 KiB, keyed over all partitions) on 3
 * brokers, with leaders piled up against spread out. The piled-up layout is what a failover leaves
 * when leadership is never handed back (`--leader-balance-interval 0`, one broker killed and restarted:
 * it returns as a follower of everything); the spread one is the same cluster shape with the hand-back
 * on. Both clusters run in this one process, one after the other.
 */
async function measureThroughput(ctx: BenchContext) {
  const messages = ctx.quick ? 4_000 : 20_000;
  const reps = ctx.quick ? 1 : 3;
  const payload = "x".repeat(1024);
  const rows: string[][] = [];
  const data: Array<{ partitions: number; layout: string; balanced: boolean; rates: number[] }> = [];
  for (const partitions of [3, 6]) {
    for (const balanced of [false, true]) {
      const cluster = await startCluster({
        brokers: 3,
        sentinelArgs: ["--heartbeat-ttl", "3", "--leader-balance-interval", balanced ? "500" : "0"],
        brokerArgs: ["--fsync", "interval"],
      });
      try {
        const topic = `throughput-${partitions}`;
        const created = await cluster.createTopic(topic, { partitions, replicas: 3 });
        const victim = created.partitions[0]!.leader;
        await cluster.killBroker(victim);
        await waitFor(
          async () => (await cluster.layout(topic)).partitions.every((p) => p.leader !== victim),
          { what: "the failover", timeoutMs: 30_000 },
        );
        await cluster.restartBroker(victim);
        const layout = await waitFor(
          async () => {
            const now = await cluster.layout(topic);
            const full = now.partitions.every((p) => p.replicas.length === 3);
            const spreadOut = Math.max(...leaderCount(now).values()) <= Math.ceil(partitions / 3);
            return full && (!balanced || spreadOut) ? now : undefined;
          },
          { what: "the layout to settle", timeoutMs: 60_000 },
        );
        const rates: number[] = [];
        const producer = new Producer({ sentinels: cluster.sentinelUrls, topic, acks: "all" });
        try {
          for (let rep = 0; rep < reps + 1; rep++) {
            const started = performance.now();
            const sends: Promise<unknown>[] = [];
            for (let i = 0; i < messages; i++)
              sends.push(producer.send({ key: `k-${i % 600}`, value: payload }));
            await Promise.all(sends);
            // The first round warms connections and JIT: not counted.
            if (rep > 0) rates.push(messages / ((performance.now() - started) / 1000));
          }
        } finally {
          await producer.close();
        }
        const shown = describeLayout(layout);
        ctx.log(
          `${partitions} partitions, leaders ${shown}: ${rates.map((r) => Math.round(r)).join(", ")} msg/s`,
        );
        data.push({ partitions, layout: shown, balanced, rates });
        rows.push([
          `${partitions}`,
          balanced ? "spread (handed back)" : "piled up (no hand-back)",
          shown,
          fmtSpread(spreadOf(rates), 3),
        ]);
      } finally {
        await cluster.stop();
      }
    }
  }
  const table: Table = {
    title: "One topic, 3 brokers: produce throughput with leaders piled up vs spread (acks=all, RF 3, 1 KiB)",
    columns: ["partitions", "leaders", "partitions led per broker", "msg/s, median (min–max)"],
    rows,
    notes: [
      `${messages} messages per round, ${reps} rounds after a warm-up round; SDK Producer (batched, idempotent), keys over all partitions; --fsync interval.`,
    ],
  };
  return { table, data, settings: { messages, reps, payloadBytes: 1024 } };
}

export const leadersBenchmark: Benchmark = {
  name: "leaders",
  description:
    "partition leadership within topics: ring order vs balanced (pure), and one topic's produce throughput piled up vs spread",
  run,
};
