import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerHeaders } from "../../src/common/bearer.js";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { GOULETTE_BIN } from "../helpers/goulette-process.js";
import { waitFor } from "../helpers/wait.js";

const TOKENS = {
  sentinel: "tok-sentinel-acl-71c2",
  b1: "tok-broker-b1-acl-0f3e",
  admin: "tok-admin-acl-5d9a",
  writer: "tok-app-writer-e41b",
  reader: "tok-app-reader-9c07",
};
const AS = {
  anonymous: {},
  admin: { headers: bearerHeaders(TOKENS.admin) },
  writer: { headers: bearerHeaders(TOKENS.writer) },
  reader: { headers: bearerHeaders(TOKENS.reader) },
};

/**
 * Topic ACLs on real processes (one sentinel, one broker, a tokens file): app `writer` may write
 * `orders.*`, app `reader` may only read it. Changes made with `goulette admin acl` reach the broker
 * with its next KeepAlive (every 300 ms here), while the legitimate traffic keeps flowing.
 */
describe("topic ACLs", () => {
  let dir: string;
  let cluster: TestCluster;
  const ORDERS = "orders.eu";
  const PAYMENTS = "payments";

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-acl-"));
    const tokensFile = path.join(dir, "tokens");
    await writeFile(
      tokensFile,
      [
        `sentinel ${TOKENS.sentinel}`,
        `broker:b1 ${TOKENS.b1}`,
        `admin:ops ${TOKENS.admin}`,
        `app:writer ${TOKENS.writer}`,
        `app:reader ${TOKENS.reader}`,
      ].join("\n"),
    );
    for (const [name, token] of Object.entries(TOKENS))
      await writeFile(path.join(dir, `${name}.token`), token);
    cluster = await startCluster({
      sentinels: 1,
      brokers: 1,
      sentinelArgs: ["--tokens-file", tokensFile, "--token-file", path.join(dir, "sentinel.token")],
      brokerArgs: ["--tokens-file", tokensFile],
      brokerArgsFor: (id) => ["--token-file", path.join(dir, `${id}.token`)],
      helperHeaders: AS.admin.headers,
    });
  });
  after(async () => {
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const sentinelUrl = () => cluster.sentinelUrls[0] as string;
  const broker = () => cluster.broker("b1").client;

  async function produce(as: { headers?: Record<string, string> }, topic: string, payload: string) {
    const res = await broker().produce(
      { topic, partition: 0, acks: Acks.ALL, records: [{ payload: text(payload) }] },
      { ...as, timeoutMs: 10_000 },
    );
    return res.acks[0] as { error: ProduceError; offset: bigint };
  }

  async function pull(as: { headers?: Record<string, string> }, topic: string, count: bigint) {
    const seen: string[] = [];
    if (count === 0n) return seen;
    for await (const m of broker().pullMessage(
      { topic, partition: 0, offset: 0n, maxMessages: count },
      { ...as, timeoutMs: 10_000 },
    )) {
      seen.push(untext(m.payload));
      if (BigInt(seen.length) >= count) break;
    }
    return seen;
  }

  async function highWatermark(topic: string): Promise<bigint> {
    const res = await broker().health({ partitions: [{ topic, partition: 0 }] });
    return res.partitions[0]?.highWatermark ?? -1n;
  }

  async function refusal(call: Promise<unknown>): Promise<ConnectError> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError, `expected a refusal, got ${String(err)}`);
    return err;
  }

  async function acl(args: string[]) {
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_"))),
      GOULETTE_TOKEN: TOKENS.admin,
    };
    try {
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        [GOULETTE_BIN, "admin", "acl", ...args, "--sentinels", sentinelUrl()],
        { env, timeout: 30_000 },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  /** Whether the call is refused PermissionDenied now (polled while a change reaches the broker). */
  const deniedNow = (call: () => Promise<unknown>) =>
    call().then(
      () => false,
      (e: unknown) => e instanceof ConnectError && e.code === Code.PermissionDenied,
    );

  it("writer writes orders.*, reader only reads it; nothing is appended for a refused produce", async () => {
    // Through the RPC here (the CLI is exercised below: each run costs a process start).
    for (const [principal, permission] of [
      ["app:writer", "write"],
      ["app:reader", "read"],
    ] as const) {
      const res = await cluster
        .sentinel()
        .putAcl({ acl: { principal, resource: "orders.*", permissions: [permission] } }, AS.admin);
      assert.ok(res.operationId > 0n);
      assert.equal(res.acl?.principal, principal.replace("app:", "application:"));
    }
    // Creating a topic is a write: the reader may not, the writer may.
    const create = await refusal(cluster.sentinel().getBrokers({ topic: ORDERS, partitions: 1 }, AS.reader));
    assert.equal(Code[create.code], "PermissionDenied");
    assert.match(create.rawMessage, /application:reader may not write topic 'orders\.eu'/);
    await cluster.sentinel().getBrokers({ topic: ORDERS, partitions: 1, replicaCount: 1 }, AS.writer);
    await cluster.createTopic(PAYMENTS, { partitions: 1, replicas: 1 }); // by the admin
    await waitFor(async () => (await produce(AS.writer, ORDERS, "first")).error === ProduceError.NONE, {
      timeoutMs: 20_000,
      what: "the writer's produce to be accepted",
    });

    // The broker learns the entries on its next KeepAlive; until then it knows the empty set, which lets
    // every application through. The writer's read of orders is the probe: allowed now, refused then.
    await waitFor(() => deniedNow(() => pull(AS.writer, ORDERS, 1n)), {
      timeoutMs: 10_000,
      what: "the new entries to reach the broker",
    });
    const before = await highWatermark(ORDERS);
    const denied = await refusal(produce(AS.reader, ORDERS, "forged"));
    assert.equal(Code[denied.code], "PermissionDenied");
    assert.match(denied.rawMessage, /application:reader may not write topic 'orders\.eu': no ACL grants it/);
    assert.equal(await highWatermark(ORDERS), before, "nothing was appended");
    assert.deepEqual(await pull(AS.reader, ORDERS, before), ["first"]);

    // The writer may not read, neither orders nor a topic it has no entry for; anonymous callers no more.
    for (const topic of [ORDERS, PAYMENTS]) {
      const err = await refusal(pull(AS.writer, topic, 1n));
      assert.equal(Code[err.code], "PermissionDenied");
      assert.match(err.rawMessage, new RegExp(`application:writer may not read topic '${topic}'`));
    }
    const meta = await refusal(cluster.sentinel().getBrokers({ topic: PAYMENTS }, AS.writer));
    assert.match(meta.rawMessage, /application:writer may not read or write topic 'payments'/);
    const anonymous = await refusal(pull(AS.anonymous, ORDERS, 1n));
    assert.equal(Code[anonymous.code], "Unauthenticated");
    assert.equal(
      Code[(await refusal(cluster.sentinel().getBrokers({ topic: ORDERS }))).code],
      "Unauthenticated",
    );
    // Admins are not limited by ACLs.
    assert.equal((await produce(AS.admin, PAYMENTS, "by-admin")).error, ProduceError.NONE);
  });

  it("changes made with `goulette admin acl` take effect on the broker within a few beats", async () => {
    const grant = await acl([
      "add",
      "--principal",
      "app:writer",
      "--topic",
      PAYMENTS,
      "--permission",
      "read",
    ]);
    assert.equal(grant.code, 0, grant.stderr);
    await waitFor(async () => (await pull(AS.writer, PAYMENTS, 1n).catch(() => [])).length === 1, {
      timeoutMs: 10_000,
      what: "the writer's new read permission to reach the broker",
    });
    assert.deepEqual(await pull(AS.writer, PAYMENTS, 1n), ["by-admin"]);

    const revoke = await acl(["remove", "--principal", "app:reader", "--topic", "orders.*"]);
    assert.equal(revoke.code, 0, revoke.stderr);
    await waitFor(() => deniedNow(() => pull(AS.reader, ORDERS, 1n)), {
      timeoutMs: 10_000,
      what: "the reader's revoked permission to reach the broker",
    });
    // Legitimate traffic meanwhile: the writer's acks=all produce still works.
    assert.equal((await produce(AS.writer, ORDERS, "after-the-changes")).error, ProduceError.NONE);

    const list = await acl(["list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /application:writer +orders\.\* +write/);
    assert.match(list.stdout, /application:writer +payments +read/);
    assert.doesNotMatch(list.stdout, /application:reader/);
  });

  it("refuses bad entries and a missing one with a clear error, and records nothing", async () => {
    const head = (await cluster.sentinel().listOperations({ limit: 1 }, AS.admin)).headId;
    const missing = await refusal(
      cluster.sentinel().deleteAcl({ principal: "app:reader", resource: "orders.*" }, AS.admin),
    );
    assert.equal(Code[missing.code], "NotFound");
    assert.match(missing.rawMessage, /no ACL entry for application:reader on 'orders\.\*'/);
    const put = (principal: string, resource: string, permissions: string[]) =>
      refusal(cluster.sentinel().putAcl({ acl: { principal, resource, permissions } }, AS.admin));
    const bad: [Promise<ConnectError>, RegExp][] = [
      [put("app:x", "t", ["delete"]), /ACL permission "delete" is unknown: use read and\/or write/],
      [put("admin:ops", "t", ["read"]), /ACL principal "admin:ops" is not 'app:<name>'/],
      [put("app:x", "a*b", ["read"]), /ACL topic "a\*b" is neither a topic name nor a prefix ending in '\*'/],
      [put("app:x", "t", []), /an ACL needs a permission/],
    ];
    for (const [call, message] of bad) {
      const err = await call;
      assert.equal(Code[err.code], "InvalidArgument", err.rawMessage);
      assert.match(err.rawMessage, message);
    }
    // Only admins manage ACLs.
    const byApp = await refusal(cluster.sentinel().listAcls({}, AS.writer));
    assert.equal(Code[byApp.code], "PermissionDenied");
    assert.equal((await cluster.sentinel().listOperations({ limit: 1 }, AS.admin)).headId, head);
  });
});
