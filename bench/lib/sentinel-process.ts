import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { trackChild } from "./children.js";
import { sentinelClient, type SentinelClient } from "./sentinel.js";
import { freePort, waitFor, withTimeout } from "./wait.js";

/** The compiled CLI (benchmarks run from dist/bench/…). */
const GOULETTE_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/cmd/goulette.js");
const MEMORY_PROBE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "memory-probe.js");

export interface SentinelProcess {
  readonly id: string;
  readonly url: string;
  readonly process: ChildProcess;
  readonly client: SentinelClient;
  /** Last lines of its log, for error messages. */
  logTail(): string;
  /** RSS and heap after a full GC (only with memoryProbe). */
  memory(): Promise<NodeJS.MemoryUsage>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  readonly alive: boolean;
}

export interface SentinelProcessOptions {
  id: string;
  etcdEndpoint: string;
  /** Extra flags, e.g. ["--election-ttl", "2"]. */
  args?: string[];
  /** Preload memory-probe.js and open an IPC channel (for memory()). */
  memoryProbe?: boolean;
  /** How long recovery may take before the start counts as failed (ms). */
  readyTimeoutMs?: number;
}

/** Runs `goulette sentinel` as a child process on a free loopback port (as test/helpers/sentinel-process.ts does). */
export async function startSentinelProcess(options: SentinelProcessOptions): Promise<SentinelProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [
      ...(options.memoryProbe ? ["--import", MEMORY_PROBE] : []),
      GOULETTE_BIN,
      "sentinel",
      "--id",
      options.id,
      "--address",
      `127.0.0.1:${port}`,
      "--advertise-url",
      url,
      "--etcd-endpoints",
      options.etcdEndpoint,
      "--log-level",
      "warn",
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe", ...(options.memoryProbe ? (["ipc"] as const) : [])] },
  );
  trackChild(child);
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const handle: SentinelProcess = {
    id: options.id,
    url,
    process: child,
    client: sentinelClient(url),
    logTail: () => log.split("\n").slice(-15).join("\n"),
    async memory() {
      if (!child.send) throw new Error("sentinel started without memoryProbe");
      const reply = new Promise<NodeJS.MemoryUsage>((resolve) => {
        const onMessage = (message: unknown) => {
          if (typeof message === "object" && message !== null && "memory" in message) {
            child.off("message", onMessage);
            resolve((message as { memory: NodeJS.MemoryUsage }).memory);
          }
        };
        child.on("message", onMessage);
      });
      child.send("memory");
      return withTimeout(reply, 30_000, `memory of sentinel ${options.id}`);
    },
    async kill(signal = "SIGKILL") {
      if (alive()) {
        child.kill(signal);
        await exited;
      }
    },
    get alive() {
      return alive();
    },
  };
  try {
    // A sentinel that exits during start-up fails the wait at once (waitFor alone would poll on).
    const died = exited.then(() => {
      throw new Error(`sentinel ${options.id} exited during start-up:\n${handle.logTail()}`);
    });
    await Promise.race([
      died,
      waitFor(async () => alive() && (await fetch(`${url}/readyz`)).ok, {
        timeoutMs: options.readyTimeoutMs ?? 20_000,
        what: `sentinel ${options.id} to be ready`,
      }),
    ]);
    died.catch(() => undefined);
  } catch (err) {
    await handle.kill();
    throw err;
  }
  return handle;
}
