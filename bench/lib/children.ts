import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

/**
 * Every child process a benchmark starts (etcd, sentinels) is tracked here, so an aborted or crashed run
 * leaves nothing behind: the exit hook SIGKILLs what is still running, synchronously.
 */
const children = new Set<ChildProcess>();
const dirs = new Set<string>();

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** A temporary directory (an etcd data dir) removed on exit if its owner did not remove it. */
export function trackDir(dir: string): () => void {
  dirs.add(dir);
  return () => dirs.delete(dir);
}

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}
