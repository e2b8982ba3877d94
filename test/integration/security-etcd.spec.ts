import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { generateCerts, type TestCerts } from "../helpers/certs.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { freePort } from "../helpers/ports.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const run = promisify(execFile);

async function etcdctl(endpoint: string, args: string[], user?: string) {
  return run("etcdctl", [`--endpoints=${endpoint}`, ...(user ? [`--user=${user}`] : []), ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
  });
}

/** A sentinel that leads and writes: the proof that its etcd connection works. */
async function assertLeadsAndWrites(s: SentinelProcess): Promise<void> {
  await waitFor(async () => (await s.client.getClusterStatus({})).leaderUrl === s.url, {
    timeoutMs: 15_000,
    what: `${s.id} to lead`,
  });
  const res = await s.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:1" });
  assert.ok(res.operationId > 0n);
}

describe("etcd authentication (user and password)", () => {
  let etcd: TestEtcd;
  const started: SentinelProcess[] = [];

  before(async () => {
    etcd = await startEtcd();
    await etcdctl(etcd.endpoint, ["user", "add", "root:etcd-pw"]);
    await etcdctl(etcd.endpoint, ["auth", "enable"]);
  });
  after(async () => {
    await Promise.all(started.map((s) => s.kill()));
    await etcd.stop();
  });

  it("is really on: anonymous clients are refused", async () => {
    await assert.rejects(etcdctl(etcd.endpoint, ["get", "/goulette/", "--prefix"]), /user name is empty/);
  });

  it("a sentinel with --etcd-username and the password (GOULETTE_ETCD_PASSWORD) recovers, leads and writes", async () => {
    const s = await startSentinelProcess({
      id: "etcd-auth",
      etcdEndpoint: etcd.endpoint,
      args: ["--etcd-username", "root", "--election-ttl", "2"],
      env: { GOULETTE_ETCD_PASSWORD: "etcd-pw" },
    });
    started.push(s);
    await assertLeadsAndWrites(s);
    const { stdout } = await etcdctl(
      etcd.endpoint,
      ["get", "/goulette/operations/", "--prefix", "--keys-only"],
      "root:etcd-pw",
    );
    assert.match(stdout, /\/goulette\/operations\/0+1/, "the operation is in etcd");
  });

  it("stops at once with a clear error on a wrong password, or none", async () => {
    for (const [args, message] of [
      [["--etcd-username", "root", "--etcd-password", "nope"], /etcd refused the user and password/],
      [[], /etcd has authentication on: pass --etcd-username and --etcd-password/],
    ] as const) {
      await assertStopsWith("etcd-bad-auth", etcd.endpoint, args, message, started);
    }
  });
});

describe("etcd over TLS with a client certificate", () => {
  let certs: TestCerts;
  let etcd: { endpoint: string; child: ChildProcess; dataDir: string };
  const started: SentinelProcess[] = [];

  before(async () => {
    certs = await generateCerts();
    etcd = await startTlsEtcd(certs);
  });
  after(async () => {
    await Promise.all(started.map((s) => s.kill()));
    etcd.child.kill("SIGKILL");
    await rm(etcd.dataDir, { recursive: true, force: true });
    await certs.cleanup();
  });

  it("a sentinel with --etcd-tls-ca, --etcd-tls-cert and --etcd-tls-key recovers, leads and writes", async () => {
    const s = await startSentinelProcess({
      id: "etcd-tls",
      etcdEndpoint: etcd.endpoint,
      args: [
        "--etcd-tls-ca",
        certs.caCert,
        "--etcd-tls-cert",
        certs.nodeCert,
        "--etcd-tls-key",
        certs.nodeKey,
        "--election-ttl",
        "2",
      ],
    });
    started.push(s);
    await assertLeadsAndWrites(s);
  });

  it("a sentinel without a client certificate, or without the CA, stops at once with a clear error", async () => {
    for (const [args, message] of [
      [["--etcd-tls-ca", certs.caCert], /TLS to etcd failed \(alert bad certificate\)/],
      [[], /TLS to etcd failed \(unable to verify the first certificate\)/],
    ] as const) {
      await assertStopsWith("etcd-tls-refused", etcd.endpoint, args, message, started);
    }
  });
});

/** A sentinel started with `args` exits with code 1 and `message` in its log, without becoming ready. */
async function assertStopsWith(
  id: string,
  etcdEndpoint: string,
  args: readonly string[],
  message: RegExp,
  started: SentinelProcess[],
): Promise<void> {
  const s = await startSentinelProcess({ id, etcdEndpoint, args: [...args], waitReady: false });
  started.push(s);
  await waitFor(() => s.process.exitCode !== null, { timeoutMs: 15_000, what: `${id} to exit` });
  assert.equal(s.process.exitCode, 1, `exit code; log:\n${s.logTail()}`);
  assert.match(s.logTail(), message);
}

/** etcd serving https and requiring client certificates signed by the test CA. */
async function startTlsEtcd(certs: TestCerts) {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), "goulette-etcd-tls-"));
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    "etcd",
    [
      "--name=tls",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=tls=${peer}`,
      `--cert-file=${certs.nodeCert}`,
      `--key-file=${certs.nodeKey}`,
      `--trusted-ca-file=${certs.caCert}`,
      "--client-cert-auth",
      "--log-level=error",
      "--logger=zap",
    ],
    { stdio: "ignore" },
  );
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
      await run("etcdctl", [
        `--endpoints=${endpoint}`,
        `--cacert=${certs.caCert}`,
        `--cert=${certs.nodeCert}`,
        `--key=${certs.nodeKey}`,
        "endpoint",
        "health",
      ]);
      return true;
    },
    { timeoutMs: 15_000, what: "etcd with TLS to be healthy" },
  );
  return { endpoint, child, dataDir };
}
