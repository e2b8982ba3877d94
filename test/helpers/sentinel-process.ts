import type { ChildProcess } from "node:child_process";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { GOULETTE_BIN, spawnGoulette } from "./goulette-process.js";
import { freePort } from "./ports.js";

export { GOULETTE_BIN };

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
  /** Node flags before the binary, e.g. ["--import", preload] (test/chaos/nemesis/node-preload.ts). */
  nodeArgs?: string[];
  /** How long to wait for /readyz (default 20 s). */
  readyTimeoutMs?: number;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}

/** `goulette sentinel` arguments for a sentinel serving (and advertising) 127.0.0.1:port. */
export function sentinelArgs(
  id: string,
  port: number,
  etcdEndpoint: string | undefined,
  extra: string[],
): string[] {
  return [
    "sentinel",
    "--id",
    id,
    "--address",
    `127.0.0.1:${port}`,
    "--advertise-url",
    `http://127.0.0.1:${port}`,
    ...(etcdEndpoint ? ["--etcd-endpoints", etcdEndpoint] : []),
    ...extra,
  ];
}

/** Runs `goulette sentinel` as a real child process on a free loopback port. */
export async function startSentinelProcess(options: SentinelProcessOptions): Promise<SentinelProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const proc = spawnGoulette({
    name: `sentinel ${options.id}`,
    args: sentinelArgs(options.id, port, options.etcdEndpoint, options.args ?? []),
    ...(options.env ? { env: options.env } : {}),
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
  });
  const handle: SentinelProcess = {
    id: options.id,
    url,
    port,
    process: proc.process,
    client: createClient(SentinelService, createGrpcTransport({ baseUrl: url })),
    logTail: () => proc.logTail(),
    kill: (signal) => proc.kill(signal),
    exited: proc.exited,
  };
  if (options.waitReady ?? true) await proc.waitReady(url, options.readyTimeoutMs);
  return handle;
}

/**
 * Reads a metric from a /metrics endpoint: the sum of its samples over every label set, or over those
 * whose labels match `labels` (a value, or a pattern); undefined when no sample matches.
 */
export async function readMetric(
  url: string,
  name: string,
  labels: Record<string, string | RegExp> = {},
): Promise<number | undefined> {
  return metricSum(await (await fetch(`${url}/metrics`)).text(), name, labels);
}

/** readMetric over a scrape already taken (`text`, the exposition format). */
export function metricSum(
  text: string,
  name: string,
  labels: Record<string, string | RegExp> = {},
): number | undefined {
  const matches = (line: string) =>
    Object.entries(labels).every(([label, want]) => {
      const value = new RegExp(`[{,]${label}="([^"]*)"`).exec(line)?.[1];
      return value !== undefined && (typeof want === "string" ? value === want : want.test(value));
    });
  const lines = text
    .split("\n")
    .filter((l) => (l.startsWith(name + "{") || l.startsWith(name + " ")) && matches(l));
  if (lines.length === 0) return undefined;
  return lines.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}
