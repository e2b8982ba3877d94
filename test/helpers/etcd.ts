import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Etcd3, type IOptions } from "etcd3";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/** A real etcd server (Debian's etcd-server) on free loopback ports with a temporary data dir. */
export interface TestEtcd {
  /** Client URL, e.g. http://127.0.0.1:23790 */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** A fresh client (with `options` on top of the endpoint); closed by stop(). */
  client(options?: Partial<IOptions>): Etcd3;
  /** SIGSTOP: etcd stops answering (a pause longer than a lease TTL expires leases). */
  pause(): void;
  resume(): void;
  /** Kills and removes the data dir. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Extra etcd flags, e.g. ["--max-txn-ops=100000"] (benchmarks raise some limits, and say so). */
  extraArgs?: string[];
  /** Name prefix of the temporary data dir (default "goulette-etcd-"). */
  dirPrefix?: string;
  /** Called as soon as etcd is spawned (before it is healthy), e.g. to kill it if the caller exits. */
  onSpawn?: (child: ChildProcess, dataDir: string) => void;
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), options.dirPrefix ?? "goulette-etcd-"));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    "etcd",
    [
      "--name=test",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=test=${peerUrl}`,
      "--log-level=error",
      "--logger=zap",
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  options.onSpawn?.(child, dataDir);
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
    clientPort,
    dataDir,
    process: child,
    client(extra = {}) {
      const c = new Etcd3({ hosts: clientUrl, ...extra });
      clients.push(c);
      return c;
    },
    pause() {
      child.kill("SIGSTOP");
    },
    resume() {
      child.kill("SIGCONT");
    },
    async stop() {
      for (const c of clients) c.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
