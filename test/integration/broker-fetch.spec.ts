import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { toBinary } from "@bufbuild/protobuf";
import {
  Acks,
  BrokerService,
  FetchResponseSchema,
  ProduceError,
  type FetchRequest,
  type FetchResponse,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";

type FetchInit = Partial<Omit<FetchRequest, "$typeName">>;

/** Reads FetchMessages batches until the stream ends (it needs a `limit`) or the deadline passes. */
async function fetchAll(
  client: Client<typeof BrokerService>,
  req: FetchInit,
  timeoutMs = 10_000,
): Promise<FetchResponse[]> {
  const out: FetchResponse[] = [];
  for await (const batch of client.fetchMessages(req, { timeoutMs })) out.push(batch);
  return out;
}

const codeOf = (err: unknown) => (err instanceof ConnectError ? err.code : undefined);

/** One sentinel and two brokers: FetchMessages batching, limits, long-poll, groups, errors; unary Produce. */
describe("broker: FetchMessages (batched consume) and unary Produce", () => {
  let cluster: TestCluster;
  let leaderId: string;
  let followerId: string;
  const leader = () => cluster.broker(leaderId).client;

  before(async () => {
    cluster = await startCluster({ brokers: 2 });
    const layout = await cluster.createTopic("events", { partitions: 1, replicas: 2 });
    const p0 = layout.partitions[0];
    assert.ok(p0);
    leaderId = p0.leader;
    followerId = p0.replicas.find((id) => id !== leaderId) as string;
    // 100 records of 1,000 bytes (acks=all: all of them below the high watermark once acknowledged).
    const records = Array.from({ length: 100 }, (_, i) => ({
      messageId: BigInt(i + 1),
      key: text(`k${i}`),
      payload: text(String(i).padEnd(1000, ".")),
      headers: [{ key: "h", value: text(`v${i}`) }],
    }));
    const res = await sendOnce(leader(), {
      topic: "events",
      partition: 0,
      producerId: "fetch-spec",
      acks: Acks.ALL,
      records,
    });
    assert.equal(res.acks.length, 100);
    assert.ok(res.acks.every((a) => a.error === 0));
  });
  after(async () => {
    await cluster?.stop();
  });

  it("returns consecutive records in batches bounded by max_messages, and ends after `limit`", async () => {
    const batches = await fetchAll(leader(), {
      topic: "events",
      partition: 0,
      offset: 0n,
      maxMessages: 30,
      limit: 100n,
    });
    assert.deepEqual(
      batches.map((b) => b.messages.length),
      [30, 30, 30, 10],
    );
    const all = batches.flatMap((b) => b.messages);
    assert.deepEqual(
      all.map((m) => Number(m.offset)),
      Array.from({ length: 100 }, (_, i) => i),
    );
    const m7 = all[7];
    assert.ok(m7);
    assert.equal(untext(m7.payload), "7".padEnd(1000, "."));
    assert.equal(untext(m7.key), "k7");
    assert.deepEqual(
      m7.headers.map((h) => [h.key, untext(h.value)]),
      [["h", "v7"]],
    );
    assert.deepEqual([m7.producerId, m7.messageId], ["fetch-spec", 8n]);
    assert.ok(m7.timestamp > 0n);
    for (const b of batches) {
      assert.deepEqual([b.topic, b.partition, b.highWatermark, b.logStartOffset], ["events", 0, 100n, 0n]);
      // Per-record topic/partition/hw are the batch's, left unset on the wire.
      assert.ok(b.messages.every((m) => m.topic === "" && m.highWatermark === 0n));
    }
  });

  it("bounds a batch by max_bytes, but always returns at least one record", async () => {
    const batches = await fetchAll(leader(), {
      topic: "events",
      partition: 0,
      offset: 10n,
      maxBytes: 3_500,
      limit: 10n,
    });
    assert.ok(batches.length >= 3, `${batches.length} batches for 10 × ~1.1 KB frames under 3,500 bytes`);
    assert.ok(batches.every((b) => b.messages.length >= 1 && b.messages.length <= 3));
    assert.equal(Number(batches[0]?.messages[0]?.offset), 10);
    assert.equal(
      batches.reduce((n, b) => n + b.messages.length, 0),
      10,
    );
    const tiny = await fetchAll(leader(), {
      topic: "events",
      partition: 0,
      offset: 0n,
      maxBytes: 1,
      limit: 2n,
    });
    assert.deepEqual(
      tiny.map((b) => b.messages.length),
      [1, 1],
    );
  });

  it("long-polls at the end and is woken by new records", async () => {
    const waiting = fetchAll(leader(), { topic: "events", partition: 0, offset: 100n, limit: 2n }, 20_000);
    let settled = false;
    void waiting.finally(() => (settled = true));
    // Nothing to read: still waiting after a while means it blocks (a negative check, bounded).
    await sleep(300);
    assert.equal(settled, false, "the fetch at the end waits for data");
    const started = Date.now();
    await sendOnce(leader(), {
      topic: "events",
      partition: 0,
      acks: Acks.ALL,
      records: [
        { messageId: 1n, payload: text("late-1") },
        { messageId: 2n, payload: text("late-2") },
      ],
    });
    const batches = await waiting;
    assert.ok(Date.now() - started < 5_000, "woken by the append");
    assert.deepEqual(
      batches.flatMap((b) => b.messages.map((m) => untext(m.payload))),
      ["late-1", "late-2"],
    );
  });

  it("offset -1 resumes from the group's committed offset; GetCommittedOffset reports the log range", async () => {
    const group = { topic: "events", partition: 0, consumerGroup: "fetchers" };
    const before = await leader().getCommittedOffset(group);
    assert.equal(before.offset, -1n);
    assert.equal(before.logStartOffset, 0n);
    assert.ok(before.highWatermark >= 100n, `high watermark ${before.highWatermark}`);
    const fromStart = await fetchAll(leader(), { ...group, offset: -1n, limit: 1n });
    assert.equal(fromStart[0]?.messages[0]?.offset, 0n);
    await leader().commitOffset({ ...group, offset: 42n });
    assert.equal((await leader().getCommittedOffset(group)).offset, 42n);
    const resumed = await fetchAll(leader(), { ...group, offset: -1n, limit: 1n });
    assert.equal(resumed[0]?.messages[0]?.offset, 42n);
  });

  it("answers bad requests with Connect codes like PullMessage", async () => {
    const cases: Array<[FetchInit, Code, string]> = [
      [{ topic: "", partition: 0, offset: 0n }, Code.InvalidArgument, "empty topic"],
      [{ topic: "events", partition: 0, offset: -2n }, Code.InvalidArgument, "offset below -1"],
      [{ topic: "events", partition: 0, offset: -1n }, Code.InvalidArgument, "-1 without a group"],
      [{ topic: "events", partition: 7, offset: 0n }, Code.NotFound, "unknown partition"],
      [{ topic: "nope", partition: 0, offset: 0n }, Code.NotFound, "unknown topic"],
      [{ topic: "events", partition: 0, offset: 1_000_000n }, Code.OutOfRange, "past the end"],
    ];
    for (const [req, code, what] of cases) {
      await assert.rejects(
        fetchAll(leader(), { ...req, limit: 1n }, 5_000),
        (err: unknown) => codeOf(err) === code,
        what,
      );
    }
    await assert.rejects(
      fetchAll(leader(), { topic: "events", partition: 0, offset: 1_000_000n, limit: 1n }),
      (err: unknown) => err instanceof ConnectError && /outside the log \[0, \d+\)/.test(err.rawMessage),
      "the OutOfRange message names the log range",
    );
    await assert.rejects(
      fetchAll(cluster.broker(followerId).client, { topic: "events", partition: 0, offset: 0n, limit: 1n }),
      (err: unknown) => codeOf(err) === Code.Unavailable,
      "a follower does not serve reads",
    );
  });

  it("every protocol reads the same batches, pre-encoded or serialized by protobuf-es", async () => {
    const baseUrl = `http://${cluster.brokerAddress(leaderId)}`;
    const req = { topic: "events", partition: 0, offset: 0n, maxMessages: 40, limit: 100n };
    // The SDK's transport (gRPC, no compression offered): the broker encodes batches from stored records.
    const reference = (await fetchAll(leader(), req)).map((b) => toBinary(FetchResponseSchema, b));
    assert.equal(reference.length, 3);
    const transports = {
      "Connect binary over HTTP/1.1": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      "Connect JSON over HTTP/1.1": createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        useBinaryFormat: false,
      }),
      "gRPC-web binary": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
      // Offers gzip (connect-node's default): protobuf-es's serialization, compressed as before.
      "gRPC offering gzip": createGrpcTransport({ baseUrl, acceptCompression: [compressionGzip] }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const batches = await fetchAll(createClient(BrokerService, transport), req);
      assert.deepEqual(
        batches.map((b) => toBinary(FetchResponseSchema, b)),
        reference,
        name,
      );
    }
  });

  it("unary Produce (Connect over HTTP/1.1, as browsers call it) has SendMessage's semantics", async () => {
    const http1 = createClient(
      BrokerService,
      createConnectTransport({ baseUrl: `http://${cluster.brokerAddress(leaderId)}`, httpVersion: "1.1" }),
    );
    const request = {
      topic: "events",
      partition: 0,
      producerId: "unary-spec",
      acks: Acks.ALL,
      records: [
        { messageId: 1n, payload: text("u1") },
        { messageId: 2n, payload: text("u2") },
      ],
    };
    const first = await http1.produce(request);
    assert.deepEqual(
      first.acks.map((a) => [a.messageId, a.error, a.duplicate]),
      [
        [1n, ProduceError.NONE, false],
        [2n, ProduceError.NONE, false],
      ],
    );
    const offsets = first.acks.map((a) => a.offset);
    assert.equal(offsets[1], (offsets[0] ?? 0n) + 1n);
    const retry = await http1.produce(request);
    assert.deepEqual(
      retry.acks.map((a) => [a.offset, a.duplicate]),
      offsets.map((o) => [o, true]),
      "a retry is answered from the producer table, not appended again",
    );
    const read = await fetchAll(leader(), { topic: "events", partition: 0, offset: offsets[0], limit: 2n });
    assert.deepEqual(
      read.flatMap((b) => b.messages.map((m) => untext(m.payload))),
      ["u1", "u2"],
    );
    const wrongPartition = await http1.produce({ ...request, partition: 9 });
    assert.ok(wrongPartition.acks.every((a) => a.error === ProduceError.UNKNOWN_PARTITION));
    await assert.rejects(
      http1.produce({ ...request, topic: "" }),
      (err: unknown) => codeOf(err) === Code.InvalidArgument,
      "a malformed request fails the call",
    );
    await assert.rejects(
      http1.produce({ ...request, records: [] }),
      (err: unknown) => codeOf(err) === Code.InvalidArgument,
    );
  });
});
