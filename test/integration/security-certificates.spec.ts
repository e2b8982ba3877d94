import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { errorTranslation } from "../../src/server/interceptors.js";
import { BROKER_RULES, authorization } from "../../src/server/authorization.js";
import { ANONYMOUS, Authenticator, describePrincipal, principalOf } from "../../src/server/identity.js";
import { startRpcServer, type RpcServer } from "../../src/server/rpc-server.js";
import { TransportPool } from "../../src/server/transport-pool.js";
import { generateCerts, makeClientCert, type TestCerts } from "../helpers/certs.js";

/**
 * Under mutual TLS the client certificate names the caller (CN `broker:<id>`, `sentinel`, …, or a URI
 * SAN `urn:goulette:<kind>:<name>`): a broker's rules applied to callers identified that way, on a real
 * TLS server with the broker's authorization table in front of a stand-in service.
 */
describe("identities from client certificates (mutual TLS)", () => {
  let certs: TestCerts;
  let server: RpcServer;
  const pools: TransportPool[] = [];
  const seen: string[] = [];
  const TOKEN = "tok-app-billing";

  before(async () => {
    certs = await generateCerts();
    server = await startRpcServer({
      address: "127.0.0.1:0",
      routes: (router) =>
        router.service(BrokerService, {
          removeTopic(_req, ctx) {
            seen.push(
              describePrincipal(
                principalOf(ctx.values) ?? { kind: "anonymous", name: "", trusted: false, via: "none" },
              ),
            );
            return {};
          },
          async *replicate(requests, ctx) {
            for await (const r of requests) {
              seen.push(`${describePrincipal(principalOf(ctx.values) ?? ANONYMOUS)} as ${r.followerId}`);
              yield { highWatermark: 0n };
              return;
            }
          },
          health() {
            return { brokerId: "stand-in", ready: true };
          },
        }),
      interceptors: [
        errorTranslation(silentLogger()),
        authorization(
          new Authenticator({
            certificates: true,
            tokens: new Map([[TOKEN, { kind: "application", name: "billing" }]]),
          }),
          BROKER_RULES,
        ),
      ],
      fallback: (_req, res) => res.end(),
      tls: { certFile: certs.nodeCert, keyFile: certs.nodeKey, caFile: certs.caCert },
      logger: silentLogger(),
    });
  });
  after(async () => {
    for (const p of pools) p.close();
    await server.close();
    await certs.cleanup();
  });

  const clientWith = (files: { certFile: string; keyFile: string }) => {
    const pool = new TransportPool({ tls: { caFile: certs.caCert, ...files } });
    pools.push(pool);
    return createClient(BrokerService, pool.get(`https://127.0.0.1:${server.port}`));
  };

  const code = async (call: Promise<unknown>) =>
    call.then(
      () => "ok",
      (e: unknown) => (e instanceof ConnectError ? Code[e.code] : String(e)),
    );

  it("takes the CN or the URI SAN as the principal, and applies the broker's rules to it", async () => {
    const sentinel = clientWith(await makeClientCert(certs, "sentinel", "sentinel"));
    const b1 = clientWith(await makeClientCert(certs, "b1", "broker:b1"));
    const b2ByUri = clientWith(
      await makeClientCert(certs, "b2", "goulette-b2", ["subjectAltName=URI:urn:goulette:broker:b2"]),
    );
    const unnamed = clientWith({ certFile: certs.clientCert, keyFile: certs.clientKey });

    assert.equal(await code(sentinel.removeTopic({ topic: "t", deleteData: true })), "ok");
    assert.equal(await code(b1.removeTopic({ topic: "t", deleteData: true })), "PermissionDenied");
    // A certificate that names no principal is an anonymous caller.
    assert.equal(await code(unnamed.removeTopic({ topic: "t", deleteData: true })), "Unauthenticated");
    assert.deepEqual(seen.splice(0), ["sentinel"]);

    const replicateAs = async (client: typeof b1, followerId: string) => {
      for await (const _ of client.replicate(one({ topic: "t", partition: 0, followerId }))) return "ok";
      return "ok";
    };
    assert.equal(await code(replicateAs(b1, "b1")), "ok");
    assert.equal(await code(replicateAs(b2ByUri, "b2")), "ok");
    assert.equal(await code(replicateAs(b1, "b2")), "PermissionDenied");
    assert.equal(await code(replicateAs(sentinel, "b1")), "PermissionDenied");
    assert.deepEqual(seen.splice(0), ["broker:b1 as b1", "broker:b2 as b2"]);
  });

  it("a bearer token wins over the certificate (the console pass-through carries the user's)", async () => {
    const sentinel = clientWith({ ...(await makeClientCert(certs, "sentinel2", "sentinel")) });
    const asApp = { headers: bearerHeaders(TOKEN) };
    assert.equal(await code(sentinel.removeTopic({ topic: "t" }, asApp)), "PermissionDenied");
    assert.equal(
      await code(sentinel.removeTopic({ topic: "t" }, { headers: bearerHeaders("nope") })),
      "Unauthenticated",
    );
    assert.deepEqual(seen.splice(0), []);
  });
});

async function* one<T>(message: T): AsyncGenerator<T> {
  yield message;
}
