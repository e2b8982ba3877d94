import type { Command, Operation } from "../src/fsm/operations.js";
import { leaderCounts } from "../src/fsm/leader-balance.js";
import { planNewTopic } from "../src/fsm/planner.js";
import { ClusterState } from "../src/fsm/state.js";
import { createHashRing } from "../src/ring/hash-ring.js";
import { partitionKey } from "../src/ring/placement.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { fmt } from "./lib/table.js";

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
function spread(partitions: ReadonlyArray<{ replicas: readonly string[] }>): number {
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
      const before = spread(ringOrder);
      const after = spread(balanced);
      if (mostLed(ringOrder) > fairShare) result.ringOrderSkewed++;
      if (mostLed(balanced) > fairShare) result.balancedSkewed++;
      result.ringOrderWorst = Math.max(result.ringOrderWorst, before);
      result.balancedWorst = Math.max(result.balancedWorst, after);
    }
    ctx.log(`${shape.partitions} partitions on ${shape.brokers} brokers: done`);
    results.push(result);
  }
  const pct = (n: number) => `${fmt((100 * n) / topics, 2)} %`;
  return {
    tables: [
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
    settings: { topics, shapes: SHAPES, replicaCount: 3 },
    data: results,
    notes: [],
  };
}

export const leadersBenchmark: Benchmark = {
  name: "leaders",
  description: "partition leadership spread within topics: ring order vs balanced (pure, no cluster)",
  run,
};
