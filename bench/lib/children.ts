import type { ChildProcess } from "node:child_process";

/**
 * Every child process a benchmark starts (etcd, sentinels) is tracked here, so an aborted or crashed run
 * leaves nothing behind: the exit hook SIGKILLs what is still running, synchronously.
 */
const children = new Set<ChildProcess>();

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
}

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
  }
}

process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}
