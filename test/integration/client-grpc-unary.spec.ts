import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { NotFoundError, UnauthenticatedError } from "../../src/errors.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { toClientError } from "../../src/client/errors.js";
import type { ClientEvent } from "../../src/client/events.js";
import { GrpcUnaryClient } from "../../src/client/grpc-unary-client.js";
import { createNodeTransport } from "../../src/client/node.js";
import { DefaultReplicaCount } from "../../src/client/default-replicas.js";
import { SentinelPool } from "../../src/client/sentinel-pool.js";
import { TopicMetadata } from "../../src/client/topic-metadata.js";
import { GetBrokersResponseSchema, SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";
import { servedByRecorder } from "../helpers/served-by.js";

const TOKEN = "lean-client-application-token";
const ADMIN_TOKEN = "lean-client-admin-token";
const AS_APPLICATION = bearerHeaders(TOKEN);
const { getBrokers, getClusterStatus } = SentinelService.method;

/** How each call reached the handler (the fast path or Connect). */
const { servedBy, interceptor: recordPath } = servedByRecorder();

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

/**
 * The SDK's lean unary gRPC client (src/client/grpc-unary-client.ts) against a real sentinel: the same
 * answers and errors as Connect's client, deadlines, and the SDK moving past a sentinel that is down or
 * frozen to the next one.
 */
describe("lean unary gRPC client (sentinel reads)", () => {
  let etcd: TestEtcd;
  let live: InProcessSentinel;
  let lean: GrpcUnaryClient;
  /** An HTTP/2 server that takes every call and never answers; it keeps the request headers it saw. */
  let frozen: http2.Http2Server;
  let frozenUrl: string;
  const frozenHeaders: http2.IncomingHttpHeaders[] = [];
  const frozenSessions = new Set<http2.ServerHttp2Session>();

  before(async () => {
    etcd = await startEtcd();
    live = await startInProcessSentinel(etcd, "lean-client", {
      identity: {
        tokens: new Map([
          [TOKEN, { kind: "application", name: "lean-client-test" }],
          [ADMIN_TOKEN, { kind: "admin", name: "lean-client-admin" }],
        ]),
        allowAnonymous: false,
      },
      interceptors: [recordPath],
    });
    await waitFor(() => live.sentinel.plane.isLeader, { what: "the sentinel to lead" });
    for (const n of [1, 2, 3]) {
      await live.client.registerBroker(
        { brokerId: `b${n}`, address: `127.0.0.1:${19_100 + n}` },
        { headers: bearerHeaders(ADMIN_TOKEN) },
      );
    }
    await live.client.getBrokers(
      { topic: "orders", partitions: 3, replicaCount: 2 },
      { headers: AS_APPLICATION },
    );
    lean = new GrpcUnaryClient(live.sentinel.url);
    frozen = http2.createServer();
    frozen.on("stream", (stream, headers) => {
      frozenHeaders.push(headers);
      // Its own resets are reported on the stream: expected here.
      stream.on("error", () => undefined);
      // Asked to: reset the stream with that HTTP/2 code instead of answering.
      const reset = headers["x-test-reset"];
      if (typeof reset === "string") stream.close(Number(reset));
    });
    frozen.on("session", (session) => frozenSessions.add(session));
    await new Promise<void>((resolve) => frozen.listen(0, "127.0.0.1", resolve));
    frozenUrl = `http://127.0.0.1:${(frozen.address() as AddressInfo).port}`;
  });

  after(async () => {
    lean?.close();
    // Sessions with streams it never answered would hold close() open.
    for (const session of frozenSessions) session.destroy();
    await new Promise<void>((resolve) => (frozen ? frozen.close(() => resolve()) : resolve()));
    await live?.stop();
    await etcd?.stop();
  });

  it("answers GetBrokers as Connect's client does, served by the sentinel's fast path", async () => {
    const viaConnect = await live.client.getBrokers({ topic: "orders" }, { headers: AS_APPLICATION });
    const before = servedBy.length;
    const { message } = await lean.call(
      getBrokers,
      { topic: "orders" },
      { headers: AS_APPLICATION, timeoutMs: 10_000 },
    );
    assert.deepEqual(toJson(GetBrokersResponseSchema, message), toJson(GetBrokersResponseSchema, viaConnect));
    assert.equal(message.partitions.length, 3);
    assert.deepEqual(servedBy.slice(before), ["fast"]);
    // A read the fast path does not serve goes through Connect on the server: same client, same answer.
    const status = await lean.call(getClusterStatus, {}, { headers: AS_APPLICATION, timeoutMs: 10_000 });
    assert.equal(status.message.brokers.length, 3);
    assert.deepEqual(servedBy.slice(before + 1), ["connect"]);
  });

  it("refuses a caller without a token with Connect's code and message", async () => {
    const viaConnect = await failure(live.client.getBrokers({ topic: "orders" }));
    const viaLean = await failure(lean.call(getBrokers, { topic: "orders" }, { timeoutMs: 10_000 }));
    assert.equal(viaLean.code, Code.Unauthenticated);
    assert.equal(viaLean.code, viaConnect.code);
    assert.equal(viaLean.rawMessage, viaConnect.rawMessage);
    assert.ok(toClientError(viaLean) instanceof UnauthenticatedError);
  });

  it("gives NotFound with the sentinel's message", async () => {
    const request = { topic: "orders", unreachableBrokers: ["no-such-broker"] };
    const viaConnect = await failure(live.client.getBrokers(request, { headers: AS_APPLICATION }));
    const viaLean = await failure(
      lean.call(getBrokers, request, { headers: AS_APPLICATION, timeoutMs: 10_000 }),
    );
    assert.equal(viaLean.code, Code.NotFound);
    assert.equal(viaLean.rawMessage, viaConnect.rawMessage);
    assert.match(viaLean.rawMessage, /unknown broker 'no-such-broker'/);
    assert.ok(toClientError(viaLean) instanceof NotFoundError);
  });

  it("fails a call nobody answers with DeadlineExceeded at its deadline, which the request carried", async () => {
    const stuck = new GrpcUnaryClient(frozenUrl);
    try {
      const started = Date.now();
      const err = await failure(
        stuck.call(getBrokers, { topic: "orders" }, { headers: AS_APPLICATION, timeoutMs: 300 }),
      );
      const elapsed = Date.now() - started;
      assert.equal(err.code, Code.DeadlineExceeded);
      assert.ok(elapsed >= 250, `failed after ${elapsed} ms, before its deadline`);
      assert.ok(elapsed < 10_000, `failed after ${elapsed} ms`);
      const seen = frozenHeaders.at(-1);
      assert.equal(seen?.["grpc-timeout"], "300m");
      assert.equal(seen?.authorization, `Bearer ${TOKEN}`);
      assert.equal(seen?.[":path"], "/goulette.v1.SentinelService/GetBrokers");
      // The caller's signal cancels as well.
      const abort = new AbortController();
      const call = stuck.call(getBrokers, { topic: "orders" }, { signal: abort.signal, timeoutMs: 60_000 });
      abort.abort(new Error("the caller gave up"));
      assert.equal((await failure(call)).code, Code.Canceled);
    } finally {
      stuck.reset();
    }
  });

  it("maps a stream reset before any answer as gRPC does", async () => {
    const resetting = new GrpcUnaryClient(frozenUrl);
    try {
      const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;
      const reset = (code: number) =>
        failure(
          resetting.call(
            getBrokers,
            { topic: "orders" },
            { headers: { "x-test-reset": String(code) }, timeoutMs: 10_000 },
          ),
        );
      assert.equal((await reset(NGHTTP2_REFUSED_STREAM)).code, Code.Unavailable);
      assert.equal((await reset(NGHTTP2_ENHANCE_YOUR_CALM)).code, Code.ResourceExhausted);
    } finally {
      resetting.reset();
    }
  });

  it("moves past a sentinel that is down and one that is frozen to the next, through the SDK", async () => {
    const downUrl = `http://127.0.0.1:${await freePort()}`;
    const transport = createNodeTransport();
    const events: ClientEvent[] = [];
    const pool = new SentinelPool({
      urls: [downUrl, frozenUrl, live.sentinel.url],
      transport,
      headers: AS_APPLICATION,
      timeoutMs: 1_500,
      emit: (event) => events.push(event),
    });
    try {
      const metadata = new TopicMetadata({
        topic: "orders",
        sentinels: pool,
        shape: { replicas: 2 },
        defaultReplicas: new DefaultReplicaCount(pool),
        emit: (event) => events.push(event),
      });
      const before = servedBy.length;
      const assignment = await metadata.get();
      assert.equal(assignment.partitions.length, 3);
      assert.ok(assignment.partitions.every((p) => p.leaderId !== "" && p.address !== ""));
      assert.equal(pool.current, live.sentinel.url);
      assert.equal(pool.failovers, 1);
      const failover = events.find((e) => e.type === "sentinel-failover");
      assert.ok(failover?.type === "sentinel-failover");
      assert.equal(failover.from, downUrl);
      assert.equal(failover.to, live.sentinel.url);
      assert.equal(
        (failover.error as ConnectError).code,
        Code.DeadlineExceeded,
        "the frozen one timed out last",
      );
      // The SDK's GetBrokers went on the lean client, to the server's fast path.
      assert.deepEqual(servedBy.slice(before), ["fast"]);
      // And sticks to the sentinel that answered.
      await metadata.refresh();
      assert.equal(pool.failovers, 1);
    } finally {
      transport.close();
    }
  });
});
