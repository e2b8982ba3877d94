import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

/** What the figures were measured on (kept in every result file and in docs/benchmarks.md). */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  etcd: string;
  /** 1/5/15-minute load averages when the benchmark started: the machine is shared. */
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line) cpuModel = line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // not Linux: os.cpus() is good enough
  }
  let etcd = "unknown";
  try {
    etcd = /etcd Version: (\S+)/.exec(execFileSync("etcd", ["--version"], { encoding: "utf8" }))?.[1] ?? etcd;
  } catch {
    etcd = "not installed";
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    etcd,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
