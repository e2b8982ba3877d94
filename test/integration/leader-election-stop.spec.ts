import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3 } from "etcd3";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { LeaderElection } from "../../src/coordination/leader-election.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";

const TTL_SECONDS = 2;

/** LeaderElection.stop() returns within its bound even when etcd stops answering mid-way. */
describe("LeaderElection.stop() with etcd unreachable", () => {
  let etcd: TestEtcd;
  let proxy: TcpProxy;
  let client: Etcd3;
  const keys = createKeyspace("/goulette");

  before(async () => {
    etcd = await startEtcd();
    proxy = await startTcpProxy({ target: `127.0.0.1:${etcd.clientPort}` });
    client = new Etcd3({ hosts: `http://${proxy.address}` });
  });
  after(async () => {
    client?.close();
    await proxy?.close();
    await etcd?.stop();
  });

  it("steps down and returns within stopTimeoutMs; the lease is no longer kept alive", async () => {
    const election = new LeaderElection({
      etcd: client,
      keys,
      url: "http://sentinel-under-test",
      ttlSeconds: TTL_SECONDS,
      logger: silentLogger(),
      stopTimeoutMs: 1_000,
    });
    const deposed: string[] = [];
    election.on("deposed", (reason) => deposed.push(reason));
    await election.start();
    await waitFor(() => election.isLeader, { what: "leadership" });

    proxy.setMode("blackhole");
    const started = Date.now();
    await election.stop();
    const took = Date.now() - started;
    assert.ok(took < 3_000, `stop() took ${took} ms with etcd unreachable`);
    assert.equal(election.isLeader, false);
    assert.deepEqual(deposed, ["resigned"]);

    // The keepalives stopped: once etcd is reachable again, the unrevoked key expires after the TTL.
    proxy.setMode("forward");
    const direct = etcd.client();
    await waitFor(async () => (await direct.getAll().prefix(keys.electionPrefix).keys()).length === 0, {
      timeoutMs: (TTL_SECONDS + 5) * 1000,
      what: "the election key to expire",
    });
  });
});
