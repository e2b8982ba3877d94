import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { buildConsole } from "../../scripts/build-console.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { freePort } from "../helpers/ports.js";
import { GOULETTE_BIN } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/** `goulette dev` hands the sentinel, broker and --rpc-* options it was given to its children. */
describe("goulette dev", () => {
  let dev: ChildProcess;
  let output = "";
  let dataDir: string;
  let sentinelUrl: string;

  before(async () => {
    await buildConsole(); // what `goulette dev` serves at /ui/
    dataDir = await mkdtemp(path.join(tmpdir(), "goulette-dev-"));
    const [sentinelPort, brokerPort, etcdPort, etcdPeerPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    sentinelUrl = `http://127.0.0.1:${sentinelPort}`;
    // The children inherit the environment: none of the options under test may come from there.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_")));
    dev = spawn(
      process.execPath,
      [
        GOULETTE_BIN,
        "dev",
        // The former spellings of --sentinel-count/--broker-count (the other specs use the new ones).
        ...["--data-dir", dataDir, "--sentinels", "1", "--brokers", "1"],
        ...["--sentinel-port", String(sentinelPort), "--broker-port", String(brokerPort)],
        ...["--etcd-port", String(etcdPort), "--etcd-peer-port", String(etcdPeerPort), "--log-level", "info"],
        ...["--virtual-nodes", "20", "--rpc-max-connections", "77", "--segment-bytes", "1048576"],
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    dev.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    dev.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(
      () => {
        if (dev.exitCode !== null) throw new Error(`goulette dev exited ${dev.exitCode}:\n${output}`);
        return output.includes("Goulette dev cluster is up");
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "the dev cluster" },
    );
  });
  after(async () => {
    if (dev.exitCode === null && dev.signalCode === null) {
      const exited = new Promise((resolve) => dev.once("exit", resolve));
      dev.kill("SIGTERM");
      await exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  /** The `sources` of a child's "starting …" log line: which options it was given. */
  const startupSources = (msg: string) => {
    const line = output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg?: string; sources?: Record<string, string> })
      .find((l) => l.msg === msg);
    assert.ok(line?.sources, `a "${msg}" line in:\n${output.slice(-4000)}`);
    return line.sources;
  };

  it("prints the web console's URL, which serves the console", async () => {
    assert.match(output, new RegExp(`console +${sentinelUrl}/ui/ `));
    const res = await fetch(`${sentinelUrl}/ui/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<title>Goulette console<\/title>/);
  });

  it("still takes the former --sentinels/--brokers counts, saying they are now --sentinel-count/--broker-count", () => {
    assert.match(output, /--sentinels is deprecated; use --sentinel-count/);
    assert.match(output, /--brokers is deprecated; use --broker-count/);
  });

  it("passes the options set on it to the processes that have them, and nothing else", () => {
    const sentinel = startupSources("starting sentinel");
    assert.equal(sentinel.virtualNodes, "flag");
    assert.equal(sentinel.rpcMaxConnections, "flag");
    assert.equal(sentinel.snapshotEvery, "default", "options not set on dev keep the child's default");
    assert.equal(sentinel.rpcIdleTimeout, "default");
    const broker = startupSources("starting broker");
    assert.equal(broker.segmentBytes, "flag");
    assert.equal(broker.rpcMaxConnections, "flag");
    assert.equal(broker.minInsyncReplicas, "default");
  });

  it("the sentinels build the ring with the --virtual-nodes given to dev", async () => {
    const client = createClient(SentinelService, createGrpcTransport({ baseUrl: sentinelUrl }));
    const status = await waitFor(
      async () => {
        const res = await client.getClusterStatus({});
        return res.ringBrokers === 1 ? res : undefined;
      },
      { what: "the broker to join the ring" },
    );
    assert.equal(status.ringVirtualNodes, 20);
  });

  it("refuses inconsistent --rpc-* options before starting anything", async () => {
    // Free ports all the same: should the check ever regress, nothing collides with a real dev cluster.
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const refused = spawn(
      process.execPath,
      [
        GOULETTE_BIN,
        "dev",
        ...["--data-dir", path.join(dataDir, "never"), "--rpc-request-timeout", "1000"],
        ...["--sentinel-port", String(ports[0]), "--broker-port", String(ports[1])],
        ...["--etcd-port", String(ports[2]), "--etcd-peer-port", String(ports[3])],
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    refused.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise((resolve) => refused.once("exit", resolve));
    const timer = setTimeout(() => refused.kill("SIGTERM"), 15_000);
    const code = await exited.finally(() => clearTimeout(timer));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /--rpc-headers-timeout .* more than --rpc-request-timeout/);
  });
});
