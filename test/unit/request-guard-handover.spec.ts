import http from "node:http";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient, type ConnectRouter, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  BrokerService,
  MessageRequestSchema,
  type MessageRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { SentinelService, type GetBrokersRequest } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startRpcServer, type RpcServer } from "../../src/server/rpc-server.js";

/**
 * The request guard decodes each binary message once and hands it to the handler in place of Connect's
 * decode of a placeholder: handlers and interceptors must see the real request in every protocol.
 */
describe("request guard hands its decode to the handler", () => {
  let server: RpcServer;
  const unarySeen: GetBrokersRequest[] = [];
  const streamSeen: MessageRequest[] = [];
  const interceptorSeen: string[] = [];
  const watch: Interceptor = (next) => async (req) => {
    if (!req.stream) interceptorSeen.push((req.message as GetBrokersRequest).topic);
    return next(req);
  };
  // Per-service interceptors replace the router's; the hand-over must survive them.
  const serviceWatch: Interceptor = (next) => (req) => next(req);

  before(async () => {
    server = await startRpcServer({
      address: "127.0.0.1:0",
      interceptors: [watch],
      routes: (router: ConnectRouter) => {
        router.service(SentinelService, {
          getBrokers(req) {
            unarySeen.push(req);
            return { version: BigInt(req.unreachableBrokers.length) };
          },
        });
        router.service(
          BrokerService,
          {
            async *sendMessage(requests) {
              for await (const req of requests) {
                streamSeen.push(req);
                yield { topic: req.topic, partition: req.partition };
              }
            },
          },
          { interceptors: [serviceWatch] },
        );
      },
      fallback: (_req, res) => res.end(),
      readMaxBytes: 64 * 1024,
      logger: silentLogger(),
    });
  });
  after(async () => {
    await server.close();
  });

  const baseUrl = () => `http://127.0.0.1:${server.port}`;
  const unaryTransports: [string, () => Transport][] = [
    ["gRPC", () => createGrpcTransport({ baseUrl: baseUrl() })],
    [
      "gRPC, gzip",
      () =>
        createGrpcTransport({ baseUrl: baseUrl(), sendCompression: compressionGzip, compressMinBytes: 0 }),
    ],
    ["gRPC-web", () => createGrpcWebTransport({ baseUrl: baseUrl(), httpVersion: "1.1" })],
    [
      "Connect proto",
      () => createConnectTransport({ baseUrl: baseUrl(), httpVersion: "1.1", useBinaryFormat: true }),
    ],
    [
      "Connect proto, gzip",
      () =>
        createConnectTransport({
          baseUrl: baseUrl(),
          httpVersion: "1.1",
          useBinaryFormat: true,
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    ],
    ["Connect JSON", () => createConnectTransport({ baseUrl: baseUrl(), httpVersion: "1.1" })],
  ];

  for (const [name, transport] of unaryTransports) {
    it(`unary over ${name}: the handler and interceptors get the request`, async () => {
      const client = createClient(SentinelService, transport());
      const topic = `orders-${name}`;
      const res = await client.getBrokers({ topic, replicaCount: 3, unreachableBrokers: ["a", "b"] });
      assert.equal(res.version, 2n);
      const seen = unarySeen.at(-1);
      assert.equal(seen?.topic, topic);
      assert.equal(seen?.replicaCount, 3);
      assert.equal(interceptorSeen.at(-1), topic);
    });
  }

  for (const [name, transport] of [
    ["gRPC", () => createGrpcTransport({ baseUrl: baseUrl() })],
    [
      "gRPC, gzip",
      () =>
        createGrpcTransport({ baseUrl: baseUrl(), sendCompression: compressionGzip, compressMinBytes: 0 }),
    ],
    [
      "Connect proto",
      () => createConnectTransport({ baseUrl: baseUrl(), httpVersion: "2", useBinaryFormat: true }),
    ],
  ] as [string, () => Transport][]) {
    it(`bidi stream over ${name}: each message arrives, in order`, async () => {
      const client = createClient(BrokerService, transport());
      const before = streamSeen.length;
      async function* requests() {
        for (let i = 0; i < 5; i++) {
          yield create(MessageRequestSchema, {
            topic: `t${i}`,
            partition: i,
            records: [{ messageId: BigInt(i), payload: new Uint8Array(100 * i).fill(i) }],
          });
        }
      }
      const answers: string[] = [];
      for await (const res of client.sendMessage(requests())) answers.push(`${res.topic}/${res.partition}`);
      assert.deepEqual(answers, ["t0/0", "t1/1", "t2/2", "t3/3", "t4/4"]);
      const seen = streamSeen.slice(before);
      assert.deepEqual(
        seen.map((m) => [m.topic, m.records[0]?.payload.length]),
        [0, 1, 2, 3, 4].map((i) => [`t${i}`, 100 * i]),
      );
    });
  }

  it("a malformed binary request is still answered InvalidArgument", async () => {
    const res = await fetch(`${baseUrl()}/goulette.v1.SentinelService/GetBrokers`, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
      body: new Uint8Array([0x0a, 0x05, 0x61]), // field 1 promises 5 bytes, 1 follows
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /malformed goulette\.v1\.GetBrokersRequest/);
  });

  it(
    "a Connect unary request declared too large is refused before its body is read",
    { timeout: 10_000 },
    async () => {
      const req = http.request({
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/goulette.v1.SentinelService/GetBrokers",
        headers: { "content-type": "application/proto", "content-length": String(1024 * 1024) },
      });
      req.write(new Uint8Array(10)); // and never the rest
      try {
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          req.once("response", resolve);
          req.once("error", reject);
        });
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { code: string };
        assert.equal(body.code, "resource_exhausted");
      } finally {
        req.destroy();
      }
    },
  );
});
