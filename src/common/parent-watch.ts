/**
 * Children that die with their parent, however it dies (kill -9, OOM, a closed terminal). Two layers:
 * - On Linux, the child is exec'd through `setpriv --pdeathsig KILL` (as the embedded etcd is): the
 *   kernel kills it the moment the parent dies.
 * - In the child, a cheap poll of its parent pid (an unref'd timer): where setpriv is missing, or when
 *   the parent died before setpriv could arm the signal, the child notices it was orphaned and stops.
 */
import { parentDeathSignalWrapper } from "../coordination/embedded-etcd.js";

/** Set by a parent on the children that must not outlive it: the parent's pid. */
export const PARENT_PID_ENV = "GOULETTE_PARENT_PID";

const POLL_MS = 1_000;

/** `[command, args]`, wrapped so that the child gets SIGKILL when this process dies, where possible. */
export function withParentDeathSignal(command: string, args: readonly string[]): [string, string[]] {
  const setpriv = parentDeathSignalWrapper();
  return setpriv ? [setpriv, ["--pdeathsig", "KILL", "--", command, ...args]] : [command, [...args]];
}

/**
 * Calls `onOrphaned` once `parentPid` is no longer this process's parent (it died and we were
 * reparented), checking now and then every `intervalMs`. The timer never keeps the process alive.
 * Returns a function that stops watching.
 */
export function watchParent(parentPid: number, onOrphaned: () => void, intervalMs = POLL_MS): () => void {
  // process.ppid asks the kernel each time (getppid), so this sees a reparenting.
  const orphaned = () => process.ppid !== parentPid;
  if (orphaned()) {
    onOrphaned();
    return () => undefined;
  }
  const timer = setInterval(() => {
    if (!orphaned()) return;
    clearInterval(timer);
    onOrphaned();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * In a child started with PARENT_PID_ENV: stops this process (SIGTERM to itself, so its usual
 * shutdown runs) when that parent is gone. The variable is removed, so grandchildren do not inherit it.
 */
export function stopWhenParentDies(env: NodeJS.ProcessEnv = process.env): void {
  const value = env[PARENT_PID_ENV];
  delete env[PARENT_PID_ENV];
  if (value === undefined || !/^\d+$/.test(value)) return;
  const parentPid = Number(value);
  watchParent(parentPid, () => {
    // Our stderr may be a pipe to the parent that just died: a failed write must not crash the shutdown.
    process.stderr.once("error", () => undefined);
    process.stderr.write(`goulette: parent process ${parentPid} is gone; stopping\n`);
    process.kill(process.pid, "SIGTERM");
  });
}
