import { mkdir } from "node:fs/promises";
import http from "node:http";
import { hostname } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { acquirePidLock, LockHeldError, type PidLock } from "../common/pid-lock.js";
import { assertPortsFree } from "../common/port-check.js";
import { startEmbeddedEtcd, type EmbeddedEtcd } from "../coordination/embedded-etcd.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import { corsFromOptions } from "../config/cors-options.js";
import { rpcLimitsFromOptions } from "../config/rpc-limit-options.js";
import { FailedPreconditionError } from "../errors.js";
import { createLogger, type Logger } from "../observability/logger.js";
import { CONSOLE_PATH } from "../sentinel/console-routes.js";
import { spawnDevChild, type ChildEnd, type DevChild } from "./dev-child.js";
import {
  BROKER_PASSTHROUGH,
  CORS_PASSTHROUGH,
  RPC_PASSTHROUGH,
  SENTINEL_PASSTHROUGH,
  passthroughArgs,
  passthroughSchema,
} from "./dev-passthrough.js";
import { DEV_HOST, devPortNeeds } from "./dev-ports.js";
import { onShutdown } from "./shutdown.js";

const schema = {
  "data-dir": option({
    kind: "string",
    description: "Everything (etcd, broker logs) goes under this directory",
    default: "./.goulette",
  }),
  // --sentinels is a URL list on every other command: the counts have their own names.
  "sentinel-count": option({
    kind: "number",
    description: "Sentinel processes",
    default: 3,
    min: 1,
    aliases: ["sentinels"],
  }),
  "broker-count": option({
    kind: "number",
    description: "Broker processes",
    default: 3,
    min: 0,
    aliases: ["brokers"],
  }),
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
  // Handed to the sentinels (ring, TTLs, ...), the brokers (storage, durability) or both (--rpc-*, --cors-*).
  ...passthroughSchema,
};

const USAGE = `Usage: goulette dev [options]

Starts a whole cluster on loopback: an embedded etcd, sentinels and brokers, with all data under one
directory. Ctrl-C stops everything; its processes do not outlive it even after a kill -9 (for etcd, that
takes Linux with util-linux setpriv).
It refuses to start, naming the holder, when one of its ports is taken or another goulette dev uses the
data directory (lock file dev.lock). The sentinel, broker, --rpc-* and --cors-* options below are handed
to the processes that have them; TLS, tokens, etcd and Kubernetes options are not (a loopback cluster has
no use for them: run goulette sentinel/broker yourself for those). Its sentinels and brokers run with
--allow-anonymous: any local program may do anything, so keep it on loopback.`;

const SELF = fileURLToPath(new URL("./goulette.js", import.meta.url));
const LOCK_FILE = "dev.lock";
const READY_TIMEOUT_MS = 30_000;
const CHILD_STOP_GRACE_MS = 10_000;

export const devOptionSchema = schema;

export async function runDev(argv: string[]): Promise<void> {
  const { values: o, help, sources } = loadOptions(schema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  // Checked here, once, rather than by every child failing alike.
  rpcLimitsFromOptions(o);
  corsFromOptions(o);
  const ports = devPortNeeds(o);
  const values = o as unknown as Record<string, unknown>;
  const rpcArgs = [
    ...passthroughArgs(RPC_PASSTHROUGH, values, sources),
    ...passthroughArgs(CORS_PASSTHROUGH, values, sources),
  ];
  const sentinelArgs = [...passthroughArgs(SENTINEL_PASSTHROUGH, values, sources), ...rpcArgs];
  const brokerArgs = [...passthroughArgs(BROKER_PASSTHROUGH, values, sources), ...rpcArgs];
  const logger = createLogger({ level: "info", base: { process: "dev" } });
  const dataDir = path.resolve(o.dataDir);

  // Nothing is started until the data directory is ours and every port is free.
  await mkdir(dataDir, { recursive: true });
  const lock = lockDataDir(dataDir);
  try {
    await assertPortsFree(ports);
  } catch (err) {
    lock.release();
    throw err;
  }
  if (lock.tookOverFrom) {
    logger.info(
      { pid: lock.tookOverFrom.pid },
      "took over the data directory of a goulette dev that is gone",
    );
  }

  const children: DevChild[] = [];
  const started: { etcd?: EmbeddedEtcd } = {};
  // An object, not a let: TypeScript would narrow a let to "starting" across the awaits below.
  const state: { phase: "starting" | "up" | "stopping" } = { phase: "starting" };
  let stopped: Promise<void> | undefined;
  const stopAll = () =>
    (stopped ??= (async () => {
      // Brokers first, while the sentinels they unregister from still run; etcd last.
      for (const kind of ["broker-", "sentinel-"]) {
        const some = children.filter((child) => child.name.startsWith(kind));
        await Promise.all(some.map((child) => child.stop(CHILD_STOP_GRACE_MS)));
      }
      await started.etcd?.stop();
      lock.release();
    })());
  // process.exit() and uncaught errors: nothing outlives dev (the parent-death signal covers kill -9).
  process.on("exit", () => {
    for (const child of children) child.killNow();
    lock.release();
  });
  onShutdown(logger, async () => {
    state.phase = "stopping";
    await stopAll();
  });
  const spawnChild = (name: string, args: string[]) => {
    const child = spawnDevChild(name, SELF, [...args, "--log-level", o.logLevel]);
    void child.exited.then((end) => {
      // During start-up, waitReady reports it; once stopping, it is expected.
      if (state.phase === "up") {
        reportChildExit(logger, name, end, child.reason(end));
      }
    });
    children.push(child);
  };

  const sentinelUrls: string[] = [];
  const brokerUrls: string[] = [];
  try {
    const etcd = await startEmbeddedEtcd({
      name: "goulette-dev",
      clientPort: o.etcdPort,
      peerPort: o.etcdPeerPort,
      dataDir: path.join(dataDir, "etcd"),
      logger: logger.child({ component: "embedded-etcd" }),
    });
    started.etcd = etcd;
    for (let i = 0; i < o.sentinelCount; i++) {
      const port = o.sentinelPort + i;
      sentinelUrls.push(`http://${DEV_HOST}:${port}`);
      spawnChild(`sentinel-${i + 1}`, [
        "sentinel",
        "--id",
        `sentinel-${i + 1}`,
        "--address",
        `${DEV_HOST}:${port}`,
        "--etcd-endpoints",
        etcd.endpoint,
        // A loopback development cluster: no credentials, anyone may do anything.
        "--allow-anonymous",
        ...sentinelArgs,
      ]);
    }
    await waitReady(sentinelUrls, children, etcd);
    for (let i = 0; i < o.brokerCount; i++) {
      const port = o.brokerPort + i;
      brokerUrls.push(`http://${DEV_HOST}:${port}`);
      spawnChild(`broker-${i + 1}`, [
        "broker",
        "--id",
        `broker-${i + 1}`,
        "--address",
        `${DEV_HOST}:${port}`,
        "--data-dir",
        path.join(dataDir, `broker-${i + 1}`),
        "--sentinels",
        sentinelUrls.join(","),
        "--fsync",
        o.fsync,
        "--allow-anonymous",
        ...brokerArgs,
      ]);
    }
    await waitReady(brokerUrls, children, etcd);
  } catch (err) {
    // A Ctrl-C during start-up: the shutdown handler stops everything and exits.
    if (state.phase === "stopping") return new Promise<never>(() => undefined);
    await stopAll();
    throw err;
  }
  state.phase = "up";
  const sentinelList = sentinelUrls.join(",");
  console.log(`
Goulette dev cluster is up (data in ${dataDir})
  etcd       ${started.etcd.endpoint}
  sentinels  ${sentinelUrls.join("  ")}
  brokers    ${brokerUrls.join("  ")}
  metrics    ${sentinelUrls[0]}/metrics   ${brokerUrls[0] ?? ""}${brokerUrls[0] ? "/metrics" : ""}
  console    ${sentinelUrls[0]}${CONSOLE_PATH}   (open it in a browser; every sentinel serves it)

Try, in another terminal:
  goulette admin status --sentinels ${sentinelList}
  echo hello | goulette produce --sentinels ${sentinelList} --topic demo
  goulette consume --sentinels ${sentinelList} --topic demo --group g1 --from-beginning --max 1
  curl -s -XPOST -H 'content-type: application/json' ${sentinelUrls[0]}/goulette.v1.SentinelService/GetBrokers -d '{"topic":"demo"}'

Ctrl-C stops everything.`);
}

/**
 * The log line of a child that exited while the cluster was up. The child is `child`: dev's own lines
 * already carry `process: "dev"`, and pino would write a second `process` key.
 */
export function reportChildExit(logger: Logger, name: string, end: ChildEnd, reason: string): void {
  logger.error(
    { child: name, code: end.code, signal: end.signal, reason },
    `${name} exited; the dev cluster is degraded`,
  );
}

/** The data directory's lock, or a sentence saying which goulette dev has it and what to do. */
function lockDataDir(dataDir: string): PidLock {
  try {
    return acquirePidLock(path.join(dataDir, LOCK_FILE), "goulette dev");
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err;
    const { pid, hostname: host } = err.owner;
    const remedy =
      host === hostname()
        ? `stop it (Ctrl-C in its terminal, or kill ${pid}), or pass another --data-dir`
        : `pass another --data-dir, or delete ${err.file} if it no longer runs on ${host}`;
    throw new FailedPreconditionError(
      `data directory ${dataDir} is in use by another goulette dev (pid ${pid}` +
        `${host === hostname() ? "" : ` on host ${host}`}): ${remedy}`,
    );
  }
}

/**
 * Polls each URL's /readyz until it answers 200. Fails as soon as any child started so far or etcd
 * exits (with that process's own reason), or after 30 s.
 */
async function waitReady(urls: string[], children: readonly DevChild[], etcd: EmbeddedEtcd): Promise<void> {
  let done = false;
  const died = children.map((child) =>
    child.exited.then((end) => {
      if (!done) throw new FailedPreconditionError(`${child.name} failed to start: ${child.reason(end)}`);
    }),
  );
  const etcdDied = etcd.exited.then(() => {
    if (!done) throw new FailedPreconditionError("the embedded etcd exited during start-up");
  });
  const poll = async () => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const url of urls) {
      for (;;) {
        const ok = await isReady(url);
        if (done) return;
        if (ok) break;
        if (Date.now() > deadline) {
          throw new FailedPreconditionError(
            `${url} did not become ready within ${READY_TIMEOUT_MS / 1000} s`,
          );
        }
        await sleep(100);
      }
    }
  };
  try {
    await Promise.race([poll(), ...died, etcdDied]);
  } finally {
    done = true;
  }
}

/**
 * GET <url>/readyz answers 200. node:http rather than fetch, which refuses "bad ports" (1, 6000, …)
 * that a sentinel or broker may well listen on; no pooling, so no socket outlives the check.
 */
function isReady(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/readyz`, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}
