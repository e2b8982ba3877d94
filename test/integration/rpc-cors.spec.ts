import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import type { ConnectRouter } from "@connectrpc/connect";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { NotPartitionLeaderError } from "../../src/broker/errors.js";
import { toConnectError } from "../../src/errors.js";
import { silentLogger } from "../../src/observability/logger.js";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS } from "../../src/server/cors.js";
import { startRpcServer, type CorsPolicy, type RpcServer } from "../../src/server/rpc-server.js";

const PAGE = "http://127.0.0.1:5173";
const STRANGER = "http://evil.example";
const STATUS = "/goulette.v1.SentinelService/GetClusterStatus";
const COMMIT = "/goulette.v1.BrokerService/CommitOffset";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request, as a browser's fetch would send it (Origin and all). */
function request(
  server: RpcServer,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: server.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const preflight = (server: RpcServer, origin: string, path = STATUS) =>
  request(server, "OPTIONS", path, {
    origin,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,connect-protocol-version,content-type",
  });

const connectCall = (server: RpcServer, headers: Record<string, string>) =>
  request(
    server,
    "POST",
    STATUS,
    { "content-type": "application/proto", "connect-protocol-version": "1", ...headers },
    Buffer.alloc(0),
  );

const grpcWebCall = (server: RpcServer, headers: Record<string, string>) =>
  request(
    server,
    "POST",
    STATUS,
    { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...headers },
    Buffer.from([0, 0, 0, 0, 0]), // one empty message frame
  );

const list = (value: string | string[] | undefined) =>
  String(value ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== "");

const corsHeadersOf = (headers: http.IncomingHttpHeaders) =>
  Object.keys(headers).filter((name) => name.startsWith("access-control-"));

/** The RPC server's CORS: preflights, allowed and other origins, Connect, gRPC-web, HTTP/2, headers. */
describe("RPC server CORS", () => {
  const servers: RpcServer[] = [];
  let allowList: RpcServer;
  let anyOrigin: RpcServer;
  let off: RpcServer;

  const start = async (cors?: CorsPolicy) => {
    const server = await startRpcServer({
      address: "127.0.0.1:0",
      routes: (router: ConnectRouter) => {
        router.service(SentinelService, { getClusterStatus: async () => ({ sentinelId: "s1" }) });
        // A follower's answer: the leader hint travels as error metadata (response headers in Connect).
        router.service(BrokerService, {
          commitOffset: async () => {
            throw toConnectError(new NotPartitionLeaderError("t", 0, "b2", "127.0.0.1:9192"));
          },
        });
      },
      fallback: (_req, res) => {
        res.writeHead(404);
        res.end();
      },
      ...(cors ? { cors } : {}),
      logger: silentLogger(),
    });
    servers.push(server);
    return server;
  };

  before(async () => {
    allowList = await start({ allowedOrigins: [PAGE, "https://app.example.com"], maxAgeSeconds: 600 });
    anyOrigin = await start({ allowedOrigins: ["*"], maxAgeSeconds: 0 });
    off = await start();
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it("answers an allowed origin's preflight with 204 and what Connect, gRPC-web and tokens need", async () => {
    const res = await preflight(allowList, PAGE);
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], PAGE);
    assert.ok(list(res.headers.vary).includes("origin"), `vary: ${res.headers.vary}`);
    assert.deepEqual(list(res.headers["access-control-allow-methods"]).sort(), ["get", "post"]);
    const allowed = list(res.headers["access-control-allow-headers"]);
    for (const name of [
      "authorization",
      "content-type",
      "connect-protocol-version",
      "connect-timeout-ms",
      "x-grpc-web",
      "x-user-agent",
      "grpc-timeout",
    ]) {
      assert.ok(allowed.includes(name), `${name} missing from ${allowed.join(", ")}`);
    }
    assert.equal(res.headers["access-control-max-age"], "600");
    // Bearer tokens are headers, not cookies: credentials mode is never needed, so never allowed.
    assert.equal(res.headers["access-control-allow-credentials"], undefined);
    assert.equal(res.body, "");
  });

  it("refuses another origin's preflight with 403 and no CORS header", async () => {
    for (const origin of [STRANGER, "http://127.0.0.1:5174", "https://127.0.0.1:5173", "null"]) {
      const res = await preflight(allowList, origin);
      assert.equal(res.status, 403, origin);
      assert.deepEqual(corsHeadersOf(res.headers), [], origin);
      assert.match(res.body, /not allowed.*--cors-allowed-origins/);
    }
  });

  it("gives an allowed origin's Connect and gRPC-web calls Allow-Origin and the exposed headers", async () => {
    for (const [protocol, call] of [
      ["Connect", connectCall],
      ["gRPC-web", grpcWebCall],
    ] as const) {
      const res = await call(allowList, { origin: PAGE });
      assert.equal(res.status, 200, `${protocol}: ${res.body}`);
      assert.equal(res.headers["access-control-allow-origin"], PAGE, protocol);
      assert.ok(list(res.headers.vary).includes("origin"), protocol);
      const exposed = list(res.headers["access-control-expose-headers"]);
      for (const name of [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "goulette-leader-id",
        "goulette-leader-address",
      ]) {
        assert.ok(exposed.includes(name), `${protocol}: ${name} not exposed (${exposed.join(", ")})`);
      }
    }
    const grpcWeb = await grpcWebCall(allowList, { origin: "https://app.example.com" });
    assert.equal(grpcWeb.headers["access-control-allow-origin"], "https://app.example.com");
  });

  it("exposes the leader hint a follower answers with", async () => {
    const res = await request(
      allowList,
      "POST",
      COMMIT,
      { origin: PAGE, "content-type": "application/json", "connect-protocol-version": "1" },
      JSON.stringify({ consumerGroup: "g", topic: "t", partition: 0, offset: "1" }),
    );
    assert.equal(res.status, 503, res.body);
    assert.equal(res.headers["goulette-leader-id"], "b2");
    assert.equal(res.headers["goulette-leader-address"], "127.0.0.1:9192");
    const exposed = list(res.headers["access-control-expose-headers"]);
    assert.ok(exposed.includes("goulette-leader-id") && exposed.includes("goulette-leader-address"));
    assert.equal(res.headers["access-control-allow-origin"], PAGE);
  });

  it("answers other origins' calls without CORS headers (the browser blocks them; CORS is not auth)", async () => {
    const res = await connectCall(allowList, { origin: STRANGER });
    assert.equal(res.status, 200, "the server still answers: only browsers enforce CORS");
    assert.deepEqual(corsHeadersOf(res.headers), []);
    assert.ok(list(res.headers.vary).includes("origin"), "caches must not reuse it for an allowed page");
  });

  it("adds nothing but Vary to a call without Origin (gRPC clients, curl)", async () => {
    const res = await connectCall(allowList, {});
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeadersOf(res.headers), []);
    assert.ok(list(res.headers.vary).includes("origin"));
  });

  it("'*' allows any origin with Allow-Origin: *", async () => {
    const pre = await preflight(anyOrigin, STRANGER);
    assert.equal(pre.status, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "*");
    assert.equal(pre.headers["access-control-max-age"], "0");
    const res = await grpcWebCall(anyOrigin, { origin: STRANGER });
    assert.equal(res.headers["access-control-allow-origin"], "*");
    assert.deepEqual(list(res.headers["access-control-expose-headers"]), [
      ...CORS_EXPOSED_HEADERS.map((h) => h.toLowerCase()),
    ]);
  });

  it("sends no CORS header at all when off (the default)", async () => {
    const pre = await preflight(off, PAGE);
    assert.notEqual(pre.status, 204);
    assert.deepEqual(corsHeadersOf(pre.headers), []);
    const res = await connectCall(off, { origin: PAGE });
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeadersOf(res.headers), []);
    assert.equal(res.headers.vary, undefined);
  });

  it("leaves non-RPC paths (/healthz, /metrics) alone", async () => {
    const res = await request(allowList, "OPTIONS", "/healthz", {
      origin: PAGE,
      "access-control-request-method": "GET",
    });
    assert.equal(res.status, 404);
    assert.deepEqual(corsHeadersOf(res.headers), []);
  });

  it("works the same over HTTP/2 (browsers speak it to TLS servers)", async () => {
    const session = http2.connect(`http://127.0.0.1:${allowList.port}`);
    try {
      const ask = (headers: http2.OutgoingHttpHeaders) =>
        new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const stream = session.request(headers);
          stream.on("response", (h) => {
            stream.resume();
            stream.on("end", () => resolve(h));
          });
          stream.on("error", reject);
          stream.end();
        });
      const pre = await ask({
        ":method": "OPTIONS",
        ":path": STATUS,
        origin: PAGE,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      });
      assert.equal(pre[":status"], 204);
      assert.equal(pre["access-control-allow-origin"], PAGE);
      assert.deepEqual(
        list(pre["access-control-allow-headers"]),
        CORS_ALLOWED_HEADERS.map((h) => h.toLowerCase()),
      );
      const res = await ask({
        ":method": "POST",
        ":path": STATUS,
        origin: PAGE,
        "content-type": "application/proto",
        "connect-protocol-version": "1",
      });
      assert.equal(res[":status"], 200);
      assert.equal(res["access-control-allow-origin"], PAGE);
      assert.ok(list(res["access-control-expose-headers"]).includes("goulette-leader-id"));
    } finally {
      session.close();
    }
  });
});
