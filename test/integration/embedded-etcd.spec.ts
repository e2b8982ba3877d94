import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, symlink, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Etcd3 } from "etcd3";
import {
  EmbeddedEtcdError,
  EtcdBinaryNotFoundError,
  findExecutable,
  startEmbeddedEtcd,
  type EmbeddedEtcd,
  type EmbeddedEtcdOptions,
} from "../../src/coordination/embedded-etcd.js";
import { FailedPreconditionError } from "../../src/errors.js";
import { createLogger, silentLogger } from "../../src/observability/logger.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

// Everything a test creates, undone even when the test fails half-way.
const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-embedded-etcd-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function options(overrides: Partial<EmbeddedEtcdOptions> = {}): Promise<EmbeddedEtcdOptions> {
  return {
    name: "test",
    clientPort: await freePort(),
    peerPort: await freePort(),
    dataDir: path.join(await tempDir(), "data"),
    logger: silentLogger(),
    startTimeoutMs: 15_000,
    ...overrides,
  };
}

async function start(opts: EmbeddedEtcdOptions): Promise<EmbeddedEtcd> {
  const etcd = await startEmbeddedEtcd(opts);
  cleanups.push(() => etcd.stop());
  return etcd;
}

/**
 * Whether `pid` is a running process. A zombie counts as gone: it runs nothing and holds no port, and an
 * orphan's zombie waits for PID 1 to reap it, which here can take a while.
 */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may contain spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (macOS): kill(pid, 0) is all we have
  }
}

async function waitGone(pid: number): Promise<void> {
  await waitFor(() => !isRunning(pid), { timeoutMs: 10_000, what: `process ${pid} to be gone` });
}

/** Pids of live processes whose command line mentions `needle` (Linux /proc). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(needle) && isRunning(Number(entry))) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

async function occupy(port: number): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return server;
}

/** An executable shell script standing in for etcd, to reach paths real etcd does not take on demand. */
async function fakeEtcd(body: string): Promise<string> {
  const file = path.join(await tempDir(), "fake-etcd");
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

const realEtcd = findExecutable("etcd");
const hasParentDeathSignal = process.platform === "linux" && findExecutable("setpriv") !== undefined;

describe("embedded etcd", { skip: realEtcd === undefined && "no etcd binary on PATH" }, () => {
  test("starts and answers a put and a get through the etcd3 client", async () => {
    const opts = await options();
    const etcd = await start(opts);
    assert.equal(etcd.endpoint, `http://127.0.0.1:${opts.clientPort}`);
    assert.ok(isRunning(etcd.pid));
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      await client.put("/goulette/test/key").value("hello");
      assert.equal(await client.get("/goulette/test/key").string(), "hello");
    } finally {
      client.close();
    }
  });

  test("stop() leaves no process, can be called again, and exited resolves", async () => {
    const etcd = await start(await options());
    assert.ok(isRunning(etcd.pid));
    await Promise.all([etcd.stop(), etcd.stop()]);
    await waitGone(etcd.pid);
    const code = await etcd.exited; // resolves (does not reject) after stop()
    assert.ok(code === null || typeof code === "number");
    await etcd.stop();
  });

  test("data persists across stop and start on the same data dir", async () => {
    const opts = await options();
    const first = await start(opts);
    const client = new Etcd3({ hosts: first.endpoint });
    await client.put("/goulette/test/persisted").value("still here");
    client.close();
    await first.stop();
    await waitGone(first.pid);

    const second = await start(opts);
    assert.notEqual(second.pid, first.pid);
    const again = new Etcd3({ hosts: second.endpoint });
    try {
      assert.equal(await again.get("/goulette/test/persisted").string(), "still here");
    } finally {
      again.close();
    }
  });

  test("a missing binary path fails with the install hint, before creating anything", async () => {
    const opts = await options({ binary: "/nonexistent/etcd" });
    await assert.rejects(startEmbeddedEtcd(opts), (err: unknown) => {
      assert.ok(err instanceof EtcdBinaryNotFoundError);
      assert.ok(err instanceof FailedPreconditionError);
      assert.equal(err.code, Code.FailedPrecondition);
      assert.match(err.message, /looked for '\/nonexistent\/etcd'/);
      assert.match(err.message, /sudo apt-get install etcd-server/);
      assert.match(err.message, /brew install etcd/);
      assert.match(err.message, /--etcd-endpoints/);
      return true;
    });
    assert.equal(existsSync(opts.dataDir), false);
  });

  test("no etcd on PATH gives the exact install message; GOULETTE_ETCD_BINARY is named when used", async () => {
    const opts = await options();
    const emptyBin = await tempDir();
    const saved = { PATH: process.env.PATH, bin: process.env.GOULETTE_ETCD_BINARY };
    try {
      process.env.PATH = emptyBin;
      delete process.env.GOULETTE_ETCD_BINARY;
      await assert.rejects(startEmbeddedEtcd(opts), {
        name: "EtcdBinaryNotFoundError",
        message:
          "etcd binary not found (looked for 'etcd' on PATH). Install it: `sudo apt-get install etcd-server` " +
          "on Debian/Ubuntu, `brew install etcd` on macOS, or pass --etcd-endpoints to use an external etcd.",
      });
      process.env.GOULETTE_ETCD_BINARY = "/nonexistent/custom-etcd";
      await assert.rejects(startEmbeddedEtcd(opts), {
        name: "EtcdBinaryNotFoundError",
        message: /looked for '\/nonexistent\/custom-etcd', set by GOULETTE_ETCD_BINARY\)/,
      });
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.bin === undefined) delete process.env.GOULETTE_ETCD_BINARY;
      else process.env.GOULETTE_ETCD_BINARY = saved.bin;
    }
  });

  test("GOULETTE_ETCD_BINARY picks the binary that runs", async () => {
    const opts = await options({ startTimeoutMs: 5_000 });
    const marker = path.join(path.dirname(opts.dataDir), "ran");
    const fake = await fakeEtcd(`touch '${marker}'; exit 7`);
    const saved = process.env.GOULETTE_ETCD_BINARY;
    try {
      process.env.GOULETTE_ETCD_BINARY = fake;
      await assert.rejects(startEmbeddedEtcd(opts), { name: "EmbeddedEtcdError", message: /exit code 7/ });
    } finally {
      if (saved === undefined) delete process.env.GOULETTE_ETCD_BINARY;
      else process.env.GOULETTE_ETCD_BINARY = saved;
    }
    assert.ok(existsSync(marker));
  });

  for (const role of ["client", "peer"] as const) {
    test(`a ${role} port already in use fails clearly and leaves no process`, async () => {
      const opts = await options();
      const port = role === "client" ? opts.clientPort : opts.peerPort;
      assert.ok(port !== undefined);
      await occupy(port);
      await assert.rejects(startEmbeddedEtcd(opts), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.match(err.message, new RegExp(`${role} port 127\\.0\\.0\\.1:${port} is already in use`));
        return true;
      });
      if (existsSync("/proc")) assert.deepEqual(processesMentioning(opts.dataDir), []);
    });
  }

  test("etcd exiting before it is healthy: the error has its exit code and last log lines", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "debug",
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString());
          callback();
        },
      }),
    });
    const fake = await fakeEtcd(
      `echo '{"level":"info","ts":"2024-01-01T00:00:00Z","msg":"starting"}' >&2\n` +
        `echo '{"level":"fatal","ts":"2024-01-01T00:00:00Z","msg":"listen failed",` +
        `"error":"listen tcp 127.0.0.1:1: bind: address already in use"}' >&2\n` +
        "exit 3",
    );
    const opts = await options({ binary: fake, logger });
    await assert.rejects(startEmbeddedEtcd(opts), (err: unknown) => {
      assert.ok(err instanceof EmbeddedEtcdError);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /exited with exit code 3 before becoming healthy/);
      assert.match(err.message, /a port is already in use/);
      assert.match(
        err.message,
        /fatal listen failed error=listen tcp 127\.0\.0\.1:1: bind: address already in use/,
      );
      assert.equal(err.logTail.length, 2);
      return true;
    });
    // etcd's lines also went to our logger, at debug.
    const logged = lines.map((line) => JSON.parse(line) as { level: string; msg: string });
    assert.ok(logged.some((entry) => entry.level === "debug" && entry.msg === "etcd: listen failed"));
  });

  test("etcd that never becomes healthy is killed at the deadline", async () => {
    const dir = await tempDir();
    const pidFile = path.join(dir, "pid");
    const fake = await fakeEtcd(`echo $$ > '${pidFile}'\necho 'stuck starting' >&2\nexec sleep 30`);
    const opts = await options({ binary: fake, startTimeoutMs: 600 });
    await assert.rejects(startEmbeddedEtcd(opts), (err: unknown) => {
      assert.ok(err instanceof EmbeddedEtcdError);
      assert.match(err.message, /did not become healthy within 600 ms/);
      assert.match(err.message, /stuck starting/);
      return true;
    });
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    assert.ok(pid > 0);
    await waitGone(pid);
  });

  test("an etcd that dies on its own rejects exited", async () => {
    const etcd = await start(await options());
    process.kill(etcd.pid, "SIGKILL");
    await assert.rejects(etcd.exited, (err: unknown) => {
      assert.ok(err instanceof EmbeddedEtcdError);
      assert.match(err.message, new RegExp(`pid ${etcd.pid}\\) exited unexpectedly with signal SIGKILL`));
      return true;
    });
    await etcd.stop(); // nothing left to stop: resolves at once
  });

  describe("a parent process that ends abruptly", () => {
    const moduleUrl = new URL("../../src/coordination/embedded-etcd.js", import.meta.url).href;
    const loggerUrl = new URL("../../src/observability/logger.js", import.meta.url).href;

    /**
     * Runs a script that starts embedded etcd and prints its pid, then sends `signal` to the script and
     * waits for the script to end. `withoutSetpriv` runs it with a PATH that holds only etcd, as on a host
     * without util-linux setpriv; `exitOnSigterm` installs the handler an entry point would have.
     */
    async function runParent(
      signal: NodeJS.Signals,
      settings: { withoutSetpriv?: boolean; exitOnSigterm?: boolean } = {},
    ): Promise<number> {
      const dir = await tempDir();
      const script = path.join(dir, "parent.mjs");
      await writeFile(
        script,
        [
          `import { startEmbeddedEtcd } from ${JSON.stringify(moduleUrl)};`,
          `import { silentLogger } from ${JSON.stringify(loggerUrl)};`,
          settings.exitOnSigterm ? `process.on("SIGTERM", () => process.exit(0));` : "",
          `const [clientPort, peerPort, dataDir] = process.argv.slice(2);`,
          `const etcd = await startEmbeddedEtcd({ clientPort: Number(clientPort), peerPort: Number(peerPort),`,
          `  dataDir, logger: silentLogger() });`,
          `process.stdout.write(JSON.stringify({ pid: etcd.pid }) + "\\n");`,
          `setInterval(() => {}, 1 << 30);`,
        ].join("\n"),
      );
      const env = { ...process.env };
      delete env.GOULETTE_ETCD_BINARY;
      if (settings.withoutSetpriv) {
        const bin = path.join(dir, "bin");
        await mkdir(bin);
        assert.ok(realEtcd !== undefined);
        await symlink(realEtcd, path.join(bin, "etcd"));
        env.PATH = bin;
      }
      const parent = spawn(
        process.execPath,
        [script, String(await freePort()), String(await freePort()), path.join(dir, "data")],
        { env, stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      parent.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      parent.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const parentExited = new Promise<void>((resolve) => parent.once("exit", () => resolve()));
      cleanups.push(() => {
        if (parent.exitCode === null && parent.signalCode === null) parent.kill("SIGKILL");
      });
      const { pid } = await waitFor(
        () => {
          if (parent.exitCode !== null) throw new Error(`parent exited ${parent.exitCode}: ${stderr}`);
          const line = stdout.split("\n")[0];
          return stdout.includes("\n") && line ? (JSON.parse(line) as { pid: number }) : undefined;
        },
        { timeoutMs: 20_000, what: "the parent script to start etcd" },
      );
      cleanups.push(() => {
        if (isRunning(pid)) process.kill(pid, "SIGKILL");
      });
      assert.ok(isRunning(pid));
      parent.kill(signal);
      await parentExited;
      return pid;
    }

    test(
      "SIGTERM without a handler: the kernel kills etcd (setpriv --pdeathsig)",
      { skip: !hasParentDeathSignal && "needs Linux with util-linux setpriv" },
      async () => {
        await waitGone(await runParent("SIGTERM"));
      },
    );

    test(
      "SIGKILL: the kernel kills etcd (setpriv --pdeathsig)",
      { skip: !hasParentDeathSignal && "needs Linux with util-linux setpriv" },
      async () => {
        await waitGone(await runParent("SIGKILL"));
      },
    );

    test("a SIGTERM handler that calls process.exit(): the 'exit' hook kills etcd, no setpriv needed", async () => {
      await waitGone(await runParent("SIGTERM", { withoutSetpriv: true, exitOnSigterm: true }));
    });

    test(
      "control: without setpriv a SIGKILLed parent orphans etcd (the documented limitation)",
      { skip: process.platform !== "linux" && "needs /proc" },
      async () => {
        // Shows that the test above exercises the 'exit' hook, not the parent-death signal.
        const pid = await runParent("SIGKILL", { withoutSetpriv: true });
        assert.ok(isRunning(pid));
        process.kill(pid, "SIGKILL");
        await waitGone(pid);
      },
    );
  });
});
