import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { BrokerService, type SetTopicRoleRequest } from "../../src/gen/goulette/v1/broker_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { RoleNotifier } from "../../src/sentinel/role-notifier.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { authorization } from "../../src/server/authorization.js";
import { Authenticator } from "../../src/server/identity.js";
import { startRpcServer, type RpcServer } from "../../src/server/rpc-server.js";
import { describeTlsError, type ClientTlsOptions } from "../../src/server/tls.js";
import { TransportPool } from "../../src/server/transport-pool.js";
import { generateCerts, type TestCerts } from "../helpers/certs.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { GOULETTE_BIN, startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const execFileAsync = promisify(execFile);

/** The outcome of a call: the ConnectError it failed with (asserting it did fail). */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConnectError, `expected the call to fail, got ${String(err)}`);
  return err;
}

/** Runs `goulette admin …` without any inherited TLS settings. */
async function admin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("GOULETTE_") && k !== "NODE_EXTRA_CA_CERTS"),
  );
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [GOULETTE_BIN, "admin", ...args], {
      env,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("mutual TLS between three sentinel processes", () => {
  let etcd: TestEtcd;
  let certs: TestCerts;
  const sentinels: { process: SentinelProcess; url: string; client: Client<typeof SentinelService> }[] = [];
  let pool: TransportPool;

  before(async () => {
    [etcd, certs] = await Promise.all([startEtcd(), generateCerts()]);
    // The admin's certificate: signed by the cluster CA, client auth only.
    pool = new TransportPool({
      tls: { caFile: certs.caCert, certFile: certs.clientCert, keyFile: certs.clientKey },
    });
    await Promise.all(
      ["tls-a", "tls-b", "tls-c"].map(async (id) => {
        const port = await freePort();
        const url = `https://127.0.0.1:${port}`;
        const child = await startSentinelProcess({
          id,
          port,
          etcdEndpoint: etcd.endpoint,
          waitReady: false,
          // The helper's own --advertise-url is http; the last one given wins.
          args: [
            "--advertise-url",
            url,
            "--election-ttl",
            "2",
            "--tls-cert",
            certs.nodeCert,
            "--tls-key",
            certs.nodeKey,
            "--tls-ca",
            certs.caCert,
          ],
        });
        sentinels.push({ process: child, url, client: createClient(SentinelService, pool.get(url)) });
      }),
    );
    await Promise.all(
      sentinels.map((s) =>
        waitFor(() => s.client.getClusterStatus({}, { timeoutMs: 1_000 }).then(() => true), {
          timeoutMs: 20_000,
          what: `${s.process.id} to answer over mutual TLS:\n${s.process.logTail()}`,
        }),
      ),
    );
  });
  after(async () => {
    await Promise.all(sentinels.map((s) => s.process.kill("SIGTERM")));
    pool.close();
    await etcd.stop();
    await certs.cleanup();
  });

  it("elects one leader (advertised as https) and forwards writes to it over TLS", async () => {
    const leaderUrl = await waitFor(
      async () => {
        const statuses = await Promise.all(sentinels.map((s) => s.client.getClusterStatus({})));
        const urls = new Set(statuses.map((st) => st.leaderUrl));
        const [only] = [...urls];
        return urls.size === 1 && only ? only : undefined;
      },
      { timeoutMs: 15_000, what: "all sentinels to agree on a leader" },
    );
    assert.match(leaderUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const follower = sentinels.find((s) => s.url !== leaderUrl);
    assert.ok(follower, "a follower");
    // Only the leader appends: a write that succeeds on a follower was forwarded (with the follower's
    // own certificate, which the leader requires).
    const registered = await follower.client.registerBroker({ brokerId: "b1", address: "127.0.0.1:1" });
    assert.ok(registered.operationId > 0n, "an operation was appended");
    const created = await follower.client.getBrokers({ topic: "over-tls", replicaCount: 1 });
    assert.equal(created.partitions.length, 3);
    await waitFor(
      async () => {
        const digests = await Promise.all(sentinels.map((s) => s.client.getClusterStatus({})));
        return new Set(digests.map((d) => d.stateDigest)).size === 1;
      },
      { what: "every sentinel to apply the forwarded writes" },
    );
    const forwarded = await fetchMetric(follower.url, "goulette_sentinel_forwarded_total", certs);
    assert.match(
      forwarded,
      /method="RegisterBroker",outcome="ok"[^}]*\} [1-9]/,
      "the follower counts its forwarded writes",
    );
  });

  it("serves the admin CLI with --tls-ca and a client certificate, and explains a missing CA", async () => {
    const url = sentinels[0]?.url ?? "";
    const ok = await admin([
      "status",
      "--sentinel",
      url,
      "--tls-ca",
      certs.caCert,
      "--tls-cert",
      certs.clientCert,
      "--tls-key",
      certs.clientKey,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /leader: +https:\/\/127\.0\.0\.1/);

    const noCa = await admin([
      "status",
      "--sentinel",
      url,
      "--tls-cert",
      certs.clientCert,
      "--tls-key",
      certs.clientKey,
    ]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /TLS certificate is not trusted .*pass the CA that signed it \(--tls-ca/);

    const noCert = await admin(["status", "--sentinel", url, "--tls-ca", certs.caCert]);
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /refused this client's TLS certificate \(alert certificate required\)/);
  });

  it("refuses clients without a certificate, with one from another CA, and over plain HTTP", async () => {
    const url = sentinels[0]?.url ?? "";
    const call = async (tls: ClientTlsOptions, target = url) => {
      const p = new TransportPool({ tls });
      try {
        return await failure(
          createClient(SentinelService, p.get(target)).getClusterStatus({}, { timeoutMs: 3_000 }),
        );
      } finally {
        p.close();
      }
    };
    const noCert = await call({ caFile: certs.caCert });
    assert.match(noCert.rawMessage, /certificate required/);
    assert.match(describeTlsError(noCert) ?? "", /mutual TLS needs a client certificate/);
    // TLS 1.3: the client finishes its handshake before the server checks the certificate, so the
    // refusal shows as a cancelled stream rather than an alert; what matters is that it fails.
    const stranger = await call({
      caFile: certs.caCert,
      certFile: certs.otherClientCert,
      keyFile: certs.otherClientKey,
    });
    assert.ok(
      [Code.Canceled, Code.Aborted, Code.Unavailable, Code.Internal].includes(stranger.code),
      stranger.message,
    );
    await call({}, url.replace("https:", "http:"));
    // The sentinel still serves clients that do present a good certificate.
    await sentinels[0]?.client.getClusterStatus({});
  });
});

describe("TLS from a sentinel to brokers and from clients (in process)", () => {
  let etcd: TestEtcd;
  let certs: TestCerts;
  let s: InProcessSentinel;
  let broker: RpcServer;
  let pool: TransportPool;
  let client: Client<typeof SentinelService>;
  const roles: SetTopicRoleRequest[] = [];
  let healthChecks = 0;
  const TOKEN = "broker-and-sentinel-token";

  before(async () => {
    [etcd, certs] = await Promise.all([startEtcd(), generateCerts()]);
    // A stand-in broker that, like a real one with --tls-ca and --auth-token, wants a client
    // certificate from our CA and the token on SetTopicRole.
    broker = await startRpcServer({
      address: "127.0.0.1:0",
      routes: (router) =>
        router.service(BrokerService, {
          setTopicRole(req) {
            roles.push(req);
            return { logEndOffset: 0n };
          },
          health() {
            healthChecks++;
            return { brokerId: "tls-broker", ready: true };
          },
        }),
      // SetTopicRole needs the token (its holder is trusted as every component); Health is open.
      interceptors: [
        authorization(new Authenticator({ sharedToken: TOKEN, allowAnonymous: false }), {
          SetTopicRole: { allow: ["sentinel"] },
          Health: { allow: "anyone" },
        }),
      ],
      fallback: (_req, res) => res.end(),
      tls: { certFile: certs.nodeCert, keyFile: certs.nodeKey, caFile: certs.caCert },
      logger: silentLogger(),
    });
    s = await startInProcessSentinel(etcd, "tls-in-process", {
      tls: { certFile: certs.nodeCert, keyFile: certs.nodeKey },
      clientTls: { caFile: certs.caCert, certFile: certs.nodeCert, keyFile: certs.nodeKey },
      adminToken: TOKEN,
    });
    pool = new TransportPool({ tls: { caFile: certs.caCert } });
    client = createClient(SentinelService, pool.get(s.sentinel.url));
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
  });
  after(async () => {
    await s.stop();
    await broker.close();
    pool.close();
    await etcd.stop();
    await certs.cleanup();
  });

  it("tells brokers their roles over https with its client certificate and the token", async () => {
    const headers = bearerHeaders(TOKEN);
    await client.registerBroker({ brokerId: "tls-broker", address: `127.0.0.1:${broker.port}` }, { headers });
    await client.getBrokers({ topic: "secure", replicaCount: 1, partitions: 2 }, { headers });
    // The leader's notifier fires on its applied operations; a notifier with the sentinel's transport
    // settings is driven here directly, since the leader skips notifying when its operation watch applies
    // the operation before the append returns (a control-plane race, reported separately).
    const notifier = new RoleNotifier({
      state: s.sentinel.plane.state,
      logger: silentLogger(),
      headers,
      transportOptions: {
        tls: { caFile: certs.caCert, certFile: certs.nodeCert, keyFile: certs.nodeKey },
        defaultScheme: "https",
      },
    });
    try {
      notifier.notify("secure", undefined);
      await waitFor(() => roles.filter((r) => r.topic === "secure").length >= 2, {
        what: "SetTopicRole for both partitions at the TLS broker",
      });
    } finally {
      notifier.close();
    }
  });

  it("checks a reported broker's health over https before believing a client", async () => {
    const head = s.sentinel.plane.head;
    const before = healthChecks;
    // An authenticated caller's report (an anonymous one is ignored: security-identities.spec.ts).
    await client.getBrokers(
      { topic: "secure", unreachableBrokers: ["tls-broker"] },
      { headers: bearerHeaders(TOKEN) },
    );
    assert.ok(healthChecks > before, "the leader probed the broker over TLS");
    assert.equal(s.sentinel.plane.state.broker("tls-broker")?.status, "healthy", "it answered, so it stays");
    assert.equal(s.sentinel.plane.head, head, "no operation appended");
  });

  it("fails a client without the CA with a clear error", async () => {
    const untrusting = new TransportPool();
    try {
      const err = await failure(
        createClient(SentinelService, untrusting.get(s.sentinel.url)).getBrokers({ topic: "secure" }),
      );
      assert.match(
        describeTlsError(err) ?? "",
        /certificate is not trusted \(.+\): pass the CA that signed it/,
      );
    } finally {
      untrusting.close();
    }
  });
});

/** One metric's lines from /metrics over mutual TLS (fetch cannot present a client certificate). */
async function fetchMetric(url: string, name: string, certs: TestCerts): Promise<string> {
  const body = await new Promise<string>((resolve, reject) => {
    const req = https.get(
      `${url}/metrics`,
      {
        ca: readFileSync(certs.caCert),
        cert: readFileSync(certs.clientCert),
        key: readFileSync(certs.clientKey),
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve(text));
      },
    );
    req.on("error", reject);
  });
  return body
    .split("\n")
    .filter((line) => line.startsWith(name))
    .join("\n");
}
