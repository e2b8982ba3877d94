import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { GOULETTE_BIN } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const TOKEN = "correct-horse-battery-staple";
const RIGHT = { headers: bearerHeaders(TOKEN) };
const WRONG = { headers: bearerHeaders("not-the-token") };

/** The admin token on a 3-sentinel cluster: required for writes and admin RPCs, carried when forwarding. */
describe("admin token", () => {
  let etcd: TestEtcd;
  const sentinels: InProcessSentinel[] = [];
  let leader: InProcessSentinel;
  let follower: InProcessSentinel;

  before(async () => {
    etcd = await startEtcd();
    for (const id of ["auth-a", "auth-b", "auth-c"]) {
      sentinels.push(await startInProcessSentinel(etcd, id, { adminToken: TOKEN }));
    }
    leader = await waitFor(() => sentinels.find((s) => s.sentinel.plane.isLeader), { what: "a leader" });
    follower = sentinels.find((s) => s !== leader) as InProcessSentinel;
    await waitFor(() => follower.sentinel.plane.leaderUrl === leader.sentinel.url, {
      what: "the follower to know the leader",
    });
  });
  after(async () => {
    await Promise.all(sentinels.map((s) => s.stop()));
    await etcd.stop();
  });

  /** Asserts a call fails Unauthenticated with a message matching `message`, and appends nothing. */
  const refused = async (call: Promise<unknown>, message: RegExp) => {
    const head = leader.sentinel.plane.head;
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError, `expected Unauthenticated, got ${String(err)}`);
    assert.equal(Code[err.code], "Unauthenticated", err.rawMessage);
    assert.match(err.rawMessage, message);
    assert.equal(leader.sentinel.plane.head, head, "no operation appended");
  };

  it("refuses every write and admin RPC without the token, saying what to send", async () => {
    const c = follower.client;
    const missing = /needs the credential of: [a-z, ]+; send the header 'authorization: Bearer <token>'/;
    await refused(c.registerBroker({ brokerId: "b1", address: "127.0.0.1:1" }), /^RegisterBroker needs/);
    await refused(c.unregisterBroker({ brokerId: "b1" }), missing);
    await refused(c.createSnapshot({}), missing);
    await refused(
      c.keepAlive({ brokerId: "b1", address: "127.0.0.1:1", status: BrokerStatus.HEALTHY }),
      missing,
    );
    await refused(c.listTopics({}), missing);
    await refused(c.listOperations({}), missing);
    // Open: producers ask it before their first GetBrokers.
    assert.equal((await c.getClusterStatus({})).sentinelId, follower.sentinel.id);
  });

  it("refuses a wrong token, and a header that is not a bearer token", async () => {
    await refused(
      follower.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:1" }, WRONG),
      /the bearer token sent is not a credential this node knows/,
    );
    await refused(
      leader.client.createSnapshot({}, { headers: { authorization: `Basic ${TOKEN}` } }),
      /the authorization header is not 'Bearer <token>'/,
    );
  });

  it("accepts the token, and a follower forwards writes with it to the leader", async () => {
    const forwardedBefore = await forwardedCount(follower);
    const res = await follower.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:1" }, RIGHT);
    assert.ok(res.operationId > 0n);
    await follower.client.registerBroker({ brokerId: "b2", address: "127.0.0.1:2" }, RIGHT);
    // The leader checks the token too: these only succeed because the forwarded calls carried it.
    assert.equal(await forwardedCount(follower), forwardedBefore + 2, "both writes were forwarded");
    const status = await follower.client.getClusterStatus({}, RIGHT);
    assert.equal(status.ringBrokers, 2);
    await leader.client.createSnapshot({}, RIGHT);
  });

  it("needs the token to create a topic through GetBrokers, and to read an existing one", async () => {
    await refused(
      follower.client.getBrokers({ topic: "orders", replicaCount: 2 }),
      /creating topic 'orders' \(GetBrokers of a new topic\) needs a credential: send the header/,
    );
    const created = await follower.client.getBrokers({ topic: "orders", replicaCount: 2 }, RIGHT);
    assert.equal(created.brokers.length, 2);
    await waitFor(() => sentinels.every((s) => s.sentinel.plane.state.topic("orders")), {
      what: "every sentinel to know the topic",
    });
    // Producers and consumers of an existing topic need one too.
    for (const s of sentinels) {
      await refused(
        s.client.getBrokers({ topic: "orders" }),
        /reading topic 'orders' \(GetBrokers\) needs a credential: send the header/,
      );
      const read = await s.client.getBrokers({ topic: "orders" }, RIGHT);
      assert.deepEqual(
        read.partitions.map((p) => p.replicas),
        created.partitions.map((p) => p.replicas),
      );
    }
  });

  it("answers Connect JSON without the token with HTTP 401 and the same message", async () => {
    const res = await fetch(`${follower.sentinel.url}/goulette.v1.SentinelService/CreateSnapshot`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    const json = (await res.json()) as { code: string; message: string };
    assert.equal(json.code, "unauthenticated");
    assert.match(json.message, /CreateSnapshot needs the credential of/);
  });

  it("the admin CLI sends the token of --token-file (or GOULETTE_TOKEN) and explains a missing one", async () => {
    const url = follower.sentinel.url;
    const without = await admin(["topics", "--sentinel", url], {});
    assert.equal(without.code, 1);
    assert.match(without.stderr, /ListTopics needs the credential of/);
    const dir = await mkdtemp(path.join(tmpdir(), "goulette-token-"));
    const tokenFile = path.join(dir, "token");
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const flag = await admin(["status", "--sentinel", url, "--token-file", tokenFile], {});
    await rm(dir, { recursive: true, force: true });
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /ring: +2 brokers/);
    const env = await admin(["topics", "--sentinel", url], { GOULETTE_TOKEN: TOKEN });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /orders/);
  });
});

async function forwardedCount(s: InProcessSentinel): Promise<number> {
  const metric = await s.sentinel.registry.getSingleMetric("goulette_sentinel_forwarded_total")?.get();
  return (metric?.values ?? []).filter((v) => v.labels.outcome === "ok").reduce((sum, v) => sum + v.value, 0);
}

async function admin(args: string[], extraEnv: Record<string, string>) {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_"))),
    ...extraEnv,
  };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [GOULETTE_BIN, "admin", ...args], {
      env,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}
