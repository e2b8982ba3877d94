import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmbeddedEtcd } from "../coordination/embedded-etcd.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import { rpcLimitsFromOptions } from "../config/rpc-limit-options.js";
import { createLogger } from "../observability/logger.js";
import {
  BROKER_PASSTHROUGH,
  RPC_PASSTHROUGH,
  SENTINEL_PASSTHROUGH,
  passthroughArgs,
  passthroughSchema,
} from "./dev-passthrough.js";
import { onShutdown } from "./shutdown.js";

const schema = {
  "data-dir": option({
    kind: "string",
    description: "Everything (etcd, broker logs) goes under this directory",
    default: "./.goulette",
  }),
  sentinels: option({ kind: "number", description: "Sentinel processes", default: 3, min: 1 }),
  brokers: option({ kind: "number", description: "Broker processes", default: 3, min: 0 }),
  "sentinel-port": option({
    kind: "number",
    description: "Port of the first sentinel (the next ones follow)",
    default: 9090,
    min: 1,
  }),
  "broker-port": option({
    kind: "number",
    description: "Port of the first broker (the next ones follow)",
    default: 9190,
    min: 1,
  }),
  "etcd-port": option({ kind: "number", description: "Embedded etcd client port", default: 2379, min: 1 }),
  "etcd-peer-port": option({ kind: "number", description: "Embedded etcd peer port", default: 2380, min: 1 }),
  fsync: option({
    kind: "string",
    description: "Broker fsync policy",
    default: "interval",
    choices: ["always", "interval"],
  }),
  "log-level": option({ kind: "string", description: "Log level of the child processes", default: "warn" }),
  // Handed to the sentinels (ring, TTLs, ...), the brokers (storage, durability) or both (--rpc-*).
  ...passthroughSchema,
};

const USAGE = `Usage: goulette dev [options]

Starts a whole cluster on loopback: an embedded etcd, sentinels and brokers, with all data under one
directory. Ctrl-C stops everything. The sentinel, broker and --rpc-* options below are handed to the
processes that have them; TLS, tokens, etcd and Kubernetes options are not (a loopback cluster has no use
for them: run goulette sentinel/broker yourself for those).`;

const SELF = fileURLToPath(new URL("./goulette.js", import.meta.url));

export async function runDev(argv: string[]): Promise<void> {
  const { values: o, help, sources } = loadOptions(schema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  // Checked here, once, rather than by every child failing alike.
  rpcLimitsFromOptions(o);
  const values = o as unknown as Record<string, unknown>;
  const rpcArgs = passthroughArgs(RPC_PASSTHROUGH, values, sources);
  const sentinelArgs = [...passthroughArgs(SENTINEL_PASSTHROUGH, values, sources), ...rpcArgs];
  const brokerArgs = [...passthroughArgs(BROKER_PASSTHROUGH, values, sources), ...rpcArgs];
  const logger = createLogger({ level: "info", base: { process: "dev" } });
  const dataDir = path.resolve(o.dataDir);
  await mkdir(dataDir, { recursive: true });
  const etcd = await startEmbeddedEtcd({
    name: "goulette-dev",
    clientPort: o.etcdPort,
    peerPort: o.etcdPeerPort,
    dataDir: path.join(dataDir, "etcd"),
    logger: logger.child({ component: "embedded-etcd" }),
  });
  const children: ChildProcess[] = [];
  let stopping = false;
  const spawnChild = (name: string, args: string[]) => {
    const child = spawn(process.execPath, [SELF, ...args, "--log-level", o.logLevel], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("exit", (code, signal) => {
      if (!stopping)
        logger.error({ process: name, code, signal }, `${name} exited; the dev cluster is degraded`);
    });
    children.push(child);
  };
  onShutdown(logger, async () => {
    stopping = true;
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      ),
    );
    await etcd.stop();
  });

  const sentinelUrls: string[] = [];
  for (let i = 0; i < o.sentinels; i++) {
    const port = o.sentinelPort + i;
    sentinelUrls.push(`http://127.0.0.1:${port}`);
    spawnChild(`sentinel-${i + 1}`, [
      "sentinel",
      "--id",
      `sentinel-${i + 1}`,
      "--address",
      `127.0.0.1:${port}`,
      "--etcd-endpoints",
      etcd.endpoint,
      ...sentinelArgs,
    ]);
  }
  await waitReady(sentinelUrls);
  const brokerUrls: string[] = [];
  for (let i = 0; i < o.brokers; i++) {
    const port = o.brokerPort + i;
    brokerUrls.push(`http://127.0.0.1:${port}`);
    spawnChild(`broker-${i + 1}`, [
      "broker",
      "--id",
      `broker-${i + 1}`,
      "--address",
      `127.0.0.1:${port}`,
      "--data-dir",
      path.join(dataDir, `broker-${i + 1}`),
      "--sentinels",
      sentinelUrls.join(","),
      "--fsync",
      o.fsync,
      ...brokerArgs,
    ]);
  }
  await waitReady(brokerUrls);
  const sentinelList = sentinelUrls.join(",");
  console.log(`
Goulette dev cluster is up (data in ${dataDir})
  etcd       ${etcd.endpoint}
  sentinels  ${sentinelUrls.join("  ")}
  brokers    ${brokerUrls.join("  ")}
  metrics    ${sentinelUrls[0]}/metrics   ${brokerUrls[0] ?? ""}${brokerUrls[0] ? "/metrics" : ""}

Try, in another terminal:
  goulette admin status --sentinel ${sentinelList}
  echo hello | goulette produce --sentinel ${sentinelList} --topic demo
  goulette consume --sentinel ${sentinelList} --topic demo --group g1 --from-beginning --max 1
  curl -s -XPOST -H 'content-type: application/json' ${sentinelUrls[0]}/goulette.v1.SentinelService/GetBrokers -d '{"topic":"demo"}'

Ctrl-C stops everything.`);
}

async function waitReady(urls: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const url of urls) {
    for (;;) {
      const ok = await fetch(`${url}/readyz`).then(
        (res) => res.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${url} did not become ready within 30 s`);
      await sleep(100);
    }
  }
}
