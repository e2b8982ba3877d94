import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create, toBinary, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { Broker } from "../../src/broker/broker.js";
import { grpcStream } from "../../src/client/grpc-stream-client.js";
import { AsyncQueue } from "../../src/common/async-queue.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import {
  Acks,
  BrokerService,
  FetchRequestSchema,
  FetchResponseSchema,
  MessageRequestSchema,
  type MessageRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessBroker, type InProcessBroker } from "../helpers/in-process-broker.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { servedByRecorder } from "../helpers/served-by.js";
import { grpcEnvelope, rawGrpc } from "../helpers/raw-grpc.js";
import { encodedResponsesOf } from "../../src/server/encoded-responses.js";
import { waitFor } from "../helpers/wait.js";

const TOKEN = "fast-stream-application-token";
const AS_APPLICATION = { headers: bearerHeaders(TOKEN) };
const MAX_REQUEST_BYTES = 64 * 1024;
const SEND_MESSAGE = "/goulette.v1.BrokerService/SendMessage";
const FETCH_MESSAGES = "/goulette.v1.BrokerService/FetchMessages";

const { servedBy, interceptor: recordPath } = servedByRecorder();

/** Per call, whether its handler could encode its responses itself (the queue was there when it ran). */
const selfEncoded: boolean[] = [];
const recordEncoding: Interceptor = (next) => (req) => {
  selfEncoded.push(encodedResponsesOf(req.contextValues) !== undefined);
  return next(req);
};

/**
 * Streams on the broker's gRPC fast path (src/server/grpc-fast-stream.ts) behave as on the Connect
 * path: the same records produced and fetched, bad messages on a stream answered with the same status
 * and message, the same metrics. Two single-broker clusters (each its own sentinel and etcd prefix): one
 * broker with the fast path, one without, both requiring a token.
 */
describe("gRPC fast path (broker streams)", () => {
  let etcd: TestEtcd;
  const sentinels: InProcessSentinel[] = [];
  const nodes: InProcessBroker[] = [];
  let fast: Broker;
  let slow: Broker;

  const start = async (id: string, grpcFastPath: boolean): Promise<Broker> => {
    const sentinel = await startInProcessSentinel(etcd, `${id}-sentinel`, { etcdPrefix: `/${id}` });
    sentinels.push(sentinel);
    await waitFor(() => sentinel.sentinel.plane.isLeader, { what: `${id}'s sentinel to lead` });
    const node = await startInProcessBroker(sentinel.sentinel.url, id, {
      maxMessageBytes: 16 * 1024,
      identity: { tokens: new Map([[TOKEN, { kind: "application", name: "fast-stream" }]]) },
      rpcLimits: { maxRequestBytes: MAX_REQUEST_BYTES },
      grpcFastPath,
      interceptors: [recordPath, recordEncoding],
    });
    nodes.push(node);
    const broker = node.broker;
    await sentinel.client.getBrokers({ topic: "t", partitions: 1, replicaCount: 1 });
    await waitFor(() => broker.partitions.all().some((p) => p.topic === "t" && p.role === "leader"), {
      what: `${id} to lead t`,
    });
    return broker;
  };

  before(async () => {
    etcd = await startEtcd();
    [fast, slow] = await Promise.all([start("fast-on", true), start("fast-off", false)]);
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all(sentinels.map((s) => s.stop()));
    await etcd?.stop();
  });

  /** gRPC as the SDK speaks it to brokers: no compressed responses asked for. */
  const grpc = (broker: Broker) =>
    createGrpcTransport({ baseUrl: `http://${broker.address}`, acceptCompression: [] });

  /** Produces `values` on one SendMessage stream (a request each, acks=leader); returns the offsets. */
  const produce = async (transport: Transport, producerId: string, values: string[]) => {
    const client = createClient(BrokerService, transport);
    const requests = values.map((value, i) =>
      create(MessageRequestSchema, {
        topic: "t",
        partition: 0,
        producerId,
        acks: Acks.LEADER,
        records: [{ messageId: BigInt(i + 1), payload: new TextEncoder().encode(value) }],
      }),
    );
    const offsets: bigint[] = [];
    for await (const res of client.sendMessage(each(requests), AS_APPLICATION)) {
      for (const ack of res.acks) offsets.push(ack.offset);
    }
    return offsets;
  };

  /** Fetches `limit` records from offset 0 (one FetchMessages stream): their values, in order. */
  const fetchAll = async (transport: Transport, limit: number) => {
    const client = createClient(BrokerService, transport);
    const values: string[] = [];
    const req: MessageInitShape<typeof FetchRequestSchema> = {
      topic: "t",
      partition: 0,
      offset: 0n,
      limit: BigInt(limit),
    };
    for await (const res of client.fetchMessages(req, AS_APPLICATION)) {
      assert.ok(toJson(FetchResponseSchema, res));
      for (const m of res.messages) values.push(new TextDecoder().decode(m.payload));
    }
    return values;
  };

  it("produces and fetches over gRPC on the fast path, with the records the Connect path gives", async () => {
    servedBy.length = 0;
    selfEncoded.length = 0;
    const values = ["one", "two", "three"];
    assert.deepEqual(await produce(grpc(fast), "p1", values), [0n, 1n, 2n]);
    assert.deepEqual(await fetchAll(grpc(fast), 3), values);
    assert.deepEqual(servedBy, ["fast", "fast"], "SendMessage and FetchMessages on the fast path");
    assert.deepEqual(selfEncoded, [true, true], "handlers encode their own responses on the fast path");

    servedBy.length = 0;
    selfEncoded.length = 0;
    assert.deepEqual(await produce(grpc(slow), "p1", values), [0n, 1n, 2n]);
    assert.deepEqual(await fetchAll(grpc(slow), 3), values);
    assert.deepEqual(servedBy, ["connect", "connect"], "without the fast path, gRPC goes through Connect");
    assert.deepEqual(selfEncoded, [true, true]);

    // The fast broker over the other protocols, and over gRPC to a client that takes compressed
    // responses: Connect serves them, with the same records.
    const others: [string, Transport, boolean][] = [
      [
        "Connect (JSON)",
        createConnectTransport({ baseUrl: `http://${fast.address}`, httpVersion: "2" }),
        false,
      ],
      [
        "gRPC-web (binary)",
        createGrpcWebTransport({
          baseUrl: `http://${fast.address}`,
          httpVersion: "1.1",
          useBinaryFormat: true,
          acceptCompression: [],
        }),
        true,
      ],
      ["gRPC taking gzip", createGrpcTransport({ baseUrl: `http://${fast.address}` }), false],
    ];
    for (const [name, transport, encodesItself] of others) {
      servedBy.length = 0;
      selfEncoded.length = 0;
      assert.deepEqual(await fetchAll(transport, 3), values, name);
      assert.deepEqual(servedBy, ["connect"], name);
      // Binary envelopes without compression get the handler's own encoding on either path.
      assert.deepEqual(selfEncoded, [encodesItself], name);
    }
  });

  it("answers bad messages on a stream with the Connect path's status and message", async () => {
    const good = (id: bigint) =>
      grpcEnvelope(
        toBinary(
          MessageRequestSchema,
          create(MessageRequestSchema, {
            topic: "t",
            partition: 0,
            producerId: `raw-${id}`,
            acks: Acks.LEADER,
            records: [{ messageId: 1n, payload: new TextEncoder().encode("raw") }],
          }),
        ),
      );
    const fetch = grpcEnvelope(
      toBinary(
        FetchRequestSchema,
        create(FetchRequestSchema, { topic: "t", partition: 0, offset: 0n, limit: 1n }),
      ),
    );
    const cases: [string, string, (n: bigint) => Uint8Array, number][] = [
      [
        "not protobuf",
        SEND_MESSAGE,
        (n) => cat(good(n), grpcEnvelope(Uint8Array.of(0x0a, 0x50, 0x41))),
        Code.InvalidArgument,
      ],
      [
        "over readMaxBytes",
        SEND_MESSAGE,
        (n) => cat(good(n), grpcEnvelope(new Uint8Array(MAX_REQUEST_BYTES + 1))),
        Code.ResourceExhausted,
      ],
      [
        "flag 0x80",
        SEND_MESSAGE,
        (n) => cat(good(n), grpcEnvelope(Uint8Array.of(), 0x80)),
        Code.InvalidArgument,
      ],
      [
        "compressed, no encoding",
        SEND_MESSAGE,
        (n) => cat(good(n), grpcEnvelope(Uint8Array.of(), 0x01)),
        Code.InvalidArgument,
      ],
      ["truncated envelope", SEND_MESSAGE, (n) => good(n).subarray(0, 7), Code.InvalidArgument],
      [
        "invalid topic",
        SEND_MESSAGE,
        () =>
          grpcEnvelope(toBinary(MessageRequestSchema, create(MessageRequestSchema, { topic: "no spaces" }))),
        Code.InvalidArgument,
      ],
      ["fetch: no message", FETCH_MESSAGES, () => new Uint8Array(0), Code.Unimplemented],
      ["fetch: two messages", FETCH_MESSAGES, () => cat(fetch, fetch), Code.Unimplemented],
    ];
    let n = 0n;
    for (const [what, rpc, body, code] of cases) {
      servedBy.length = 0;
      const onFast = await rawCall(fast.address, rpc, body(++n));
      const onConnect = await rawCall(slow.address, rpc, body(++n));
      assert.equal(onFast.status, String(code), `${what}: ${JSON.stringify(onFast)}`);
      assert.equal(servedBy[0], servedBy.length > 0 ? "fast" : undefined, `${what}: served by`);
      // The good message's answer may come before the failure or not (it races the next message's
      // decode on either path); the status and message are the same.
      assert.deepEqual(onFast, onConnect, what);
    }
    // Refused from its headers, before the body is read, on both paths.
    const refused = await rawCall(fast.address, SEND_MESSAGE, good(++n), { authorization: "Bearer nope" });
    assert.equal(refused.status, String(Code.Unauthenticated));
    assert.deepEqual(
      refused,
      await rawCall(slow.address, SEND_MESSAGE, good(++n), { authorization: "Bearer nope" }),
    );
    const timeout = await rawCall(fast.address, FETCH_MESSAGES, fetch, { "grpc-timeout": "soon" });
    assert.deepEqual(timeout, await rawCall(slow.address, FETCH_MESSAGES, fetch, { "grpc-timeout": "soon" }));
    assert.equal(timeout.status, String(Code.InvalidArgument));
  });

  it("ends a long poll the client cancels, and counts fast streams in the same RPC metrics", async () => {
    const count = async (method: string) => {
      const metric = await fast.registry.getSingleMetric("goulette_rpc_requests_total")?.get();
      return metric?.values.find((v) => v.labels.method === method && v.labels.code === "ok")?.value ?? 0;
    };
    const before = await count("FetchMessages");
    const client = createClient(BrokerService, grpc(fast));
    const abort = new AbortController();
    const poll = (async () => {
      // At the end: the stream waits for records that never come, until cancelled.
      for await (const res of client.fetchMessages(
        { topic: "t", partition: 0, offset: BigInt(logEnd(fast)) },
        { ...AS_APPLICATION, signal: abort.signal },
      )) {
        assert.fail(`unexpected response ${JSON.stringify(toJson(FetchResponseSchema, res))}`);
      }
    })();
    await waitFor(async () => (await count("FetchMessages")) > before, { what: "the poll to be counted" });
    abort.abort();
    await assert.rejects(poll, (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled);
    // The broker still serves the next call on the same connection.
    assert.equal((await fetchAll(grpc(fast), 1)).length, 1);
  });

  it("the lean stream client (a follower's) gets what Connect's client gets, from either server path", async () => {
    const managers: Http2SessionManager[] = [];
    const lean = (broker: Broker) => {
      const manager = new Http2SessionManager(`http://${broker.address}`);
      managers.push(manager);
      return manager;
    };
    const sendMessage = BrokerService.method.sendMessage;
    const request = (producerId: string, topic = "t") =>
      create(MessageRequestSchema, {
        topic,
        partition: 0,
        producerId,
        acks: Acks.LEADER,
        records: [{ messageId: 1n, payload: new TextEncoder().encode(producerId) }],
      });
    /** Every response's acks as "offset:error", or the call's error as "Code: message". */
    const outcome = async (responses: AsyncIterable<{ acks: { offset: bigint; error: number }[] }>) => {
      const seen: string[] = [];
      try {
        for await (const res of responses) for (const ack of res.acks) seen.push(`${ack.error}`);
      } catch (err) {
        assert.ok(err instanceof ConnectError, String(err));
        seen.push(`${Code[err.code]}: ${err.rawMessage}`);
      }
      return seen;
    };
    try {
      for (const broker of [fast, slow]) {
        const signal = new AbortController().signal;
        const viaLean = (requests: MessageRequest[]) =>
          outcome(grpcStream(lean(broker), sendMessage, each(requests), { signal, ...AS_APPLICATION }));
        const viaConnect = (requests: MessageRequest[]) =>
          outcome(createClient(BrokerService, grpc(broker)).sendMessage(each(requests), AS_APPLICATION));
        const good = [request("lean-a"), request("lean-b")];
        assert.deepEqual(await viaLean(good), ["0", "0"], "two records acknowledged");
        assert.deepEqual(await viaLean(good), await viaConnect(good), "the same answers (duplicates)");
        const bad = [request("lean-c", "no spaces")];
        const refused = await viaLean(bad);
        assert.match(refused[0] ?? "", /^InvalidArgument: /);
        assert.deepEqual(refused, await viaConnect(bad));
        // Cancelled by the caller while the request stream is still open.
        const abort = new AbortController();
        const open = new AsyncQueue<MessageRequest>();
        open.push(request("lean-d"));
        const responses = grpcStream(lean(broker), sendMessage, open, {
          signal: abort.signal,
          ...AS_APPLICATION,
        });
        const first = await responses.next();
        assert.equal(first.done, false);
        abort.abort();
        await assert.rejects(
          responses.next(),
          (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled,
        );
        open.end();
      }
      // A path the broker does not serve: answered by its plain HTTP endpoints, not in gRPC.
      const unknown = { ...sendMessage, name: "NoSuchMethod" };
      const notServed = await outcome(
        grpcStream(lean(fast), unknown, each([request("lean-f")]), { signal: new AbortController().signal }),
      );
      assert.match(notServed[0] ?? "", /^Unimplemented: HTTP 404/);
      const nowhere = new Http2SessionManager(`http://127.0.0.1:${await freePort()}`);
      managers.push(nowhere);
      const unreachable = await outcome(
        grpcStream(nowhere, sendMessage, each([request("lean-e")]), { signal: new AbortController().signal }),
      );
      assert.match(unreachable[0] ?? "", /^Unavailable: /);
    } finally {
      for (const manager of managers) manager.abort();
    }
  });
});

function logEnd(broker: Broker): number {
  const p = broker.partitions.all().find((q) => q.topic === "t");
  assert.ok(p);
  return p.log.logEndOffset;
}

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

function cat(...parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/** One raw gRPC call with the application's token (unless `extra` names another authorization). */
function rawCall(address: string, rpc: string, body: Uint8Array, extra: Record<string, string> = {}) {
  return rawGrpc(`http://${address}`, rpc, body, { authorization: `Bearer ${TOKEN}`, ...extra });
}
