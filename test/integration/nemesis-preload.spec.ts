import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { NODE_PRELOAD, NodeControls } from "../chaos/nemesis/node-control.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The nemesis's preload (test/chaos/nemesis/node-preload.ts) does what the faults rely on, in a stand-in
 * node (test/fixtures/nemesis-node.ts): its clock is shifted, its connections leave from its own
 * loopback address (so a proxy can cut it alone), and a power loss leaves its files at their last
 * fsynced length.
 */

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/nemesis-node.js");

describe("nemesis node preload", () => {
  let dir: string;
  let echo: net.Server;
  let proxy: TcpProxy;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-nemesis-preload-"));
    echo = net.createServer((s) => s.on("data", (d) => s.write(d)));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    proxy = await startTcpProxy({ target: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` });
  });

  after(async () => {
    await proxy.close();
    echo.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function runNode(id: string, controls: NodeControls) {
    const file = path.join(dir, `${id}.log`);
    const child = spawn(
      process.execPath,
      ["--import", NODE_PRELOAD, FIXTURE, "--id", id, proxy.address, file],
      {
        env: { ...process.env, GOULETTE_NEMESIS_DIR: controls.dir },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const lines: Record<string, unknown>[] = [];
    let partial = "";
    child.stdout.on("data", (chunk: Buffer) => {
      const text = partial + chunk.toString();
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      for (const p of parts) lines.push(JSON.parse(p) as Record<string, unknown>);
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_, s) => resolve(s)));
    await waitFor(() => lines.some((l) => l.step === "written"), {
      timeoutMs: 20_000,
      what: `${id} to write`,
    });
    return { child, lines, file, exited };
  }

  it("shifts the clock, sources connections from its address, loses unsynced appends at a power loss", async () => {
    const controls = new NodeControls(dir);
    await controls.init("n1", { clockOffsetMs: 3_600_000, sourceAddress: "127.0.0.12", lazyFs: true });
    proxy.setSourceMode("127.0.0.12", "drop");
    const before = Date.now();
    const node = await runNode("n1", controls);
    const clock = node.lines.find((l) => l.step === "clock") as { now: number; date: number };
    assert.ok(
      clock.now - before >= 3_600_000 && clock.now - before < 3_660_000,
      `shifted Date.now: ${clock.now - before}`,
    );
    assert.ok(Math.abs(clock.date - clock.now) < 1_000, "new Date() shifted like Date.now()");
    assert.equal(
      node.lines.find((l) => l.step === "connect")?.outcome !== "echoed",
      true,
      "cut off by its source address",
    );
    assert.equal((await stat(node.file)).size, 150);

    // The clock steps back at run time.
    await controls.update("n1", { clockOffsetMs: 0 }, node.child.pid);
    await waitFor(
      () => {
        const last = node.lines.filter((l) => l.step === "clock").at(-1) as { now: number } | undefined;
        return last !== undefined && Math.abs(last.now - Date.now()) < 5_000;
      },
      { timeoutMs: 10_000, what: "the clock to step back" },
    );

    await controls.update("n1", { powerLoss: true }, node.child.pid);
    assert.equal(await node.exited, "SIGKILL");
    assert.equal(await controls.applyPowerLoss("n1"), 50, "the 50 bytes written after the fsync are dropped");
    assert.equal((await stat(node.file)).size, 100);
  });

  it("lets the same node through when its source is not cut", async () => {
    proxy.setSourceMode("127.0.0.12", undefined);
    const controls = new NodeControls(dir);
    await controls.init("n2", { sourceAddress: "127.0.0.12" });
    const node = await runNode("n2", controls);
    assert.equal(node.lines.find((l) => l.step === "connect")?.outcome, "echoed");
    node.child.kill("SIGKILL");
    await node.exited;
  });
});
