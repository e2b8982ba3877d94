import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { freePort } from "../helpers/ports.js";
import { startSentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/** Processes whose command line mentions `needle` (pgrep -f), excluding pgrep itself. */
function processesMentioning(needle: string): string[] {
  try {
    return execFileSync("pgrep", ["-af", "--", needle], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.includes("pgrep"));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("goulette sentinel --enable-embedded-etcd", () => {
  let dataDir = "";
  after(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("starts alone, serves GetBrokers, and leaves no etcd behind on SIGTERM", async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "goulette-embedded-"));
    const etcdDir = path.join(dataDir, "etcd");
    const etcdPort = await freePort();
    const sentinel = await startSentinelProcess({
      id: "solo",
      args: [
        "--enable-embedded-etcd",
        "--etcd-port",
        String(etcdPort),
        "--etcd-peer-port",
        String(await freePort()),
        "--etcd-data-dir",
        etcdDir,
        "--log-level",
        "warn",
      ],
    });
    try {
      assert.equal(processesMentioning(`--data-dir=${etcdDir}`).length, 1, "one embedded etcd runs");
      await waitFor(async () => (await sentinel.client.getClusterStatus({})).leaderUrl === sentinel.url, {
        what: "the sentinel to lead",
      });
      await sentinel.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:39001" });
      const res = await sentinel.client.getBrokers({ topic: "hello", replicaCount: 1 });
      assert.equal(res.partitions.length, 3);
      assert.deepEqual(
        res.brokers.map((b) => b.brokerId),
        ["b1"],
      );
    } finally {
      await sentinel.kill("SIGTERM");
    }
    assert.equal(await sentinel.exited, 0, `clean exit:\n${sentinel.logTail()}`);
    await waitFor(() => processesMentioning(`--data-dir=${etcdDir}`).length === 0, {
      what: "the embedded etcd to exit",
    });
    assert.equal(await portOpen(etcdPort), false, "nothing listens on the etcd port");
  });

  it("says what to install when the etcd binary is missing", async () => {
    const sentinel = await startSentinelProcess({
      id: "no-etcd",
      args: [
        "--enable-embedded-etcd",
        "--etcd-port",
        String(await freePort()),
        "--etcd-peer-port",
        String(await freePort()),
      ],
      env: { GOULETTE_ETCD_BINARY: "/nonexistent/etcd" },
      waitReady: false,
    });
    const code = await sentinel.exited;
    assert.equal(code, 1);
    assert.match(sentinel.logTail(), /etcd binary not found/);
    assert.match(sentinel.logTail(), /apt-get install etcd-server/);
  });
});
