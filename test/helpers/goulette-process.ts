import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.js";

/** The compiled CLI (tests and benchmarks run from dist/…). */
export const GOULETTE_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../src/cmd/goulette.js",
);

export interface GouletteProcessOptions {
  /** What it is, for messages: "sentinel s1", "broker b2". */
  name: string;
  /** CLI arguments after the binary: ["sentinel", "--id", "s1", …]. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Node flags before the binary, e.g. ["--import", probe]. */
  nodeArgs?: string[];
  /** Open an IPC channel too (child.send / "message"). */
  ipc?: boolean;
  /** Characters of log kept for failure messages (default 20,000). */
  logChars?: number;
}

/** A running `goulette …` child process: its log tail, liveness, signals and exit. */
export interface GouletteProcess {
  readonly process: ChildProcess;
  /** Last lines of its stdout + stderr. */
  logTail(lines?: number): string;
  readonly alive: boolean;
  /** Sends `signal` (default SIGKILL) if it still runs and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number | null>;
  /**
   * Polls `${url}/readyz` until it answers 200; fails at once if the process exits first, and kills it
   * when the wait fails (nothing is left running behind a failed start).
   */
  waitReady(url: string, timeoutMs?: number): Promise<void>;
}

const CREDENTIAL_FLAGS = /^--(admin-token|auth-token|tokens-file|allow-anonymous|no-allow-anonymous)(=|$)/;
const CREDENTIAL_ENV = [
  "GOULETTE_ADMIN_TOKEN",
  "GOULETTE_AUTH_TOKEN",
  "GOULETTE_TOKENS_FILE",
  "GOULETTE_ALLOW_ANONYMOUS",
];

/**
 * A sentinel or broker refuses to start without credentials unless told --allow-anonymous. Tests that
 * give it none mean an open cluster, as `goulette dev` runs: they get GOULETTE_ALLOW_ANONYMOUS=true.
 * Tests that give a token, a tokens file or the flag itself get exactly what they say.
 */
export function testIdentityEnv(args: readonly string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (args[0] !== "sentinel" && args[0] !== "broker") return {};
  if (args.some((a) => CREDENTIAL_FLAGS.test(a)) || CREDENTIAL_ENV.some((k) => env[k] !== undefined))
    return {};
  return { GOULETTE_ALLOW_ANONYMOUS: "true" };
}

/** Spawns the compiled `goulette` CLI with piped output kept for failure messages. */
export function spawnGoulette(options: GouletteProcessOptions): GouletteProcess {
  const stdio: StdioOptions = ["ignore", "pipe", "pipe", ...(options.ipc ? (["ipc"] as const) : [])];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), GOULETTE_BIN, ...options.args], {
    stdio,
    env: {
      ...process.env,
      ...testIdentityEnv(options.args, { ...process.env, ...options.env }),
      ...options.env,
    },
  });
  const limit = options.logChars ?? 20_000;
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-limit);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const handle: GouletteProcess = {
    process: child,
    logTail: (lines = 15) => log.split("\n").slice(-lines).join("\n"),
    get alive() {
      return alive();
    },
    exited,
    async kill(signal = "SIGKILL") {
      if (!alive()) return;
      // A paused process must run to handle a catchable signal; SIGKILL needs no SIGCONT.
      if (signal !== "SIGKILL") child.kill("SIGCONT");
      child.kill(signal);
      await exited;
    },
    async waitReady(url, timeoutMs = 20_000) {
      // An exit during start-up fails the wait at once (waitFor alone would poll until its deadline).
      const died = exited.then((code) => {
        throw new Error(`${options.name} exited with ${code} during start-up:\n${handle.logTail()}`);
      });
      died.catch(() => undefined);
      try {
        await Promise.race([
          died,
          waitFor(async () => alive() && (await fetch(`${url}/readyz`)).ok, {
            timeoutMs,
            what: `${options.name} to be ready`,
          }),
        ]);
      } catch (err) {
        await handle.kill();
        throw err;
      }
    },
  };
  return handle;
}

/** What one `goulette …` command printed and how it exited. */
export interface GouletteRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `goulette <args>` to its end with `input` on stdin (none: stdin closed at once); killed and
 * rejected after `timeoutMs`. `cleanEnv` drops GOULETTE_* variables, so only the flags count.
 */
export function runGoulette(
  args: string[],
  options: { input?: string; timeoutMs?: number; cleanEnv?: boolean } = {},
): Promise<GouletteRun> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const base = options.cleanEnv
    ? Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_")))
    : process.env;
  const env = { ...base, ...testIdentityEnv(args, base) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GOULETTE_BIN, ...args], { stdio: ["pipe", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`goulette ${args.join(" ")} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}
