import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { probePort } from "../../src/common/port-check.js";
import { GOULETTE_BIN, testIdentityEnv } from "./goulette-process.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/** The ports of one `goulette dev` on loopback, all free when picked. */
export interface DevPorts {
  sentinelPort: number;
  brokerPort: number;
  etcdPort: number;
  etcdPeerPort: number;
}

/**
 * Free ports for a dev cluster of `sentinels` and `brokers`: each range is consecutive (dev numbers its
 * processes from the first port), picked as a free port whose successors were free too.
 */
export async function devPorts(sentinels: number, brokers: number): Promise<DevPorts> {
  const range = async (count: number, taken: readonly number[]) => {
    for (;;) {
      const first = await freePort();
      const ports = Array.from({ length: count }, (_, i) => first + i);
      if (ports.some((p) => taken.includes(p) || p > 65_535)) continue;
      const probes = await Promise.all(ports.slice(1).map((p) => probePort("127.0.0.1", p)));
      if (probes.every((err) => err === undefined)) return first;
    }
  };
  const sentinelPort = await range(sentinels, []);
  const brokerPort = await range(brokers, seq(sentinelPort, sentinels));
  const used = [...seq(sentinelPort, sentinels), ...seq(brokerPort, brokers)];
  const etcdPort = await range(1, used);
  const etcdPeerPort = await range(1, [...used, etcdPort]);
  return { sentinelPort, brokerPort, etcdPort, etcdPeerPort };
}

function seq(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

/** Every port of the cluster. */
export function allDevPorts(ports: DevPorts, sentinels: number, brokers: number): number[] {
  return [
    ...seq(ports.sentinelPort, sentinels),
    ...seq(ports.brokerPort, brokers),
    ports.etcdPort,
    ports.etcdPeerPort,
  ];
}

/** The `goulette dev` flags for these ports and data directory. */
export function devArgs(dataDir: string, ports: DevPorts, sentinels: number, brokers: number): string[] {
  return [
    "dev",
    ...["--data-dir", dataDir, "--sentinel-count", String(sentinels), "--broker-count", String(brokers)],
    ...["--sentinel-port", String(ports.sentinelPort), "--broker-port", String(ports.brokerPort)],
    ...["--etcd-port", String(ports.etcdPort), "--etcd-peer-port", String(ports.etcdPeerPort)],
  ];
}

/** This environment without GOULETTE_* variables: the processes under test get only their flags. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_")));
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit. */
  ms: number;
}

/** Runs `goulette <args>` to its end (SIGKILL after `timeoutMs`). */
export async function runGoulette(args: string[], timeoutMs = 30_000): Promise<Finished> {
  const started = Date.now();
  const env = cleanEnv();
  const child = spawn(process.execPath, [GOULETTE_BIN, ...args], {
    env: { ...env, ...testIdentityEnv(args, env) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once("close", (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: Date.now() - started };
}

export interface RunningDev {
  readonly process: ChildProcess;
  output(): string;
  /** SIGTERM (or `signal`), then the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `goulette <args>` and waits for "Goulette dev cluster is up". */
export async function startDev(args: string[]): Promise<RunningDev> {
  const env = cleanEnv();
  const child = spawn(process.execPath, [GOULETTE_BIN, ...args], {
    env: { ...env, ...testIdentityEnv(args, env) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const dev: RunningDev = {
    process: child,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`goulette dev exited ${child.exitCode}:\n${output}`);
        return output.includes("Goulette dev cluster is up");
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "the dev cluster" },
    );
  } catch (err) {
    await dev.stop("SIGKILL");
    throw err;
  }
  return dev;
}

/** Running processes (not zombies) whose command line contains `needle`, with their argv. */
export function processesMentioning(needle: string): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv.some((word) => word.includes(needle))) found.push({ pid: Number(entry), argv });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** The ports among `ports` that something listens on. */
export async function takenPorts(ports: readonly number[]): Promise<number[]> {
  const probes = await Promise.all(ports.map((p) => probePort("127.0.0.1", p)));
  return ports.filter((_, i) => probes[i] !== undefined);
}
