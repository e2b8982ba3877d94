import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Etcd3, type IOptions } from "etcd3";
import { trackChild, trackDir } from "./children.js";
import { freePort, waitFor } from "./wait.js";

/**
 * A real etcd server for benchmarks (Debian's etcd-server), on free loopback ports with a temporary data
 * dir on the same disk the tests use. The same start-up as test/helpers/etcd.ts, plus extra flags (some
 * benchmarks raise etcd's request limits, and say so).
 */
export interface BenchEtcd {
  /** Client URL, e.g. http://127.0.0.1:23790 */
  readonly endpoint: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /**
   * A fresh client configured as the sentinel's (createEtcdClient: a 5 s deadline on every unary call),
   * plus `options` (e.g. grpcOptions); closed by stop().
   */
  client(options?: Partial<IOptions>): Etcd3;
  /** Kills etcd and removes the data dir. */
  stop(): Promise<void>;
}

export interface BenchEtcdOptions {
  /** Extra etcd flags, e.g. ["--max-txn-ops=100000"]. */
  extraArgs?: string[];
}

export async function startEtcd(options: BenchEtcdOptions = {}): Promise<BenchEtcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), "goulette-bench-etcd-"));
  const untrackDir = trackDir(dataDir);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    "etcd",
    [
      "--name=bench",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=bench=${peerUrl}`,
      "--log-level=error",
      "--logger=zap",
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  trackChild(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const clients: Etcd3[] = [];
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${stderr}`);
        const res = await fetch(`${clientUrl}/health`);
        return res.ok;
      },
      { timeoutMs: 15_000, what: "etcd to become healthy" },
    );
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: clientUrl,
    dataDir,
    process: child,
    client(extra = {}) {
      const c = new Etcd3({
        hosts: clientUrl,
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 5_000 }),
        ...extra,
      });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
      untrackDir();
    },
  };
}
