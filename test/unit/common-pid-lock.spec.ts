import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { LockHeldError, acquirePidLock, parseOwner } from "../../src/common/pid-lock.js";
import { readProcStat } from "../../src/common/proc.js";

const contenderScript = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "../fixtures/pid-lock-contender.js",
);

interface Contender {
  readonly child: ChildProcessWithoutNullStreams;
  /** The next line it prints. */
  next(): Promise<string>;
}

function startContender(file: string): Contender {
  const child = spawn(process.execPath, [contenderScript, file], { stdio: "pipe" });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    async next() {
      const line = await lines.next();
      if (line.done) throw new Error(`contender ${child.pid} ended its output`);
      return line.value;
    },
  };
}

async function stop(contender: Contender): Promise<void> {
  if (contender.child.exitCode !== null || contender.child.signalCode !== null) return;
  const exited = new Promise((resolve) => contender.child.once("exit", resolve));
  contender.child.kill("SIGKILL");
  await exited;
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const run = spawnSync("sh", ["-c", "echo $$"]);
  return Number(run.stdout.toString().trim());
}

describe("pid lock", () => {
  let dir: string;
  let n = 0;
  const lockFile = () => path.join(dir, `lock-${++n}`);
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-pid-lock-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes its owner, refuses a second process while held, and is free again once released", async () => {
    const file = lockFile();
    const holder = startContender(file);
    const other = startContender(file);
    try {
      assert.equal(await holder.next(), "ready");
      holder.child.stdin.write("go\n");
      assert.equal(await holder.next(), "won");
      const owner = parseOwner(readFileSync(file, "utf8"));
      assert.equal(owner?.pid, holder.child.pid);
      assert.equal(owner?.hostname, hostname());
      assert.equal(owner?.command, "contender");

      assert.equal(await other.next(), "ready");
      other.child.stdin.write("go\n");
      assert.equal(await other.next(), `held ${holder.child.pid}`);
      assert.throws(
        () => acquirePidLock(file),
        (err: unknown) => err instanceof LockHeldError && err.owner.pid === holder.child.pid,
      );

      const exited = new Promise((resolve) => holder.child.once("exit", resolve));
      holder.child.stdin.end();
      await exited;
      assert.equal(existsSync(file), false, "release removes the file");
      const lock = acquirePidLock(file);
      assert.equal(lock.tookOverFrom, undefined);
      lock.release();
    } finally {
      await Promise.all([stop(holder), stop(other)]);
    }
  });

  it("takes over the lock of a killed owner, and says whose it was", async () => {
    const file = lockFile();
    const holder = startContender(file);
    assert.equal(await holder.next(), "ready");
    holder.child.stdin.write("go\n");
    assert.equal(await holder.next(), "won");
    await stop(holder);
    const lock = acquirePidLock(file, "me");
    assert.equal(lock.tookOverFrom?.pid, holder.child.pid);
    assert.equal(parseOwner(readFileSync(file, "utf8"))?.pid, process.pid);
    lock.release();
    assert.equal(existsSync(file), false);
  });

  it("takes over a lock whose pid now belongs to another process, one of a dead pid, or garbage", () => {
    const reused = readProcStat(process.ppid);
    const cases = [
      { pid: deadPid(), hostname: hostname() },
      // A live process, but not the one that took the lock (another start time).
      ...(reused ? [{ pid: process.ppid, hostname: hostname(), startTime: `${reused.startTime}1` }] : []),
    ];
    for (const owner of cases) {
      const file = lockFile();
      writeFileSync(file, JSON.stringify(owner));
      const lock = acquirePidLock(file);
      assert.equal(lock.tookOverFrom?.pid, owner.pid);
      lock.release();
    }
    const file = lockFile();
    writeFileSync(file, "not a lock");
    acquirePidLock(file).release();
  });

  it("treats a live owner (same start time) and an owner on another host as holding it", () => {
    const parent = readProcStat(process.ppid);
    const owners = [
      { pid: process.ppid, hostname: hostname(), ...(parent ? { startTime: parent.startTime } : {}) },
      { pid: deadPid(), hostname: `not-${hostname()}` },
    ];
    for (const owner of owners) {
      const file = lockFile();
      writeFileSync(file, JSON.stringify(owner));
      assert.throws(
        () => acquirePidLock(file),
        (err: unknown) =>
          err instanceof LockHeldError &&
          err.owner.pid === owner.pid &&
          err.message.includes(`pid ${owner.pid}`) &&
          (owner.hostname === hostname() || err.message.includes(`on host ${owner.hostname}`)),
      );
      assert.equal(readFileSync(file, "utf8"), JSON.stringify(owner), "a held lock is left untouched");
    }
  });

  it("release leaves alone a lock that is no longer ours", () => {
    const file = lockFile();
    const lock = acquirePidLock(file);
    const theirs = JSON.stringify({ pid: process.ppid, hostname: hostname() });
    writeFileSync(file, theirs);
    lock.release();
    assert.equal(readFileSync(file, "utf8"), theirs);
  });

  it("of several processes taking over one stale lock at once, exactly one wins", async () => {
    const file = lockFile();
    writeFileSync(file, JSON.stringify({ pid: deadPid(), hostname: hostname() }));
    const contenders = Array.from({ length: 3 }, () => startContender(file));
    try {
      for (const c of contenders) assert.equal(await c.next(), "ready");
      for (const c of contenders) c.child.stdin.write("go\n");
      const outcomes = await Promise.all(contenders.map((c) => c.next()));
      const winners = contenders.filter((_, i) => outcomes[i] === "won");
      assert.equal(winners.length, 1, outcomes.join(", "));
      const winnerPid = winners[0]?.child.pid;
      for (const outcome of outcomes) if (outcome !== "won") assert.equal(outcome, `held ${winnerPid}`);
      assert.equal(parseOwner(readFileSync(file, "utf8"))?.pid, winnerPid);
      assert.deepEqual(
        readdirSync(dir).filter((name) => name.startsWith(path.basename(file))),
        [path.basename(file)],
        "no temporary or moved-aside files are left",
      );
    } finally {
      await Promise.all(contenders.map(stop));
    }
  });
});
