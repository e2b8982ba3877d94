import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { create, toBinary, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { bearerHeaders } from "../../src/common/bearer.js";
import {
  GetBrokersRequestSchema,
  GetBrokersResponseSchema,
  SentinelService,
} from "../../src/gen/goulette/v1/sentinel_pb.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";
import { servedByRecorder } from "../helpers/served-by.js";
import { grpcEnvelope, rawGrpc } from "../helpers/raw-grpc.js";

type GetBrokersInit = MessageInitShape<typeof GetBrokersRequestSchema>;

const TOKEN = "fast-path-application-token";
const ADMIN_TOKEN = "fast-path-admin-token";
const AS_APPLICATION = { headers: bearerHeaders(TOKEN) };
const AS_ADMIN = { headers: bearerHeaders(ADMIN_TOKEN) };
const MAX_REQUEST_BYTES = 64 * 1024;
const GET_BROKERS = "/goulette.v1.SentinelService/GetBrokers";
const REPO = path.resolve(import.meta.dirname, "../../..");

/** How each call reached the handler (the fast path or Connect). */
const { servedBy, interceptor: recordPath } = servedByRecorder();

/**
 * GetBrokers over the gRPC fast path answers as the Connect path does: the same answer, errors with the
 * same codes and messages, the same metrics. Two sentinels (each its own prefix, so each leads): one
 * with the fast path, one without, both with tokens (anonymous callers are refused, reads included).
 */
describe("gRPC fast path (GetBrokers)", () => {
  let etcd: TestEtcd;
  let fast: InProcessSentinel;
  let slow: InProcessSentinel;

  const start = async (id: string, grpcFastPath: boolean) => {
    const s = await startInProcessSentinel(etcd, id, {
      etcdPrefix: `/${id}`,
      grpcFastPath,
      identity: {
        tokens: new Map([
          [TOKEN, { kind: "application", name: "fast-path-test" }],
          [ADMIN_TOKEN, { kind: "admin", name: "fast-path-admin" }],
        ]),
        allowAnonymous: false,
      },
      rpcLimits: { maxRequestBytes: MAX_REQUEST_BYTES },
      interceptors: [recordPath],
    });
    await waitFor(() => s.sentinel.plane.isLeader, { what: `${id} to lead` });
    for (const n of [1, 2, 3]) {
      await s.client.registerBroker({ brokerId: `b${n}`, address: `127.0.0.1:${19_000 + n}` }, AS_ADMIN);
    }
    await s.client.getBrokers({ topic: "orders", partitions: 3, replicaCount: 2 }, AS_APPLICATION);
    return s;
  };

  before(async () => {
    etcd = await startEtcd();
    [fast, slow] = await Promise.all([start("fast-path-on", true), start("fast-path-off", false)]);
  });
  after(async () => {
    await Promise.all([fast?.stop(), slow?.stop()]);
    await etcd?.stop();
  });

  const transports = (url: string): [string, Transport][] => [
    ["gRPC", createGrpcTransport({ baseUrl: url })],
    ["Connect", createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true })],
    ["gRPC-web", createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
  ];

  /** The call's error as "Code: message" (or "ok"), and which path served it. */
  const outcome = async (transport: Transport, req: GetBrokersInit, headers = {}) => {
    servedBy.length = 0;
    const client = createClient(SentinelService, transport);
    const result = await client.getBrokers(req, { headers }).then(
      () => "ok",
      (err: unknown) => {
        assert.ok(err instanceof ConnectError, String(err));
        return `${Code[err.code]}: ${err.rawMessage}`;
      },
    );
    return { result, path: servedBy[0] ?? "none" };
  };

  it("gives the same answer over gRPC (fast path), Connect and gRPC-web", async () => {
    const answers: unknown[] = [];
    for (const [name, transport] of transports(fast.sentinel.url)) {
      servedBy.length = 0;
      const res = await createClient(SentinelService, transport).getBrokers(
        { topic: "orders" },
        AS_APPLICATION,
      );
      assert.equal(servedBy[0], name === "gRPC" ? "fast" : "connect", `${name} served by`);
      answers.push(toJson(GetBrokersResponseSchema, res));
    }
    assert.equal((answers[0] as { partitions: unknown[] }).partitions.length, 3);
    assert.deepEqual(answers[1], answers[0], "Connect = gRPC");
    assert.deepEqual(answers[2], answers[0], "gRPC-web = gRPC");
    // Without the fast path gRPC goes through Connect.
    const off = await outcome(
      createGrpcTransport({ baseUrl: slow.sentinel.url }),
      { topic: "orders" },
      AS_APPLICATION.headers,
    );
    assert.deepEqual(off, { result: "ok", path: "connect" });
  });

  it("refuses bad input, callers without a credential and unknown brokers as the Connect path does", async () => {
    const head = fast.sentinel.plane.head;
    const cases: [string, GetBrokersInit, Record<string, string>, RegExp][] = [
      ["invalid topic name", { topic: "no spaces" }, AS_APPLICATION.headers, /^InvalidArgument: /],
      ["unknown topic, anonymous", { topic: "not-yet" }, {}, /^Unauthenticated: .*'not-yet'/],
      ["wrong token", { topic: "orders" }, bearerHeaders("not-a-token"), /^Unauthenticated: GetBrokers: /],
      [
        "unknown topic, too many replicas",
        { topic: "too-big", replicaCount: 9 },
        AS_APPLICATION.headers,
        /^\w+: .*replica/,
      ],
      [
        "unknown unreachable broker",
        { topic: "orders", unreachableBrokers: ["b9"] },
        AS_APPLICATION.headers,
        /^NotFound: /,
      ],
      [
        "bad listener",
        { topic: "orders", listener: "Bad Listener" },
        AS_APPLICATION.headers,
        /^InvalidArgument: /,
      ],
      ["anonymous, existing topic", { topic: "orders" }, {}, /^Unauthenticated: reading topic 'orders'/],
      ["application, existing topic", { topic: "orders" }, AS_APPLICATION.headers, /^ok$/],
    ];
    for (const [what, req, headers, expected] of cases) {
      const onFast = await outcome(createGrpcTransport({ baseUrl: fast.sentinel.url }), req, headers);
      assert.match(onFast.result, expected, what);
      if (servedBy.length > 0) assert.equal(onFast.path, "fast", `${what}: served by`);
      for (const [name, transport] of [
        ["gRPC without the fast path", createGrpcTransport({ baseUrl: slow.sentinel.url })] as const,
        ...transports(fast.sentinel.url).slice(1),
      ]) {
        assert.equal((await outcome(transport, req, headers)).result, onFast.result, `${what} over ${name}`);
      }
    }
    assert.equal(fast.sentinel.plane.head, head, "nothing appended");
  });

  it("answers malformed, oversized and odd gRPC requests with the Connect path's status and message", async () => {
    const valid = toBinary(GetBrokersRequestSchema, create(GetBrokersRequestSchema, { topic: "orders" }));
    const bodies: [string, Uint8Array, number][] = [
      ["not protobuf", grpcEnvelope(Uint8Array.of(0x0a, 0x50, 0x41)), Code.InvalidArgument],
      ["over readMaxBytes", grpcEnvelope(new Uint8Array(MAX_REQUEST_BYTES + 1)), Code.ResourceExhausted],
      ["flag 0x80", grpcEnvelope(valid, 0x80), Code.InvalidArgument],
      ["compressed, no encoding", grpcEnvelope(valid, 0x01), Code.InvalidArgument],
      ["no message", new Uint8Array(0), Code.Unimplemented],
      ["two messages", Buffer.concat([grpcEnvelope(valid), grpcEnvelope(valid)]), Code.Unimplemented],
      ["truncated envelope", grpcEnvelope(valid).subarray(0, 7), Code.InvalidArgument],
    ];
    for (const [what, body, code] of bodies) {
      servedBy.length = 0;
      const onFast = await rawGetBrokers(fast.sentinel.url, body);
      const onConnect = await rawGetBrokers(slow.sentinel.url, body);
      assert.equal(onFast.status, String(code), `${what}: ${JSON.stringify(onFast)}`);
      assert.deepEqual(onFast, onConnect, what);
    }
    // Anonymous and malformed: refused from its headers before the body is read, on both paths.
    const refused = await rawGetBrokers(fast.sentinel.url, grpcEnvelope(valid), {
      authorization: "Bearer nope",
    });
    assert.equal(refused.status, String(Code.Unauthenticated));
    assert.deepEqual(
      refused,
      await rawGetBrokers(slow.sentinel.url, grpcEnvelope(valid), { authorization: "Bearer nope" }),
    );
    // A bad grpc-timeout, as Connect reports it.
    const timeout = await rawGetBrokers(fast.sentinel.url, grpcEnvelope(valid), { "grpc-timeout": "soon" });
    assert.deepEqual(
      timeout,
      await rawGetBrokers(slow.sentinel.url, grpcEnvelope(valid), { "grpc-timeout": "soon" }),
    );
    assert.equal(timeout.status, String(Code.InvalidArgument));
  });

  it("counts fast-path calls in the same RPC metrics", async () => {
    const count = async (code: string) => {
      const metric = await fast.sentinel.registry.getSingleMetric("goulette_rpc_requests_total")?.get();
      const value = metric?.values.find(
        (v) =>
          v.labels.method === "GetBrokers" &&
          v.labels.service === "SentinelService" &&
          v.labels.code === code,
      );
      return value?.value ?? 0;
    };
    const [okBefore, notFoundBefore] = [await count("ok"), await count("NotFound")];
    const grpc = createClient(SentinelService, createGrpcTransport({ baseUrl: fast.sentinel.url }));
    for (let i = 0; i < 3; i++) await grpc.getBrokers({ topic: "orders" }, AS_APPLICATION);
    await grpc
      .getBrokers({ topic: "orders", unreachableBrokers: ["b9"] }, AS_APPLICATION)
      .catch(() => undefined);
    assert.equal(await count("ok"), okBefore + 3);
    assert.equal(await count("NotFound"), notFoundBefore + 1);
  });

  it("serves `buf curl --protocol grpc`", async () => {
    const { stdout } = await promisify(execFile)(
      path.join(REPO, "node_modules/.bin/buf"),
      [
        "curl",
        "--schema",
        path.join(REPO, "proto"),
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--header",
        `authorization: Bearer ${TOKEN}`,
        "--data",
        '{"topic":"orders"}',
        `${fast.sentinel.url}${GET_BROKERS}`,
      ],
      { timeout: 60_000 },
    );
    const answer = JSON.parse(stdout) as { partitions: unknown[]; brokers: unknown[] };
    assert.equal(answer.partitions.length, 3);
    assert.ok(answer.brokers.length >= 2);
  });
});

/** One raw gRPC GetBrokers call as the application (unless `extra` names another authorization). */
function rawGetBrokers(url: string, body: Uint8Array, extra: Record<string, string> = {}) {
  return rawGrpc(url, GET_BROKERS, body, { authorization: `Bearer ${TOKEN}`, ...extra });
}
