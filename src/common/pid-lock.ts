/**
 * A lock file naming its owner (pid, host, process start time), so that a second program wanting the
 * same resource can say who has it, and a lock left by a process that died (kill -9, OOM) is seen as
 * stale and taken over rather than blocking forever.
 *
 * The file only ever appears whole: the owner record is written to a private file first and linked in
 * place (link fails if the lock exists). A stale lock is renamed away before anything else, and the
 * renamed file checked to be the stale one: two processes taking over the same stale lock at once
 * cannot both end up holding it.
 */
import { randomBytes } from "node:crypto";
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { FailedPreconditionError } from "../errors.js";
import { isProcessRunning, readProcStat } from "./proc.js";

export interface LockOwner {
  readonly pid: number;
  readonly hostname: string;
  /** /proc start time of the owner: a pid reused by another process does not look like the owner. */
  readonly startTime?: string;
  /** Free text, e.g. "goulette dev". */
  readonly command?: string;
}

/** Another running process holds the lock. */
export class LockHeldError extends FailedPreconditionError {
  readonly file: string;
  readonly owner: LockOwner;

  constructor(file: string, owner: LockOwner) {
    const host = owner.hostname === hostname() ? "" : ` on host ${owner.hostname}`;
    super(`${file} is held by ${owner.command ?? "process"} pid ${owner.pid}${host}`);
    this.file = file;
    this.owner = owner;
  }
}

export interface PidLock {
  readonly file: string;
  /** The owner of the stale lock this one replaced, if any. */
  readonly tookOverFrom?: LockOwner;
  /** Removes the lock if it is still ours. Synchronous (usable in an 'exit' handler); idempotent. */
  release(): void;
}

const MAX_ATTEMPTS = 10;

/** Takes the lock at `file`, taking over a stale one; throws LockHeldError when a live process has it. */
export function acquirePidLock(file: string, command?: string): PidLock {
  const startTime = readProcStat(process.pid)?.startTime;
  const me: LockOwner = {
    pid: process.pid,
    hostname: hostname(),
    ...(startTime ? { startTime } : {}),
    ...(command ? { command } : {}),
  };
  const body = `${JSON.stringify(me)}\n`;
  const unique = () => `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  let tookOverFrom: LockOwner | undefined;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const mine = unique();
    writeFileSync(mine, body, { mode: 0o644 });
    try {
      linkSync(mine, file);
      return ownedLock(file, body, tookOverFrom);
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
    } finally {
      unlinkQuietly(mine);
    }
    const seen = readOrUndefined(file);
    if (seen === undefined) continue; // released meanwhile: try again
    const owner = parseOwner(seen);
    if (owner && isOwnerRunning(owner)) throw new LockHeldError(file, owner);
    // Stale (its owner is gone) or unreadable: move it aside, then make sure it was that one.
    const aside = unique();
    try {
      renameSync(file, aside);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") continue;
      throw err;
    }
    const moved = readOrUndefined(aside);
    if (moved !== seen) {
      // Someone took it over between our read and our rename: give theirs back.
      try {
        linkSync(aside, file);
      } catch {
        // A third process has the lock now; it will be found on the next attempt.
      }
    } else if (owner) {
      tookOverFrom = owner;
    }
    unlinkQuietly(aside);
  }
  throw new FailedPreconditionError(`could not take the lock ${file}: it keeps changing hands`);
}

/** The owner recorded in a lock file's text, or undefined when it is not one. */
export function parseOwner(text: string): LockOwner | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    const { pid, hostname: host, startTime, command } = value as Record<string, unknown>;
    if (typeof pid !== "number" || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
    if (typeof host !== "string") return undefined;
    return {
      pid,
      hostname: host,
      ...(typeof startTime === "string" ? { startTime } : {}),
      ...(typeof command === "string" ? { command } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * On another host we cannot tell: assume it runs (the message says which host, so a person can). Our
 * own pid in a lock we do not hold is an earlier process that had it (containers reuse small pids).
 */
function isOwnerRunning(owner: LockOwner): boolean {
  if (owner.hostname !== hostname()) return true;
  return owner.pid !== process.pid && isProcessRunning(owner.pid, owner.startTime);
}

function ownedLock(file: string, body: string, tookOverFrom: LockOwner | undefined): PidLock {
  let released = false;
  return {
    file,
    ...(tookOverFrom ? { tookOverFrom } : {}),
    release() {
      if (released) return;
      released = true;
      if (readOrUndefined(file) === body) unlinkQuietly(file);
    },
  };
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
