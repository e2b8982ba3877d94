/**
 * "Is this port free, and if not, who has it?" — asked before starting a server, so that a taken port
 * is one readable line naming the holder and the way out, instead of a raw `EADDRINUSE` error object.
 */
import net from "node:net";
import { FailedPreconditionError } from "../errors.js";
import { findPortHolder, isGouletteDev, readCommandLine, readProcStat, shortCommandLine } from "./proc.js";

/** A server could not listen on host:port: taken, privileged, or not an address of this machine. */
export class ListenError extends FailedPreconditionError {
  readonly host: string;
  readonly port: number;
  /** The errno code: EADDRINUSE, EACCES, EADDRNOTAVAIL, … */
  readonly errno: string;

  constructor(message: string, host: string, port: number, errno: string) {
    super(message);
    this.host = host;
    this.port = port;
    this.errno = errno;
  }
}

export interface PortNeed {
  host: string;
  port: number;
  /** What would listen there, for the message: "broker-3", "etcd client port". */
  what?: string;
  /** What the reader can do about it: "stop that process, or pass another --address". */
  remedy: string;
}

/** Listens on host:port for a moment. Resolves undefined when that worked, else with the error. */
export function probePort(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** The ListenError for a failed listen (a probe's or a server's). */
export function listenError(need: PortNeed, err: NodeJS.ErrnoException): ListenError {
  const where = `${need.host.includes(":") ? `[${need.host}]` : need.host}:${need.port}`;
  const what = need.what ? ` (${need.what})` : "";
  const code = err.code ?? "UNKNOWN";
  let problem: string;
  if (code === "EADDRINUSE") problem = `${where}${what} is already in use${describePortHolder(need.port)}`;
  else if (code === "EACCES") {
    problem = `cannot listen on ${where}${what}: permission denied (ports below 1024 need privileges)`;
  } else if (code === "EADDRNOTAVAIL") {
    problem = `cannot listen on ${where}${what}: ${need.host} is not an address of this machine`;
  } else problem = `cannot listen on ${where}${what}: ${err.message}`;
  return new ListenError(`${problem}: ${need.remedy}`, need.host, need.port, code);
}

/**
 * Probes every port, in order, and throws a ListenError for the first that cannot be listened on
 * (saying how many more are taken too). Nothing stays bound.
 */
export async function assertPortsFree(needs: readonly PortNeed[]): Promise<void> {
  let first: ListenError | undefined;
  let more = 0;
  for (const need of needs) {
    const err = await probePort(need.host, need.port);
    if (!err) continue;
    if (first) more++;
    else first = listenError(need, err);
  }
  if (!first) return;
  if (more === 0) throw first;
  const others = `${more} more port${more === 1 ? " is" : "s are"} taken too`;
  throw new ListenError(`${first.message} (${others})`, first.host, first.port, first.errno);
}

/**
 * " by pid 4242 (goulette broker --id b1 …)" and, when that is a child of a `goulette dev`, which
 * one; " by a process of uid N" when we may not look; "" when /proc cannot tell (not Linux).
 */
export function describePortHolder(port: number): string {
  const holder = findPortHolder(port);
  if (!holder) return "";
  if (holder.pid === undefined) return ` by a process of uid ${holder.uid}`;
  if (holder.pid === process.pid) return " by this very process";
  const facts: string[] = [];
  const argv = readCommandLine(holder.pid);
  if (argv) facts.push(shortCommandLine(argv, 60));
  const ppid = readProcStat(holder.pid)?.ppid;
  const parentArgv = ppid === undefined ? undefined : readCommandLine(ppid);
  if (parentArgv && isGouletteDev(parentArgv)) facts.push(`started by goulette dev pid ${ppid}`);
  return ` by pid ${holder.pid}${facts.length > 0 ? ` (${facts.join(", ")})` : ""}`;
}
