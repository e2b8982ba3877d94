import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ListenError, assertPortsFree, probePort } from "../../src/common/port-check.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startRpcServer } from "../../src/server/rpc-server.js";

const linux = existsSync("/proc/self/stat");

/** A process other than this one listening on 127.0.0.1:<port>; resolves with its pid and port. */
function startListener(): Promise<{ pid: number; port: number; stop(): void }> {
  const script =
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>console.log(s.address().port))";
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`listener exited with ${code}`)));
    createInterface({ input: child.stdout }).once("line", (line) =>
      resolve({ pid: child.pid ?? 0, port: Number(line), stop: () => child.kill("SIGKILL") }),
    );
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("port check", () => {
  let listener: Awaited<ReturnType<typeof startListener>>;
  before(async () => {
    listener = await startListener();
  });
  after(() => listener.stop());

  it("probes without keeping the port", async () => {
    const port = await freePort();
    assert.equal(await probePort("127.0.0.1", port), undefined);
    assert.equal(await probePort("127.0.0.1", port), undefined, "the probe let it go");
    assert.equal((await probePort("127.0.0.1", listener.port))?.code, "EADDRINUSE");
  });

  it("says which port is taken, by which process, what to do, and how many more are taken", async () => {
    const free = await freePort();
    await assertPortsFree([{ host: "127.0.0.1", port: free, remedy: "n/a" }]);
    const err = await assertPortsFree([
      { host: "127.0.0.1", port: free, what: "sentinel-1", remedy: "pick another --sentinel-port" },
      { host: "127.0.0.1", port: listener.port, what: "broker-2", remedy: "pick another --broker-port" },
      { host: "127.0.0.1", port: listener.port, what: "broker-3", remedy: "pick another --broker-port" },
    ]).then(
      () => assert.fail("a taken port passed"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ListenError);
    assert.equal(err.port, listener.port);
    assert.equal(err.errno, "EADDRINUSE");
    const holder = linux ? ` by pid ${listener.pid} \\(node -e .*\\)` : "";
    assert.match(
      err.message,
      new RegExp(
        `^127\\.0\\.0\\.1:${listener.port} \\(broker-2\\) is already in use${holder}: ` +
          `pick another --broker-port \\(1 more port is taken too\\)$`,
      ),
    );
    assert.doesNotMatch(err.message, /\n/);
  });

  it("explains an address that is not this machine's", async () => {
    const err = await assertPortsFree([{ host: "192.0.2.1", port: 9090, remedy: "fix --address" }]).then(
      () => assert.fail("a foreign address passed"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ListenError);
    assert.equal(
      err.message,
      "cannot listen on 192.0.2.1:9090: 192.0.2.1 is not an address of this machine: fix --address",
    );
  });

  it("the RPC server fails on a taken port with a ListenError, not a raw errno error", async () => {
    await assert.rejects(
      startRpcServer({
        address: `127.0.0.1:${listener.port}`,
        routes: () => undefined,
        fallback: (_req, res) => res.end(),
        logger: silentLogger(),
      }),
      (err: unknown) =>
        err instanceof ListenError && err.message.startsWith(`127.0.0.1:${listener.port} is already in use`),
    );
  });
});
