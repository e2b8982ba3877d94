import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { STREAM_USER_AGENT } from "../../src/client/grpc-stream-client.js";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import {
  Consumer,
  Producer,
  createNodeTransport,
  type ClientTransport,
  type ConsumedMessage,
} from "../../src/index.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessBroker, type InProcessBroker } from "../helpers/in-process-broker.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";

/** One call as the broker saw it. */
interface SeenCall {
  method: string;
  userAgent: string;
  /** The header that names a queue of pre-encoded requests: it must never leave the client. */
  encodedHeader: boolean;
}

const RECORDS = 300;

/**
 * The SDK's broker streams (SendBatches, FetchMessages) go through its lean stream client
 * (src/client/grpc-stream-client.ts) unless `leanBrokerStreams: false`: the same records produced and
 * consumed either way, the pre-encoded produce requests sent as they are, streams with a deadline left
 * to Connect, and the same errors.
 */
describe("client SDK: broker streams through the lean stream client", () => {
  let etcd: TestEtcd;
  let sentinel: InProcessSentinel;
  let node: InProcessBroker;
  const transports: ClientTransport[] = [];
  const calls: SeenCall[] = [];
  /** FetchMessages handlers still answering. */
  let openFetches = 0;
  const record: Interceptor = (next) => async (req) => {
    calls.push({
      method: req.method.name,
      userAgent: req.header.get("user-agent") ?? "",
      encodedHeader: req.header.has("goulette-encoded-requests"),
    });
    const res = await next(req);
    if (!res.stream || req.method.name !== "FetchMessages") return res;
    openFetches++;
    return { ...res, message: untilEnd(res.message, () => openFetches--) };
  };

  before(async () => {
    etcd = await startEtcd();
    sentinel = await startInProcessSentinel(etcd, "lean-s1", { etcdPrefix: "/lean-streams" });
    await waitFor(() => sentinel.sentinel.plane.isLeader, { what: "the sentinel to lead" });
    node = await startInProcessBroker(sentinel.sentinel.url, "lean-b1", { interceptors: [record] });
  });
  after(async () => {
    for (const transport of transports) transport.close();
    await node?.stop();
    await sentinel?.stop();
    await etcd?.stop();
  });

  /** The SDK's default transport, or one with the lean stream client turned off. */
  const transport = (lean: boolean): ClientTransport => {
    const created = createNodeTransport(lean ? {} : { leanBrokerStreams: false });
    transports.push(created);
    return created;
  };

  /** Produces RECORDS keyed records to `topic` (2 partitions) and consumes them back from the start. */
  const roundTrip = async (topic: string, through: ClientTransport) => {
    const sentinels = [sentinel.sentinel.url];
    const producer = new Producer({
      sentinels,
      topic,
      transport: through,
      createTopic: { partitions: 2, replicas: 1 },
    });
    const sent = await Promise.all(
      Array.from({ length: RECORDS }, (_, i) => producer.send({ key: `k${i % 7}`, value: `${topic}-${i}` })),
    );
    await producer.close();
    const consumer = new Consumer({ sentinels, topic, from: "earliest", transport: through });
    const received: ConsumedMessage[] = [];
    try {
      while (received.length < RECORDS) {
        const batch = await consumer.receiveBatch({ timeoutMs: 20_000 });
        assert.ok(batch.length > 0, `${received.length} of ${RECORDS} records received before the deadline`);
        received.push(...batch);
      }
    } finally {
      await consumer.close();
    }
    return { sent, received };
  };

  it("produces and consumes the same records through either client; only the lean one is chosen by default", async () => {
    for (const lean of [true, false]) {
      const topic = lean ? "lean-on" : "lean-off";
      const first = calls.length;
      const { sent, received } = await roundTrip(topic, transport(lean));
      assert.equal(received.length, RECORDS);
      // Every record where its ack put it, with its value: the pre-encoded requests arrived whole.
      const stored = new Map(received.map((m) => [`${m.partition}:${m.offset}`, m.text()]));
      sent.forEach((ack, i) => assert.equal(stored.get(`${ack.partition}:${ack.offset}`), `${topic}-${i}`));
      const streams = calls.slice(first).filter((c) => ["SendBatches", "FetchMessages"].includes(c.method));
      assert.deepEqual(
        [...new Set(streams.map((c) => c.method))].sort(),
        ["FetchMessages", "SendBatches"],
        "both streams were opened",
      );
      for (const call of streams) {
        if (lean) assert.equal(call.userAgent, STREAM_USER_AGENT, `${call.method} through the lean client`);
        else assert.notEqual(call.userAgent, STREAM_USER_AGENT, `${call.method} through Connect's client`);
        assert.equal(call.encodedHeader, false, "the encoded-requests header stays in the client");
      }
    }
  });

  it("leaves streams with a deadline to Connect, and fails alike on a bad request", async () => {
    const fetchFrom = (through: ClientTransport, topic: string, timeoutMs?: number) =>
      (async () => {
        const client = createClient(BrokerService, through.broker(node.broker.address));
        for await (const res of client.fetchMessages({ topic, partition: 0, offset: 0n }, { timeoutMs })) {
          void res;
        }
      })().then(
        () => assert.fail("the fetch was expected to fail"),
        (err: unknown) => {
          assert.ok(err instanceof ConnectError, String(err));
          return `${Code[err.code]}: ${err.rawMessage}`;
        },
      );
    const lean = transport(true);
    const before = calls.length;
    // Past the deadline while long-polling an empty partition: Connect's client enforces it.
    assert.match(await fetchFrom(lean, "lean-on", 300), /^DeadlineExceeded: /);
    assert.notEqual(calls[before]?.userAgent, STREAM_USER_AGENT, "a stream with a deadline goes to Connect");
    // A topic name the broker refuses: the same status and message from both clients.
    const refused = await fetchFrom(lean, "no spaces allowed");
    assert.match(refused, /^InvalidArgument: /);
    assert.equal(refused, await fetchFrom(transport(false), "no spaces allowed"));
    assert.equal(calls.at(-2)?.userAgent, STREAM_USER_AGENT, "the lean client sent the first");
  });

  it("a lean stream cancelled by the caller ends on the broker too", async () => {
    const client = createClient(BrokerService, transport(true).broker(node.broker.address));
    const partition = node.broker.partitions.all().find((p) => p.topic === "lean-on" && p.partition === 0);
    assert.ok(partition);
    const abort = new AbortController();
    const poll = (async () => {
      // At the log end: the stream waits for records that never come, until cancelled.
      for await (const res of client.fetchMessages(
        { topic: "lean-on", partition: 0, offset: BigInt(partition.log.logEndOffset) },
        { signal: abort.signal },
      )) {
        assert.fail(`unexpected response with ${res.messages.length} records`);
      }
    })();
    await waitFor(() => openFetches === 1, { what: "the long poll to reach the broker" });
    abort.abort();
    await assert.rejects(poll, (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled);
    await waitFor(() => openFetches === 0, { what: "the broker to end the cancelled stream" });
  });
});

/** `messages`, calling `onEnd` once when the stream ends in any way. */
async function* untilEnd<T>(messages: AsyncIterable<T>, onEnd: () => void): AsyncGenerator<T> {
  try {
    yield* messages;
  } finally {
    onEnd();
  }
}
