/**
 * Embedded etcd (docs/operations.md): the sentinel runs the `etcd` binary as a child process, waits until it answers
 * `/health`, and stops it on exit. Single member, loopback by default: this is the dev mode, not a
 * production topology.
 *
 * Leftover processes. An etcd left behind holds its ports and its data-dir lock, so the next start fails.
 * We guard against that in three ways:
 * - `detached: false` (the default): etcd stays in our process group, so Ctrl-C in a terminal (SIGINT to
 *   the foreground group) reaches it too.
 * - A process `'exit'` hook SIGKILLs every live etcd synchronously: covers `process.exit()`, the end of
 *   the event loop and uncaught exceptions.
 * - On Linux, when util-linux `setpriv` supports it, etcd is exec'd through `setpriv --pdeathsig KILL`:
 *   the kernel kills etcd when its parent dies for any reason, including SIGKILL, the OOM killer, or a
 *   SIGTERM without a handler (which ends Node without emitting `'exit'`). setpriv execs etcd, so the
 *   child's pid is etcd's pid.
 * Without setpriv (macOS, old distributions) a parent killed by a signal it does not handle orphans etcd.
 * Entry points should therefore handle SIGTERM/SIGINT and call `stop()` (or `process.exit()`, which fires
 * the hook); if an orphan remains anyway, the next start fails fast with "port … is already in use".
 *
 * A little over ~400 lines: the leftover guards above, the command line and the health wait belong to
 * one child process's life and are kept together.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { Code } from "@connectrpc/connect";
import { FailedPreconditionError, GouletteError, InvalidArgumentError, errorMessage } from "../errors.js";
import type { Logger } from "../observability/logger.js";

export interface EmbeddedEtcdOptions {
  /** Member name (default "default"; the sentinel passes "goulette-<nodeId>"). */
  name?: string;
  /** Client port on which etcd listens (default 2379). */
  clientPort?: number;
  /** Peer port (default 2380). */
  peerPort?: number;
  /** Data directory (created with mode 0700 if missing; reused as is, so data persists across restarts). */
  dataDir: string;
  /** Host to bind and advertise (default 127.0.0.1). */
  host?: string;
  /**
   * The etcd binary: a path, or a name looked up on PATH. Default: GOULETTE_ETCD_BINARY when set,
   * otherwise "etcd" from PATH.
   */
  binary?: string;
  /** How long to wait for /health to report healthy (default 20 s). */
  startTimeoutMs?: number;
  /** etcd's own log lines go here at debug level. */
  logger: Logger;
}

export interface EmbeddedEtcd {
  /** Client URL, e.g. "http://127.0.0.1:2379". */
  readonly endpoint: string;
  /** The etcd process id. */
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
  /**
   * Settles when the process exits: resolves with the exit code (null when ended by a signal) after
   * stop(); rejects with an EmbeddedEtcdError when etcd exits on its own. Awaiting it is optional: an
   * unexpected exit is also logged at error level and never becomes an unhandled rejection.
   */
  readonly exited: Promise<number | null>;
}

const INSTALL_HINT =
  "Install it: `sudo apt-get install etcd-server` on Debian/Ubuntu, `brew install etcd` on macOS, " +
  "or pass --etcd-endpoints to use an external etcd.";

/** There is no etcd binary where we looked; nothing was spawned. */
export class EtcdBinaryNotFoundError extends FailedPreconditionError {
  /** The name or path that was looked for. */
  readonly binary: string;

  constructor(binary: string, onPath: boolean, fromEnv: boolean) {
    const where = `${onPath ? " on PATH" : ""}${fromEnv ? ", set by GOULETTE_ETCD_BINARY" : ""}`;
    super(`etcd binary not found (looked for '${binary}'${where}). ${INSTALL_HINT}`);
    this.binary = binary;
  }
}

/** etcd did not start (exited early, or never became healthy), or exited on its own later. */
export class EmbeddedEtcdError extends GouletteError {
  /** Exit code, or null when it was ended by a signal or is still unknown. */
  readonly exitCode: number | null;
  /** The last lines etcd wrote to stderr. */
  readonly logTail: readonly string[];

  constructor(message: string, exitCode: number | null, logTail: readonly string[]) {
    super(message, Code.FailedPrecondition);
    this.exitCode = exitCode;
    this.logTail = logTail;
  }
}

const DEFAULT_CLIENT_PORT = 2379;
const DEFAULT_PEER_PORT = 2380;
const DEFAULT_START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const HEALTH_POLL_MS = 100;
const LOG_TAIL_LINES = 20;

/** Starts etcd and resolves once it reports healthy; on any failure no etcd process is left running. */
export async function startEmbeddedEtcd(options: EmbeddedEtcdOptions): Promise<EmbeddedEtcd> {
  const name = options.name ?? "default";
  const host = options.host ?? "127.0.0.1";
  const clientPort = options.clientPort ?? DEFAULT_CLIENT_PORT;
  const peerPort = options.peerPort ?? DEFAULT_PEER_PORT;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const logger = options.logger;
  validatePort("client", clientPort);
  validatePort("peer", peerPort);
  if (clientPort === peerPort) {
    throw new InvalidArgumentError(`etcd client and peer ports must differ, both are ${clientPort}`);
  }

  // Fail with a precise message before spawning anything: a missing binary, or a port already taken
  // (typically an etcd left over from an earlier run).
  const binary = resolveEtcdBinary(options.binary);
  await assertPortFree(host, clientPort, "client", "--etcd-port");
  await assertPortFree(host, peerPort, "peer", "--etcd-peer-port");
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });

  const urlHost = host.includes(":") ? `[${host}]` : host;
  const clientUrl = `http://${urlHost}:${clientPort}`;
  const peerUrl = `http://${urlHost}:${peerPort}`;
  const etcdArgs = [
    `--name=${name}`,
    `--data-dir=${options.dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    "--initial-cluster-state=new",
    "--log-level=warn",
    "--logger=zap",
  ];
  const setpriv = parentDeathSignalWrapper();
  const [command, args] = setpriv
    ? [setpriv, ["--pdeathsig", "KILL", "--", binary, ...etcdArgs]]
    : [binary, etcdArgs];

  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], detached: false });
  trackChild(child);
  const logTail: string[] = [];
  if (child.stderr) {
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", (line) => {
      logTail.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
      if (logTail.length > LOG_TAIL_LINES) logTail.shift();
      logEtcdLine(logger, line);
    });
  }
  // 'close' comes after 'exit' and after stderr is drained, so logTail is complete by then. 'error'
  // without a pid means the spawn itself failed and no 'exit' will follow.
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once("close", (code, signal) => resolve({ code, signal }));
      // `on`, not `once`: a second 'error' (e.g. a failed kill) without a listener would throw.
      child.on("error", (error) => {
        if (child.pid === undefined) resolve({ code: null, signal: null, error });
      });
    },
  );
  let hasClosed = false;
  void closed.then(() => {
    hasClosed = true;
    untrackChild(child);
  });

  const health = await waitHealthy(host, clientPort, startTimeoutMs, closed, () => hasClosed);
  if (health !== "healthy") {
    if (!hasClosed) {
      child.kill("SIGKILL");
      await closed;
    }
    const end = await closed;
    const reason =
      health === "exited"
        ? end.error
          ? `could not run ${command}: ${end.error.message}`
          : `exited with ${describeEnd(end.code, end.signal)} before becoming healthy${portHint(logTail)}`
        : `did not become healthy within ${startTimeoutMs} ms (last: ${health.timeout}); it was killed`;
    throw new EmbeddedEtcdError(`embedded etcd ${reason}${formatTail(logTail)}`, end.code, [...logTail]);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error("unreachable: a healthy etcd has a pid");
  logger.debug(
    { endpoint: clientUrl, pid, dataDir: options.dataDir, parentDeathSignal: !!setpriv },
    "etcd up",
  );

  let stopping: Promise<void> | undefined;
  const exited = closed.then(({ code, signal }) => {
    if (stopping) return code;
    const message = `embedded etcd (pid ${pid}) exited unexpectedly with ${describeEnd(code, signal)}`;
    logger.error({ exitCode: code, signal, logTail }, message);
    throw new EmbeddedEtcdError(`${message}${formatTail(logTail)}`, code, [...logTail]);
  });
  // Observed here so that an exit nobody awaits is logged, not an unhandled rejection that ends the process.
  exited.catch(() => undefined);

  return {
    endpoint: clientUrl,
    pid,
    exited,
    stop() {
      stopping ??= (async () => {
        if (hasClosed) return;
        child.kill("SIGTERM");
        await pauseUnless(STOP_GRACE_MS, closed);
        if (child.exitCode === null && child.signalCode === null) {
          logger.warn({ pid }, `etcd did not exit within ${STOP_GRACE_MS} ms of SIGTERM; sending SIGKILL`);
          child.kill("SIGKILL");
        }
        await closed;
      })();
      return stopping;
    },
  };
}

/**
 * The path of the etcd executable: `binary`, else GOULETTE_ETCD_BINARY, else "etcd"; a name without a
 * slash is looked up on PATH. Throws EtcdBinaryNotFoundError.
 */
export function resolveEtcdBinary(binary?: string): string {
  const fromEnv = binary === undefined && !!process.env.GOULETTE_ETCD_BINARY;
  const wanted = binary ?? (process.env.GOULETTE_ETCD_BINARY || "etcd");
  const found = findExecutable(wanted);
  if (found === undefined) throw new EtcdBinaryNotFoundError(wanted, !wanted.includes("/"), fromEnv);
  return found;
}

/** Like `command -v`: a path is checked as is, a bare name is searched on PATH. */
export function findExecutable(name: string, searchPath = process.env.PATH ?? ""): string | undefined {
  if (name.includes("/")) return isExecutableFile(name) ? path.resolve(name) : undefined;
  for (const dir of searchPath.split(path.delimiter)) {
    // An empty PATH entry means the current directory; skipping it is the safer reading.
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let setprivProbe: string | null | undefined;

/** The setpriv path when it can set a parent-death signal here (Linux, util-linux ≥ 2.33); probed once. */
export function parentDeathSignalWrapper(): string | undefined {
  if (setprivProbe === undefined) {
    setprivProbe = null;
    const setpriv = process.platform === "linux" ? findExecutable("setpriv") : undefined;
    const trueBin = findExecutable("true");
    if (setpriv && trueBin) {
      const probe = spawnSync(setpriv, ["--pdeathsig", "KILL", "--", trueBin], {
        stdio: "ignore",
        timeout: 5_000,
      });
      if (probe.status === 0) setprivProbe = setpriv;
    }
  }
  return setprivProbe ?? undefined;
}

// Every etcd we started and that is still running, killed synchronously if the process exits first.
const liveChildren = new Set<ChildProcess>();

function killLiveChildren(): void {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone: nothing to clean up.
    }
  }
}

function trackChild(child: ChildProcess): void {
  if (liveChildren.size === 0) process.on("exit", killLiveChildren);
  liveChildren.add(child);
}

function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child);
  if (liveChildren.size === 0) process.off("exit", killLiveChildren);
}

function validatePort(role: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new InvalidArgumentError(`etcd ${role} port must be an integer in 1..65535, got ${port}`);
  }
}

/** Binds the port for a moment to prove it is free; etcd itself would only say so in its log. */
async function assertPortFree(host: string, port: number, role: string, flag: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") {
        reject(
          new FailedPreconditionError(
            `cannot start embedded etcd: its ${role} port ${host}:${port} is already in use ` +
              `(an etcd left over from an earlier run, or another program); stop that process or choose ` +
              `another port with ${flag}`,
          ),
        );
      } else {
        reject(
          new FailedPreconditionError(
            `cannot start embedded etcd: cannot bind ${host}:${port}: ${errorMessage(err)}`,
          ),
        );
      }
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Polls GET /health until {"health":"true"}, the process exits, or the deadline passes. */
async function waitHealthy(
  host: string,
  port: number,
  timeoutMs: number,
  closed: Promise<unknown>,
  hasClosed: () => boolean,
): Promise<"healthy" | "exited" | { timeout: string }> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = "no answer yet";
  for (;;) {
    if (hasClosed()) return "exited";
    const remaining = deadline - Date.now();
    if (remaining <= 0) return { timeout: lastProblem };
    try {
      const body = await getHealth(host, port, Math.min(1_000, remaining));
      if (body.health === "true") return "healthy";
      lastProblem = `/health answered ${JSON.stringify(body)}`;
    } catch (err) {
      lastProblem = errorMessage(err);
    }
    await pauseUnless(HEALTH_POLL_MS, closed);
  }
}

/** One GET /health without connection pooling, so no idle socket outlives the start-up. */
function getHealth(host: string, port: number, timeoutMs: number): Promise<{ health?: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: "/health", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("error", reject);
      res.on("end", () => {
        try {
          const parsed: unknown = JSON.parse(body);
          resolve(typeof parsed === "object" && parsed !== null ? parsed : {});
        } catch {
          reject(new Error(`/health answered ${res.statusCode ?? "?"} with a body that is not JSON`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`/health did not answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/** etcd's zap logger writes JSON lines: keep them structured in our log. */
function logEtcdLine(logger: Logger, line: string): void {
  const entry = parseJsonObject(line);
  if (entry) logger.debug({ etcd: entry }, `etcd: ${String(entry.msg ?? line)}`);
  else logger.debug(`etcd: ${line}`);
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** "level msg key=value …" per line: readable in an error message, unlike raw zap JSON. */
function formatTail(logTail: readonly string[]): string {
  if (logTail.length === 0) return " (etcd wrote nothing to stderr)";
  const lines = logTail.map((line) => {
    const entry = parseJsonObject(line);
    if (!entry) return line;
    const { level, msg, ts: _ts, caller: _caller, ...rest } = entry;
    const fields = Object.entries(rest).map(
      ([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`,
    );
    return [String(level ?? ""), String(msg ?? ""), ...fields].filter(Boolean).join(" ");
  });
  return `; last lines from etcd:\n  ${lines.join("\n  ")}`;
}

function portHint(logTail: readonly string[]): string {
  return logTail.some((line) => line.includes("address already in use"))
    ? " (a port is already in use: stop the other process or choose other ports)"
    : "";
}

/** Waits `ms`, or less if `settled` settles first (no timer is left behind). */
function pauseUnless(ms: number, settled: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void settled.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function describeEnd(code: number | null, signal: NodeJS.Signals | null): string {
  return code !== null ? `exit code ${code}` : `signal ${signal ?? "unknown"}`;
}
