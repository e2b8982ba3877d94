/**
 * CPU profile of a broker's produce or consume hot path: `node --cpu-prof` in the broker process, stopped
 * by SIGTERM.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { brokerClient } from "../test/helpers/broker-process.js";
import { startCluster } from "../test/helpers/cluster.js";
import { freePort } from "../test/helpers/ports.js";
import { GOULETTE_BIN } from "../test/helpers/sentinel-process.js";
import { waitFor } from "../test/helpers/wait.js";
import { Acks, createGouletteTarget } from "./dataplane-goulette.js";
import type { ProduceResult, QueueTarget } from "./dataplane-target.js";
import { trackChild } from "./lib/children.js";
import { monotonicUs, summariseProfile, type CpuProfile, type ProfileSummary } from "./lib/cpu-profile.js";

export interface ProduceProfile {
  load: ProduceResult;
  size: number;
  /** What the broker was doing while profiled (produce when absent: results written before consume). */
  workload?: "produce" | "consume";
  summary: ProfileSummary;
}

/**
 * One broker (fsync=interval, acks=leader, RF 1) under `size`-byte produce load for `durationMs`; only the
 * samples of the load phase are ranked. Node refuses --cpu-prof in NODE_OPTIONS, so the broker is started
 * here (etcd and the sentinel by the cluster helper) with the flag on its command line.
 * `workload: "consume"` profiles FetchMessages instead: records are produced first (not profiled), then
 * read again and again from their first offset for `durationMs`.
 */
export async function profileProduce(
  size: number,
  durationMs: number,
  workload: "produce" | "consume" = "produce",
): Promise<ProduceProfile> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-broker-prof-"));
  const cluster = await startCluster({ sentinels: 1, brokers: 0 });
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const broker = spawn(
    process.execPath,
    [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      GOULETTE_BIN,
      "broker",
      "--id",
      "b1",
      "--address",
      address,
      "--advertise-address",
      address,
      "--data-dir",
      path.join(dir, "data"),
      "--sentinels",
      cluster.sentinelUrls.join(","),
      "--fsync",
      "interval",
      "--fsync-interval",
      "1000",
      "--keepalive-interval",
      "300",
      "--log-level",
      "warn",
      "--allow-anonymous",
    ],
    { stdio: "ignore" },
  );
  trackChild(broker);
  const exited = new Promise<void>((resolve) => broker.once("exit", () => resolve()));
  try {
    await waitFor(async () => (await fetch(`http://${address}/readyz`)).ok, {
      timeoutMs: 20_000,
      what: "the profiled broker to be ready",
    });
    await cluster.sentinel().getBrokers({ topic: "bench-profile", partitions: 1, replicaCount: 1 });
    const client = brokerClient(address);
    await waitFor(
      async () =>
        (await client.getCommittedOffset({ consumerGroup: "probe", topic: "bench-profile", partition: 0 }))
          .offset === -1n,
      { timeoutMs: 10_000, what: "the profiled broker to lead bench-profile" },
    );
    const target = createGouletteTarget({
      label: "profile",
      leaderAddress: address,
      topic: "bench-profile",
      acks: Acks.LEADER,
      // As the SDK does (src/client/node.ts): no gzip/brotli negotiated with brokers.
      compression: false,
    });
    await target.produce(size, 20_000, 1_000); // warm-up: JIT, first segment
    if (workload === "consume") {
      // What is read in the window: ~32 MiB of records (all in the log, mostly past the tail cache).
      await target.produce(size, Math.max(500, Math.round((32 << 20) / size)), 30_000);
      await target.consume(); // warm-up of the read path
    }
    const startUs = monotonicUs();
    const load =
      workload === "produce"
        ? await target.produce(size, Number.MAX_SAFE_INTEGER, durationMs)
        : await consumeFor(target, size, durationMs);
    const endUs = monotonicUs();
    await target.close();
    // SIGTERM: a graceful stop, so V8 writes the profile on exit.
    broker.kill("SIGTERM");
    await exited;
    const file = await waitFor(
      async () => {
        const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
        return files.find((f) => f.split(".")[4] === "0");
      },
      { timeoutMs: 10_000, what: "the broker's .cpuprofile" },
    );
    const profile = JSON.parse(await readFile(path.join(dir, file), "utf8")) as CpuProfile;
    return { load, size, workload, summary: summariseProfile(profile, { startUs, endUs }, 15) };
  } finally {
    if (broker.exitCode === null && broker.signalCode === null) {
      broker.kill("SIGKILL");
      await exited;
    }
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads the last produced run again and again for `durationMs` (at least once). */
async function consumeFor(target: QueueTarget, size: number, durationMs: number): Promise<ProduceResult> {
  const start = performance.now();
  let messages = 0;
  do messages += (await target.consume()).messages;
  while (performance.now() - start < durationMs);
  return { messages, bytes: messages * size, seconds: (performance.now() - start) / 1000 };
}
