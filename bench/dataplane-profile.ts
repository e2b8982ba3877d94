/** CPU profile of a broker's produce hot path: `node --cpu-prof` in the broker process, stopped by SIGTERM. */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster } from "../test/helpers/cluster.js";
import { waitFor } from "../test/helpers/wait.js";
import { Acks, createGouletteTarget } from "./dataplane-goulette.js";
import type { ProduceResult } from "./dataplane-target.js";
import { summariseProfile, type CpuProfile, type ProfileSummary } from "./lib/cpu-profile.js";

export interface ProduceProfile {
  load: ProduceResult;
  size: number;
  summary: ProfileSummary;
}

/**
 * One broker (fsync=interval, acks=leader, RF 1) under `size`-byte produce load for `durationMs`; only the
 * samples of the load phase are ranked.
 */
export async function profileProduce(size: number, durationMs: number): Promise<ProduceProfile> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-broker-prof-"));
  const cluster = await startCluster({
    sentinels: 1,
    brokers: 1,
    brokerArgs: ["--fsync", "interval", "--fsync-interval", "1000"],
    brokerEnv: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` },
  });
  try {
    await cluster.createTopic("bench-profile", { partitions: 1, replicas: 1 });
    const target = createGouletteTarget({
      label: "profile",
      leaderAddress: cluster.brokerAddress("b1"),
      topic: "bench-profile",
      acks: Acks.LEADER,
    });
    await target.produce(size, 20_000, 1_000); // warm-up: JIT, first segment
    const startUs = Number(process.hrtime.bigint() / 1000n);
    const load = await target.produce(size, Number.MAX_SAFE_INTEGER, durationMs);
    const endUs = Number(process.hrtime.bigint() / 1000n);
    // SIGTERM: a graceful stop, so V8 writes the profile on exit.
    await cluster.killBroker("b1", "SIGTERM");
    const file = await waitFor(
      async () => {
        const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
        return files.find((f) => f.split(".")[4] === "0");
      },
      { timeoutMs: 10_000, what: "the broker's .cpuprofile" },
    );
    const profile = JSON.parse(await readFile(path.join(dir, file), "utf8")) as CpuProfile;
    return { load, size, summary: summariseProfile(profile, { startUs, endUs }, 15) };
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
