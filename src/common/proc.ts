/**
 * What Linux's /proc says about processes and listening sockets: enough to name the process that holds
 * a port or a lock. Every reader returns undefined where /proc is missing (macOS) or unreadable (another
 * user's process); the parsers are pure.
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import path from "node:path";

export interface ProcStat {
  /** R, S, D, Z (zombie), T, … */
  readonly state: string;
  readonly ppid: number;
  /** Clock ticks since boot at which the process started: with the pid, it names one process for good. */
  readonly startTime: string;
}

/** Parses /proc/<pid>/stat. The command name (2nd field) may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  // Fields from the 3rd (state) on; the 22nd is starttime.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const [state, ppid, startTime] = [fields[0], fields[1], fields[19]];
  if (!state || !ppid || !startTime || !/^\d+$/.test(ppid) || !/^\d+$/.test(startTime)) return undefined;
  return { state, ppid: Number(ppid), startTime };
}

export function readProcStat(pid: number): ProcStat | undefined {
  return parseProcStat(readOrEmpty(`/proc/${pid}/stat`));
}

/** The process's argv, or undefined when it cannot be read. */
export function readCommandLine(pid: number): string[] | undefined {
  const text = readOrEmpty(`/proc/${pid}/cmdline`);
  if (text === "") return undefined;
  return text.replace(/\0$/, "").split("\0");
}

/**
 * A command line short enough for a one-line message: `node …/goulette.js broker --id b1` reads
 * `goulette broker --id b1`, and anything past `maxChars` is cut.
 */
export function shortCommandLine(argv: readonly string[], maxChars = 80): string {
  const words = [...argv];
  const script = words[1] === undefined ? "" : path.basename(words[1]);
  if (path.basename(words[0] ?? "").startsWith("node") && /^goulette(\.js)?$/.test(script)) {
    words.splice(0, 2, "goulette");
  } else if (words[0] !== undefined) {
    words[0] = path.basename(words[0]);
  }
  const line = words.join(" ");
  return line.length > maxChars ? `${line.slice(0, maxChars - 1)}…` : line;
}

/** True when argv is `goulette dev …` (run through node or as the installed bin). */
export function isGouletteDev(argv: readonly string[]): boolean {
  const i = argv.findIndex((word) => /^goulette(\.js)?$/.test(path.basename(word)));
  return i >= 0 && argv[i + 1] === "dev";
}

export interface TcpListener {
  readonly port: number;
  readonly uid: number;
  /** The socket's inode: /proc/<pid>/fd/* of its holders link to `socket:[inode]`. */
  readonly inode: string;
}

const TCP_LISTEN = "0A";

/** The listening sockets in the text of /proc/net/tcp or /proc/net/tcp6. */
export function parseProcNetTcp(text: string): TcpListener[] {
  const listeners: TcpListener[] = [];
  for (const line of text.split("\n").slice(1)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
    const fields = line.trim().split(/\s+/);
    const [local, state, uid, inode] = [fields[1], fields[3], fields[7], fields[9]];
    if (state !== TCP_LISTEN || !local || !uid || !inode) continue;
    const portHex = local.slice(local.lastIndexOf(":") + 1);
    if (!/^[0-9A-Fa-f]{1,4}$/.test(portHex) || !/^\d+$/.test(uid) || !/^\d+$/.test(inode)) continue;
    listeners.push({ port: parseInt(portHex, 16), uid: Number(uid), inode });
  }
  return listeners;
}

export interface PortHolder {
  /** Undefined when the socket is known (its uid) but no process we may inspect holds it. */
  readonly pid?: number;
  readonly uid: number;
}

/**
 * Who listens on TCP `port` (any address): the pid of a process with the socket open, found through
 * /proc/net/tcp{,6} and the processes' file descriptors. Undefined off Linux or when nobody listens.
 */
export function findPortHolder(port: number): PortHolder | undefined {
  const listeners = ["/proc/net/tcp", "/proc/net/tcp6"]
    .flatMap((file) => parseProcNetTcp(readOrEmpty(file)))
    .filter((l) => l.port === port);
  const first = listeners[0];
  if (!first) return undefined;
  const wanted = new Map(listeners.map((l) => [`socket:[${l.inode}]`, l]));
  for (const entry of listDir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    for (const fd of listDir(`/proc/${entry}/fd`)) {
      const listener = wanted.get(readLink(`/proc/${entry}/fd/${fd}`));
      if (listener) return { pid: Number(entry), uid: listener.uid };
    }
  }
  return { uid: first.uid };
}

/** Whether `pid` is a running process (a zombie is not), and, when `startTime` is given, that one. */
export function isProcessRunning(pid: number, startTime?: string): boolean {
  // kill(0 or a negative pid) would signal a whole process group.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = readProcStat(pid);
  if (!stat) return true; // no /proc: kill(0) is all we know
  if (stat.state === "Z") return false;
  return startTime === undefined || stat.startTime === startTime;
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readLink(file: string): string {
  try {
    return readlinkSync(file);
  } catch {
    return "";
  }
}
