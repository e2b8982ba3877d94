import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { trackChild } from "./children.js";
import { sentinelClient, type SentinelClient } from "./sentinel.js";
import { spawnGoulette } from "../../test/helpers/goulette-process.js";
import { sentinelArgs } from "../../test/helpers/sentinel-process.js";
import { freePort, withTimeout } from "./wait.js";

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
  const proc = spawnGoulette({
    name: `sentinel ${options.id}`,
    args: sentinelArgs(options.id, port, options.etcdEndpoint, [
      "--log-level",
      "warn",
      ...(options.args ?? []),
    ]),
    ...(options.memoryProbe ? { nodeArgs: ["--import", MEMORY_PROBE], ipc: true } : {}),
  });
  const child = proc.process;
  trackChild(child);
  const handle: SentinelProcess = {
    id: options.id,
    url,
    process: child,
    client: sentinelClient(url),
    logTail: () => proc.logTail(),
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
    kill: (signal) => proc.kill(signal),
    get alive() {
      return proc.alive;
    },
  };
  await proc.waitReady(url, options.readyTimeoutMs ?? 20_000);
  return handle;
}
