import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { SERVER_CONNECTION_WINDOW_BYTES, SERVER_STREAM_WINDOW_BYTES } from "../../src/server/rpc-server.js";
import { startBrokerProcess } from "../helpers/broker-process.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/**
 * What a server gives a new HTTP/2 connection: its SETTINGS, and the connection's receive window once the
 * server's WINDOW_UPDATE raising it (sent after the SETTINGS) has arrived, or as it stands after 5 s.
 */
async function advertised(url: string): Promise<{ settings: http2.Settings; connectionWindow: number }> {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  try {
    const settings = await new Promise<http2.Settings>((resolve, reject) => {
      session.once("remoteSettings", resolve);
      setTimeout(() => reject(new Error("no SETTINGS within 5 s")), 5_000).unref();
    });
    const window = () => session.state.remoteWindowSize ?? 0;
    await waitFor(() => window() >= SERVER_CONNECTION_WINDOW_BYTES, {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: "the server to raise the connection window",
    }).catch(() => undefined); // the assertion says what was seen
    return { settings, connectionWindow: window() };
  } finally {
    session.close();
  }
}

/** The SETTINGS_MAX_CONCURRENT_STREAMS a server advertises on a new HTTP/2 connection. */
async function advertisedStreams(url: string): Promise<number | undefined> {
  return (await advertised(url)).settings.maxConcurrentStreams;
}

/**
 * The --rpc-* options reach the RPC server of the real `goulette sentinel` and `goulette broker`
 * processes, from a flag, an environment variable and a YAML file; nonsense stops the process at start
 * with a sentence naming the option.
 */
describe("RPC server limits from the command line, environment and config file", () => {
  let etcd: TestEtcd;
  let sentinel: SentinelProcess;
  let dir: string;

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(path.join(tmpdir(), "goulette-rpc-limits-"));
    sentinel = await startSentinelProcess({
      id: "limits-s1",
      etcdEndpoint: etcd.endpoint,
      args: ["--rpc-max-concurrent-streams", "7"],
      env: { GOULETTE_RPC_MAX_REQUEST_BYTES: "2048" },
    });
  });
  after(async () => {
    await sentinel?.kill();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the server lets a client send 1 MiB per stream and 8 MiB per connection before it reads (not HTTP/2's 64 KiB)", async () => {
    const { settings, connectionWindow } = await advertised(sentinel.url);
    assert.equal(settings.initialWindowSize, SERVER_STREAM_WINDOW_BYTES);
    assert.ok(
      connectionWindow >= SERVER_CONNECTION_WINDOW_BYTES,
      `connection window ${connectionWindow}, expected ${SERVER_CONNECTION_WINDOW_BYTES}`,
    );
  });

  it("the sentinel advertises --rpc-max-concurrent-streams and refuses requests over GOULETTE_RPC_MAX_REQUEST_BYTES", async () => {
    assert.equal(await advertisedStreams(sentinel.url), 7);
    await assert.rejects(
      sentinel.client.getBrokers({ topic: "t".repeat(4096), replicaCount: 1 }),
      (err: unknown) => {
        assert.equal(ConnectError.from(err).code, Code.ResourceExhausted, String(err));
        return true;
      },
    );
    // A small request still gets through (and is judged on its content).
    const res = await sentinel.client.listTopics({});
    assert.ok(Array.isArray(res.topics));
  });

  it("the broker takes its limits from the config file and the environment", async () => {
    const config = path.join(dir, "broker.yaml");
    await writeFile(config, "rpc-max-concurrent-streams: 9\nrpc-idle-timeout: 60000\n");
    const broker = await startBrokerProcess({
      id: "limits-b1",
      sentinels: [sentinel.url],
      dataDir: path.join(dir, "b1"),
      args: ["--config", config, "--max-message-bytes", "1024"],
      env: { GOULETTE_RPC_MAX_REQUEST_BYTES: String(1024 + 64 * 1024) },
    });
    try {
      assert.equal(await advertisedStreams(broker.url), 9);
      const big = new Uint8Array(70 * 1024);
      const pull = broker.client.pullMessage({ topic: "x", consumerGroup: Buffer.from(big).toString("hex") });
      await assert.rejects(pull[Symbol.asyncIterator]().next(), (err: unknown) => {
        assert.equal(ConnectError.from(err).code, Code.ResourceExhausted, String(err));
        return true;
      });
    } finally {
      await broker.kill();
    }
  });

  it("nonsense stops the process at start, naming the option", async () => {
    const broker = await startBrokerProcess({
      id: "limits-b2",
      sentinels: [sentinel.url],
      dataDir: path.join(dir, "b2"),
      args: ["--rpc-headers-timeout", "120000"],
      waitReady: false,
    });
    try {
      assert.notEqual(await broker.exited, 0);
      assert.match(broker.logTail(), /--rpc-headers-timeout .*more than --rpc-request-timeout/);
    } finally {
      await broker.kill();
    }
    const s2 = await startSentinelProcess({
      id: "limits-s2",
      etcdEndpoint: etcd.endpoint,
      env: { GOULETTE_RPC_MAX_CONNECTIONS: "lots" },
      waitReady: false,
    });
    try {
      assert.notEqual(await s2.exited, 0);
      assert.match(s2.logTail(), /GOULETTE_RPC_MAX_CONNECTIONS must be a number, got 'lots'/);
    } finally {
      await s2.kill();
    }
  });
});
