import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { isProcessRunning } from "../../src/common/proc.js";
import { PARENT_PID_ENV } from "../../src/common/parent-watch.js";
import {
  allDevPorts,
  cleanEnv,
  devArgs,
  devPorts,
  processesMentioning,
  runGoulette,
  takenPorts,
} from "../helpers/dev-process.js";
import { GOULETTE_BIN } from "../helpers/goulette-process.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

const linux = process.platform === "linux";

/** Holds 127.0.0.1:<port> (any free one when 0) in this process until released; hangs up on callers. */
async function holdPort(port = 0): Promise<net.Server & { port: number; release(): Promise<void> }> {
  // dev's readiness polls connect here: an unanswered, unread socket would keep close() waiting.
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return Object.assign(server, {
    port: (server.address() as net.AddressInfo).port,
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

describe("start-up errors of goulette dev, sentinel and broker", () => {
  let root: string;
  let n = 0;
  const freshDir = () => path.join(root, `d${++n}`);
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "goulette-dev-errors-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("dev on a port another program holds exits at once with one line, and starts nothing", async () => {
    const ports = await devPorts(1, 2);
    const held = await holdPort(ports.brokerPort + 1);
    try {
      const dataDir = freshDir();
      const run = await runGoulette([...devArgs(dataDir, ports, 1, 2), "--log-level", "info"]);
      assert.equal(run.code, 1, run.stderr);
      const holder = linux ? ` by pid ${process.pid} \\([^)]*\\)` : "";
      assert.match(
        run.stderr,
        new RegExp(
          `^goulette: 127\\.0\\.0\\.1:${held.port} \\(broker-2\\) is already in use${holder}: ` +
            `stop that process, or start this one with another --broker-port\\n$`,
        ),
      );
      assert.equal(run.stdout, "", "no child was started");
      assert.ok(run.ms < 10_000, `exited after ${run.ms} ms`);
      assert.equal(existsSync(path.join(dataDir, "etcd")), false, "etcd was not started");
      assert.equal(existsSync(path.join(dataDir, "dev.lock")), false, "the lock was let go");
      const others = allDevPorts(ports, 1, 2).filter((p) => p !== held.port);
      assert.deepEqual(await takenPorts(others), []);
    } finally {
      await held.release();
    }
  });

  it("dev whose child fails to start fails the start-up with its reason and stops the rest", async () => {
    const ports = await devPorts(1, 1);
    const dataDir = freshDir();
    const dev = spawn(
      process.execPath,
      [GOULETTE_BIN, ...devArgs(dataDir, ports, 1, 1), "--log-level", "info"],
      {
        env: cleanEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    dev.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    dev.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => dev.once("close", (code) => resolve(code)));
    const timer = setTimeout(() => dev.kill("SIGKILL"), 90_000);
    let held: Awaited<ReturnType<typeof holdPort>> | undefined;
    try {
      // Dev checked the broker's port long ago; taken now, once the sentinel listens, the broker (started
      // only when the sentinel is ready) finds it taken: a child failing during start-up.
      await waitFor(
        () => {
          if (dev.exitCode !== null) throw new Error(`dev exited early:\n${stdout}${stderr}`);
          return stdout.includes('"sentinel":"sentinel-1"') && stdout.includes("serving gRPC");
        },
        { timeoutMs: 60_000, what: "the sentinel to listen" },
      );
      held = await holdPort(ports.brokerPort);
      assert.equal(await exited, 1, stderr);
    } finally {
      clearTimeout(timer);
      await held?.release();
      dev.kill("SIGKILL");
    }
    const last = stderr.trimEnd().split("\n").at(-1) ?? "";
    assert.match(
      last,
      new RegExp(
        `^goulette: broker-1 failed to start: 127\\.0\\.0\\.1:${ports.brokerPort} \\(broker broker-1\\) ` +
          `is already in use by pid ${process.pid} .*: stop that process, or pass another --address$`,
      ),
      stderr,
    );
    assert.doesNotMatch(stdout + stderr, /degraded/);
    // dev waits for its children before exiting: nothing of the cluster is left, at once.
    assert.deepEqual(await takenPorts(allDevPorts(ports, 1, 1)), []);
    if (linux) assert.deepEqual(processesMentioning(dataDir), []);
    if (linux) assert.deepEqual(processesMentioning(`127.0.0.1:${ports.etcdPort}`), []);
    assert.equal(existsSync(path.join(dataDir, "dev.lock")), false);
  });

  for (const command of ["broker", "sentinel"] as const) {
    it(`${command} on a taken port exits with one readable line`, async () => {
      const held = await holdPort();
      try {
        const args =
          command === "broker"
            ? ["--data-dir", freshDir(), "--sentinels", `http://127.0.0.1:${await freePort()}`]
            : ["--etcd-endpoints", `http://127.0.0.1:${await freePort()}`];
        const run = await runGoulette([
          command,
          "--id",
          "x1",
          "--address",
          `127.0.0.1:${held.port}`,
          ...args,
        ]);
        assert.equal(run.code, 1, run.stderr);
        const holder = linux ? ` by pid ${process.pid} \\([^)]*\\)` : "";
        assert.match(
          run.stderr,
          new RegExp(
            `^goulette: 127\\.0\\.0\\.1:${held.port} \\(${command} x1\\) is already in use${holder}: ` +
              `stop that process, or pass another --address\\n$`,
          ),
        );
      } finally {
        await held.release();
      }
    });
  }

  it("a child of dev stops by itself once dev is gone, even without the parent-death signal", async () => {
    const port = await freePort();
    const dataDir = freshDir();
    // A stand-in for dev that starts a broker the plain way (no setpriv), tells us its pid, and waits.
    const script = `
      const { spawn } = require("node:child_process");
      const broker = spawn(process.execPath, process.argv.slice(1), {
        stdio: ["ignore", "ignore", "inherit"],
        env: { ...process.env, ${PARENT_PID_ENV}: String(process.pid) },
      });
      console.log(broker.pid);
      setInterval(() => {}, 60_000);`;
    const parent = spawn(
      process.execPath,
      [
        "-e",
        script,
        GOULETTE_BIN,
        ...["broker", "--id", "orphan", "--address", `127.0.0.1:${port}`, "--data-dir", dataDir],
        ...["--sentinels", `http://127.0.0.1:${await freePort()}`, "--allow-anonymous"],
      ],
      { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    parent.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const brokerPid = await new Promise<number>((resolve, reject) => {
      parent.once("exit", (code) => reject(new Error(`the stand-in exited with ${code}: ${stderr}`)));
      createInterface({ input: parent.stdout }).once("line", (line) => resolve(Number(line)));
    });
    try {
      await waitFor(async () => (await takenPorts([port])).length === 1, { what: "the broker to listen" });
      parent.kill("SIGKILL");
      await waitFor(() => !isProcessRunning(brokerPid), { timeoutMs: 5_000, what: "the orphan to stop" });
      assert.deepEqual(await takenPorts([port]), []);
      // Its stderr was inherited from the stand-in's pipe, which it kept open.
      assert.match(stderr, /goulette: parent process \d+ is gone; stopping/);
    } finally {
      parent.kill("SIGKILL");
      if (isProcessRunning(brokerPid)) process.kill(brokerPid, "SIGKILL");
    }
  });
});
