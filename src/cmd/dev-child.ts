import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { PARENT_PID_ENV, withParentDeathSignal } from "../common/parent-watch.js";

/** How a child process ended. */
export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not be spawned at all. */
  readonly error?: Error;
}

/** A `goulette sentinel|broker` started by `goulette dev`, tied to dev's life. */
export interface DevChild {
  readonly name: string;
  readonly pid: number | undefined;
  /** Settles once the process has exited and its stderr is drained. */
  readonly exited: Promise<ChildEnd>;
  /** Why it ended, in one line (see exitReason). */
  reason(end: ChildEnd): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs: number): Promise<void>;
  /** SIGKILL, synchronously (for an 'exit' handler). */
  killNow(): void;
}

// Enough for an uncaught error: its message, 10 stack frames and its properties.
const STDERR_TAIL_LINES = 40;

/**
 * Spawns `node <script> <args>` so that it dies with this process (parent-death signal, and the
 * child's own watch of its parent). Its stdout is ours; its stderr goes through us, keeping the last
 * lines to say why it exited.
 */
export function spawnDevChild(name: string, script: string, args: readonly string[]): DevChild {
  const [command, argv] = withParentDeathSignal(process.execPath, [script, ...args]);
  const child = spawn(command, argv, {
    // Its own process group: a Ctrl-C in the terminal reaches dev alone, which then stops the children
    // in order (a child signalled by both would take dev's SIGTERM as a second signal and exit at once).
    detached: true,
    stdio: ["ignore", "inherit", "pipe"],
    env: { ...process.env, [PARENT_PID_ENV]: String(process.pid) },
  });
  const tail: string[] = [];
  if (child.stderr) {
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", (line) => {
      process.stderr.write(`${line}\n`);
      tail.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
      if (tail.length > STDERR_TAIL_LINES) tail.shift();
    });
  }
  const exited = new Promise<ChildEnd>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    // Without a pid the spawn itself failed and no 'close' follows; `on`: a failed kill emits 'error' too.
    child.on("error", (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
  });
  let ended = false;
  void exited.then(() => (ended = true));
  const signal = (sig: NodeJS.Signals) => {
    if (ended || child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill(sig);
    } catch {
      // Gone meanwhile.
    }
  };
  return {
    name,
    pid: child.pid,
    exited,
    reason: (end) => exitReason(tail, end),
    async stop(graceMs) {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    killNow: () => signal("SIGKILL"),
  };
}

/**
 * One line on why a child ended: its own `goulette: …` error line when it printed one, else the first
 * line of whatever it wrote to stderr (an uncaught error's message), else how it exited.
 */
export function exitReason(stderrTail: readonly string[], end: ChildEnd): string {
  if (end.error) return `could not be started: ${end.error.message}`;
  const how = end.code !== null ? `exit code ${end.code}` : `signal ${end.signal ?? "unknown"}`;
  const own = stderrTail.findLast((line) => line.startsWith("goulette: "));
  if (own) return own.slice("goulette: ".length);
  const first = stderrTail.find((line) => line.trim() !== "" && !line.startsWith("{"));
  return first ? `${first.trim()} (${how})` : `exited with ${how}`;
}
