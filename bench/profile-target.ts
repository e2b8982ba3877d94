import { planNewTopic } from "../src/fsm/planner.js";
import { monotonicUs } from "./lib/cpu-profile.js";
import { startEtcd } from "./lib/etcd.js";
import { createLoadGenerator, type LoadResult, type LoadSpec } from "./lib/load.js";
import { runSequential } from "./lib/sequential.js";
import { registerBrokers, startLeaderSentinel } from "./lib/sentinel.js";
import { startStubBroker } from "./lib/stub-broker.js";

/**
 * The process `npm run bench -- profile` runs under `node --cpu-prof`, with an in-process leader sentinel:
 * - `read`: GetBrokers for one topic from a worker thread at 64 requests in flight;
 * - `append`: ControlPlane.propose of new topics, one after another, on the sentinel's main thread.
 * argv: <read|append> <duration ms>. Prints the measured window (profiler clock) and the load result, so
 * the summary can leave start-up and warm-up out.
 */
const mode = process.argv[2] === "append" ? "append" : "read";
const durationMs = Number(process.argv[3] ?? 8_000);
const etcd = await startEtcd();
const stub = await startStubBroker();
const load = createLoadGenerator();
// No periodic snapshot: it would land in the append profile as a one-off.
const { sentinel, client } = await startLeaderSentinel(etcd.client(), { snapshotEvery: 1_000_000_000 });
try {
  await registerBrokers(client, 5, stub.address);
  await client.getBrokers({ topic: "orders", replicaCount: 3, partitions: 3 });
  let result: LoadResult;
  let startUs: number;
  let endUs: number;
  if (mode === "read") {
    const spec: Omit<LoadSpec, "durationMs"> = {
      target: { kind: "getBrokers", url: sentinel.url, topics: ["orders"], replicaCount: 3, partitions: 0 },
      concurrency: 64,
      warmupMs: 0,
      warmupRequests: 0,
      maxRequests: 5_000_000,
      callTimeoutMs: 10_000,
    };
    await load.run({ ...spec, durationMs: 1_000 }); // warm-up: JIT, connections
    startUs = monotonicUs();
    result = await load.run({ ...spec, durationMs });
    endUs = monotonicUs();
  } else {
    const plane = sentinel.plane;
    const propose = (i: number) =>
      plane.propose(() =>
        planNewTopic(plane.state, plane.ring, { topic: `profiled-${i}`, partitions: 3, replicaCount: 3 }),
      );
    await runSequential(propose, { warmupOps: 50, durationMs: 0, maxOps: 0 });
    startUs = monotonicUs();
    const r = await runSequential((i) => propose(i + 1_000_000), {
      warmupOps: 0,
      durationMs,
      maxOps: 1_000_000,
    });
    endUs = monotonicUs();
    result = { ...r, requests: r.ops, rps: r.opsPerSecond, clientCpuMs: 0 };
  }
  process.stdout.write(`${JSON.stringify({ result, window: { startUs, endUs } })}\n`);
} finally {
  await load.close();
  await sentinel.stop();
  await stub.stop();
  await etcd.stop();
}
process.exit(0);
