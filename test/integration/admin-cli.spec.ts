import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { GOULETTE_BIN } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const run = promisify(execFile);

/** `goulette admin …` against a real sentinel: tables for people, JSON for scripts. */
describe("goulette admin", () => {
  let etcd: TestEtcd;
  let s: InProcessSentinel;
  const admin = async (...args: string[]) =>
    (await run(process.execPath, [GOULETTE_BIN, "admin", ...args, "--sentinel", s.sentinel.url])).stdout;

  before(async () => {
    etcd = await startEtcd();
    s = await startInProcessSentinel(etcd, "admin-test");
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    await s.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:41001" });
    await s.client.registerBroker({ brokerId: "b2", address: "127.0.0.1:41002" });
    await s.client.getBrokers({ topic: "audit", replicaCount: 2, partitions: 2 });
  });
  after(async () => {
    await s.stop();
    await etcd.stop();
  });

  it("status shows the leader, the op log and the brokers; --json is machine-readable", async () => {
    const table = await admin("status");
    assert.match(table, new RegExp(`leader: +${s.sentinel.url}`));
    assert.match(table, /operations: +head 4, applied 4, lag 0/);
    assert.match(table, /b1 +127\.0\.0\.1:41001 +HEALTHY/);
    assert.match(table, new RegExp(`admin-test +${s.sentinel.url} +yes`), "the sentinel table shows ids");
    const json = JSON.parse(await admin("status", "--json")) as {
      brokers: { brokerId: string }[];
      oplogHeadId: number;
    };
    assert.deepEqual(
      json.brokers.map((b) => b.brokerId),
      ["b1", "b2"],
    );
    assert.equal(json.oplogHeadId, "4", "uint64 fields are strings, as proto3 JSON says");
  });

  it("topics and operations list what etcd holds", async () => {
    const topics = await admin("topics");
    assert.equal(topics.split("\n").filter((l) => l.startsWith("audit ")).length, 2, topics);
    const ops = await admin("operations");
    // The first leader records the ring configuration before anything else.
    assert.match(ops, /1 +configureRing/);
    assert.match(ops, /2 +registerBroker/);
    assert.match(ops, /4 +generateTopicReplicas/);
  });

  it("unregister-broker removes a broker and moves its replicas; unknown ids fail clearly", async () => {
    await s.client.registerBroker({ brokerId: "b3", address: "127.0.0.1:41003" });
    const out = await admin("unregister-broker", "b2");
    assert.match(out, /broker b2 unregistered \(operation \d+\)/);
    const res = await s.client.getBrokers({ topic: "audit" });
    assert.ok(res.partitions.every((p) => !p.replicas.includes("b2") && p.replicas.length === 2));
    const failure = await admin("unregister-broker", "nope").then(
      () => undefined,
      (err: { stderr: string; code: number }) => err,
    );
    assert.equal(failure?.code, 1);
    assert.match(failure?.stderr ?? "", /'nope' is not registered/);
  });

  it("snapshot compacts the log", async () => {
    const out = await admin("snapshot");
    assert.match(out, /snapshot at operation \d+: \d+ bytes, \d+ operations compacted/);
    assert.ok((await s.client.getClusterStatus({})).snapshotId > 0n);
  });
});
