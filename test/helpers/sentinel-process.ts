import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/** The compiled CLI (tests run from dist/test/…). */
export const GOULETTE_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../src/cmd/goulette.js",
);

export interface SentinelProcess {
  readonly id: string;
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly client: Client<typeof SentinelService>;
  /** Last lines of its log, for failure messages. */
  logTail(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number | null>;
}

export interface SentinelProcessOptions {
  id: string;
  etcdEndpoint?: string;
  port?: number;
  /** Extra flags, e.g. ["--election-ttl", "2"]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}

/** Runs `goulette sentinel` as a real child process on a free loopback port. */
export async function startSentinelProcess(options: SentinelProcessOptions): Promise<SentinelProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    GOULETTE_BIN,
    "sentinel",
    "--id",
    options.id,
    "--address",
    `127.0.0.1:${port}`,
    "--advertise-url",
    url,
    ...(options.etcdEndpoint ? ["--etcd-endpoints", options.etcdEndpoint] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const client = createClient(SentinelService, createGrpcTransport({ baseUrl: url }));
  const handle: SentinelProcess = {
    id: options.id,
    url,
    port,
    process: child,
    client,
    logTail: () => log.split("\n").slice(-15).join("\n"),
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
    exited,
  };
  if (options.waitReady ?? true) {
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null)
            throw new Error(`sentinel ${options.id} exited with ${child.exitCode}:\n${handle.logTail()}`);
          const res = await fetch(`${url}/readyz`);
          return res.ok;
        },
        { timeoutMs: 20_000, what: `sentinel ${options.id} to be ready` },
      );
    } catch (err) {
      await handle.kill();
      throw err;
    }
  }
  return handle;
}

/** Reads a metric from a /metrics endpoint: the sum of its samples (all label sets); undefined when absent. */
export async function readMetric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const lines = text.split("\n").filter((l) => l.startsWith(name + "{") || l.startsWith(name + " "));
  if (lines.length === 0) return undefined;
  return lines.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}
