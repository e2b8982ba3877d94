import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BrokerService,
  MessageAckSchema,
  MessageSchema,
  ProduceError,
  type CommitOffsetRequest,
  type MessageAck,
  type MessageRequest,
  type FetchRequest,
  type FetchResponse,
  type MessageResponse,
  type PullRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { SentinelService, type GetBrokersRequest } from "../../src/gen/goulette/v1/sentinel_pb.js";
import {
  AbortedError,
  ClientClosedError,
  Consumer,
  DeliveryTimeoutError,
  MessageRejectedError,
  NoSentinelReachableError,
  Producer,
  createNodeTransport,
  type ClientEvent,
  type ClientTransport,
  type ConsumedMessage,
} from "../../src/index.js";
import { serveConnect, type ConnectTestServer } from "../helpers/connect-server.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The SDK's failure handling against in-process fake sentinels and brokers that fail on cue: what a
 * real cluster cannot be made to do on demand (refuse one request, cut a stream after N messages).
 */

type Server = ConnectTestServer;

interface StoredRecord {
  producerId: string;
  messageId: bigint;
  payload: Uint8Array;
}

/** What the fake broker does with a produce request: nothing special, or fail it. */
type ProduceHook = (req: MessageRequest, index: number) => "append" | "append-then-fail" | "fail" | undefined;

/** One partition (0) of one topic, with idempotent appends, long-polling fetches and offsets. */
class FakeBroker {
  readonly produceRequests: MessageRequest[] = [];
  /** Every FetchMessages (or PullMessage) stream opened, in order. */
  readonly pulls: Array<PullRequest | FetchRequest> = [];
  readonly commits: CommitOffsetRequest[] = [];
  readonly committed = new Map<string, number>();
  produceHook: ProduceHook = () => undefined;
  /** Per record: an error instead of an append (MESSAGE_TOO_LARGE...). */
  recordHook: (payload: string) => ProduceError | undefined = () => undefined;
  /** Cut the n-th pull stream (0-based) after this many messages. */
  cutPull = new Map<number, number>();
  /** Endless pulls: yields big messages for ever, counting them. */
  endless = false;
  yielded = 0;
  #waiters: Array<() => void> = [];
  server!: Server;

  /** `log` may be shared with another fake: a replica that takes over with the same records. */
  constructor(readonly log: StoredRecord[] = []) {}

  async start(): Promise<this> {
    this.server = await serveConnect((router) => router.service(BrokerService, this.#service()));
    return this;
  }

  append(payload: string): void {
    this.log.push({ producerId: "", messageId: 0n, payload: new TextEncoder().encode(payload) });
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #produce(req: MessageRequest): MessageResponse {
    const index = this.produceRequests.push(req) - 1;
    const hook = this.produceHook(req, index);
    const acks: MessageAck[] = req.records.map((record) => {
      if (hook === "fail") {
        return create(MessageAckSchema, {
          messageId: record.messageId,
          offset: -1n,
          error: ProduceError.NOT_LEADER,
          errorMessage: "not the leader right now",
        });
      }
      const refused = this.recordHook(new TextDecoder().decode(record.payload));
      if (refused !== undefined) {
        return create(MessageAckSchema, {
          messageId: record.messageId,
          offset: -1n,
          error: refused,
          errorMessage: "refused",
        });
      }
      const known = this.log.findIndex(
        (r) => r.producerId === req.producerId && r.messageId === record.messageId,
      );
      if (known !== -1)
        return create(MessageAckSchema, {
          messageId: record.messageId,
          offset: BigInt(known),
          duplicate: true,
        });
      const offset =
        this.log.push({ producerId: req.producerId, messageId: record.messageId, payload: record.payload }) -
        1;
      return create(MessageAckSchema, { messageId: record.messageId, offset: BigInt(offset) });
    });
    for (const wake of this.#waiters.splice(0)) wake();
    if (hook === "append-then-fail") {
      for (const ack of acks) {
        ack.error = ProduceError.NOT_ENOUGH_REPLICAS;
        ack.offset = -1n;
      }
    }
    return { $typeName: "goulette.v1.MessageResponse", topic: req.topic, partition: req.partition, acks };
  }

  #service() {
    return {
      sendMessage: (requests: AsyncIterable<MessageRequest>) => this.#sendMessage(requests),
      pullMessage: (req: PullRequest, ctx: { signal: AbortSignal }) => this.#pull(req, ctx.signal),
      fetchMessages: (req: FetchRequest, ctx: { signal: AbortSignal }) => this.#fetch(req, ctx.signal),
      commitOffset: (req: CommitOffsetRequest) => {
        this.commits.push(req);
        this.committed.set(req.consumerGroup, Number(req.offset));
        return {};
      },
      getCommittedOffset: (req: { consumerGroup: string }) => ({
        offset: BigInt(this.committed.get(req.consumerGroup) ?? -1),
        logStartOffset: 0n,
        highWatermark: BigInt(this.log.length),
      }),
    };
  }

  async *#sendMessage(requests: AsyncIterable<MessageRequest>) {
    for await (const req of requests) yield this.#produce(req);
  }

  /** FetchMessages: the pull below, each record as a batch of one (cuts land between records). */
  async *#fetch(req: FetchRequest, signal: AbortSignal): AsyncGenerator<FetchResponse> {
    for await (const m of this.#pull(req, signal)) {
      yield {
        $typeName: "goulette.v1.FetchResponse",
        topic: req.topic,
        partition: req.partition,
        messages: [{ ...m, topic: "", partition: 0, highWatermark: 0n }],
        highWatermark: m.highWatermark,
        logStartOffset: 0n,
      };
    }
  }

  async *#pull(req: PullRequest | FetchRequest, signal: AbortSignal) {
    const stream = this.pulls.push(req) - 1;
    if (this.endless) {
      for (;;) {
        this.yielded++;
        yield create(MessageSchema, {
          topic: req.topic,
          offset: BigInt(this.yielded - 1),
          payload: new Uint8Array(64 * 1024),
        });
      }
    }
    let offset = Number(req.offset);
    if (offset === -1) offset = this.committed.get(req.consumerGroup) ?? 0;
    if (offset > this.log.length) {
      throw new ConnectError(`offset ${offset} is outside the log [0, ${this.log.length})`, Code.OutOfRange);
    }
    let sent = 0;
    while (!signal.aborted) {
      if (offset >= this.log.length) {
        await new Promise<void>((resolve) => {
          this.#waiters.push(resolve);
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        continue;
      }
      const cut = this.cutPull.get(stream);
      if (cut !== undefined && sent >= cut)
        throw new ConnectError("leadership changed; pull again", Code.Unavailable);
      const record = this.log[offset] as StoredRecord;
      yield create(MessageSchema, {
        topic: req.topic,
        partition: req.partition,
        offset: BigInt(offset),
        payload: record.payload,
        producerId: record.producerId,
        messageId: record.messageId,
        highWatermark: BigInt(this.log.length),
      });
      offset++;
      sent++;
    }
  }
}

/** A sentinel that places partition 0 of every topic on one leader (changeable). */
class FakeSentinel {
  readonly requests: GetBrokersRequest[] = [];
  leader = { id: "b1", address: "" };
  /** Runs before each GetBrokers answer (move the leader...). */
  onGetBrokers: () => void = () => undefined;
  version = 1n;
  server!: Server;

  async start(): Promise<this> {
    this.server = await serveConnect((router) =>
      router.service(SentinelService, {
        getBrokers: (req) => {
          this.requests.push(req);
          this.onGetBrokers();
          return {
            brokers: [
              { brokerId: this.leader.id, address: this.leader.address, status: BrokerStatus.HEALTHY },
            ],
            partitions: [{ partition: 0, leader: this.leader.id, replicas: [this.leader.id], epoch: 1n }],
            version: this.version,
          };
        },
        getClusterStatus: () => ({
          brokers: [{ brokerId: this.leader.id, address: this.leader.address, status: BrokerStatus.HEALTHY }],
        }),
      }),
    );
    return this;
  }
}

const text = (values: StoredRecord[]) => values.map((r) => new TextDecoder().decode(r.payload));

describe("client SDK: failure handling (fake sentinel and broker)", () => {
  const closers: Array<() => Promise<void>> = [];
  const transports: ClientTransport[] = [];
  after(async () => {
    for (const t of transports) t.close();
    for (const close of closers.reverse()) await close();
  });

  async function fakes(): Promise<{
    broker: FakeBroker;
    sentinel: FakeSentinel;
    transport: ClientTransport;
  }> {
    const broker = await new FakeBroker().start();
    const sentinel = await new FakeSentinel().start();
    sentinel.leader.address = broker.server.address;
    closers.push(
      () => broker.server.close(),
      () => sentinel.server.close(),
    );
    const transport = createNodeTransport();
    transports.push(transport);
    return { broker, sentinel, transport };
  }

  it("moves past a dead sentinel URL to the next one and says so", async () => {
    const { broker, sentinel, transport } = await fakes();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const events: ClientEvent[] = [];
    const producer = new Producer({
      sentinels: [dead, sentinel.server.url],
      topic: "t",
      transport,
      onEvent: (e) => events.push(e),
    });
    const ack = await producer.send({ value: "one" });
    await producer.close();
    assert.deepEqual([ack.partition, ack.offset], [0, 0]);
    assert.equal(producer.stats().sentinelFailovers, 1);
    const moved = events.find((e) => e.type === "sentinel-failover");
    assert.ok(moved && moved.type === "sentinel-failover");
    assert.deepEqual([moved.from, moved.to], [dead, sentinel.server.url]);
    assert.deepEqual(text(broker.log), ["one"]);

    const stranded = new Producer({ sentinels: [dead], topic: "t", transport, deliveryTimeoutMs: 1_000 });
    const failure = await stranded.send({ value: "lost" }).then(
      () => assert.fail("no sentinel answers: the send cannot succeed"),
      (err: unknown) => err,
    );
    assert.ok(failure instanceof DeliveryTimeoutError, String(failure));
    assert.ok(failure.cause instanceof NoSentinelReachableError || failure.cause === undefined);
    await stranded.close();
  });

  it("retries with the same producer id and message ids, so a stored message is not stored twice", async () => {
    const { broker, sentinel, transport } = await fakes();
    // The first request is stored but answered as failed (like an acks=all timeout).
    broker.produceHook = (_req, index) => (index === 0 ? "append-then-fail" : undefined);
    const producer = new Producer({ sentinels: [sentinel.server.url], topic: "t", transport, lingerMs: 20 });
    const acks = await Promise.all(["a", "b", "c"].map((value) => producer.send({ value })));
    await producer.close();
    assert.deepEqual(text(broker.log), ["a", "b", "c"], "stored once each, in order");
    assert.deepEqual(
      acks.map((a) => [a.offset, a.duplicate]),
      [
        [0, true],
        [1, true],
        [2, true],
      ],
    );
    const [first, retry] = broker.produceRequests;
    assert.ok(first && retry);
    assert.equal(retry.producerId, first.producerId);
    assert.deepEqual(
      retry.records.map((r) => r.messageId),
      first.records.map((r) => r.messageId),
    );
    assert.equal(producer.stats().retried, 3);
  });

  it("after a failure, resends the failed requests in message id order before anything newer", async () => {
    const { broker, sentinel, transport } = await fakes();
    // b2 replicates b1's log. From request 2 on, b1 no longer leads; the sentinel then names b2.
    const b2 = await new FakeBroker(broker.log).start();
    closers.push(() => b2.server.close());
    broker.produceHook = (_req, index) => (index >= 2 ? "fail" : undefined);
    sentinel.onGetBrokers = () => {
      if (broker.produceRequests.length > 2) sentinel.leader = { id: "b2", address: b2.server.address };
    };
    const producer = new Producer({
      sentinels: [sentinel.server.url],
      topic: "t",
      transport,
      lingerMs: 0,
      maxBatchMessages: 10,
      retryBackoffMs: 5,
    });
    const values = Array.from({ length: 200 }, (_, i) => `m${i}`);
    const acks = await Promise.all(values.map((value) => producer.send({ value })));
    await producer.close();
    assert.ok(
      broker.produceRequests.length > 3,
      "several requests were in flight to b1 when it stopped leading",
    );
    assert.deepEqual(text(broker.log), values, "the log holds every message once, in send order");
    assert.deepEqual(
      acks.map((a) => a.offset),
      values.map((_, i) => i),
    );
    // b2's first request is the oldest failed one.
    assert.equal(b2.produceRequests[0]?.records[0]?.messageId, 21n);
    assert.ok(producer.stats().retried > 0);
  });

  it("fails only the message the broker refuses", async () => {
    const { broker, sentinel, transport } = await fakes();
    broker.recordHook = (payload) => (payload === "huge" ? ProduceError.MESSAGE_TOO_LARGE : undefined);
    const producer = new Producer({ sentinels: [sentinel.server.url], topic: "t", transport });
    const results = await Promise.allSettled(["ok1", "huge", "ok2"].map((value) => producer.send({ value })));
    await producer.close();
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    const refused = (results[1] as PromiseRejectedResult).reason as unknown;
    assert.ok(refused instanceof MessageRejectedError);
    assert.equal(refused.reason, "message-too-large");
    assert.deepEqual(text(broker.log), ["ok1", "ok2"]);
  });

  it("AbortSignal withdraws an unsent message; close() flushes what lingers; a closed producer refuses", async () => {
    const { broker, sentinel, transport } = await fakes();
    const producer = new Producer({
      sentinels: [sentinel.server.url],
      topic: "t",
      transport,
      lingerMs: 60_000,
    });
    const abort = new AbortController();
    const withdrawn = producer.send({ value: "withdrawn" }, { signal: abort.signal });
    const kept = [producer.send({ value: "kept1" }), producer.send({ value: "kept2" })];
    abort.abort(new Error("changed my mind"));
    await assert.rejects(withdrawn, AbortedError);
    await producer.close(); // lingerMs is 60 s: only the flush sends them
    assert.deepEqual(
      (await Promise.all(kept)).map((a) => a.offset),
      [0, 1],
    );
    assert.deepEqual(text(broker.log), ["kept1", "kept2"]);
    await assert.rejects(producer.send({ value: "late" }), ClientClosedError);
  });

  it("reports an unreachable leader in GetBrokers; with nowhere else to go the message times out", async () => {
    const { sentinel, transport } = await fakes();
    sentinel.leader.address = `127.0.0.1:${await freePort()}`;
    const events: ClientEvent[] = [];
    const producer = new Producer({
      sentinels: [sentinel.server.url],
      topic: "t",
      transport,
      deliveryTimeoutMs: 1_500,
      onEvent: (e) => events.push(e),
    });
    await assert.rejects(producer.send({ value: "x" }), DeliveryTimeoutError);
    await producer.close();
    assert.ok(
      sentinel.requests.some((r) => r.unreachableBrokers.includes("b1")),
      "GetBrokers named b1 unreachable",
    );
    assert.ok(events.some((e) => e.type === "broker-unreachable" && e.brokerId === "b1"));
    assert.deepEqual(producer.stats().unreachableBrokers.slice(0, 1), ["b1"]);
  });

  it("back-pressure: a consumer whose application does not read stops reading the stream", async () => {
    const { broker, sentinel, transport } = await fakes();
    broker.endless = true;
    const consumer = new Consumer({
      sentinels: [sentinel.server.url],
      topic: "t",
      group: "g",
      from: "earliest",
      transport,
      maxBufferedMessages: 10,
    });
    await consumer.start();
    await waitFor(() => consumer.stats().buffered === 10, { what: "a full buffer" });
    // The consumer took at most one message past its buffer off the stream...
    assert.ok(
      (consumer.stats().positions["t/0"] ?? 0) <= 11,
      `received ${consumer.stats().positions["t/0"]}`,
    );
    // ...so the endless stream stalls: what the broker manages to push fills the HTTP/2 and socket
    // buffers and then stops (an unbounded reader would take thousands of messages a second).
    let last = -1;
    const plateau = await waitFor(
      () => {
        const now = broker.yielded;
        const stable = now === last;
        last = now;
        return stable ? now : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "the stream to stall" },
    );
    assert.ok(plateau < 1_000, `the broker pushed ${plateau} messages of 64 KiB before stalling`);
    assert.ok((consumer.stats().positions["t/0"] ?? 0) <= 11);
    // Reading again drains what the transport holds (up to its 16 MiB receive window, ~256 of these
    // messages), then the broker pushes again.
    for (let i = 0; i < 1_000 && broker.yielded <= plateau; i++) {
      assert.ok(await consumer.receive({ timeoutMs: 5_000 }));
    }
    assert.ok(broker.yielded > plateau, "reading again resumes the stream");
    await consumer.close();
  });

  it("a broken pull stream resumes at the next offset; manual commits name what was processed", async () => {
    const { broker, sentinel, transport } = await fakes();
    for (let i = 0; i < 50; i++) broker.append(`v${i}`);
    broker.cutPull.set(0, 20);
    const consumer = new Consumer({
      sentinels: [sentinel.server.url],
      topic: "t",
      group: "g",
      from: "earliest",
      autoCommit: false,
      transport,
    });
    const got: ConsumedMessage[] = [];
    while (got.length < 50) {
      const m = await consumer.receive({ timeoutMs: 5_000 });
      assert.ok(m, `received ${got.length} of 50`);
      got.push(m);
    }
    assert.deepEqual(
      got.map((m) => m.offset),
      Array.from({ length: 50 }, (_, i) => i),
      "each offset once, in order",
    );
    assert.equal(broker.pulls.length, 2);
    assert.equal(Number(broker.pulls[1]?.offset), 20, "the second stream starts where the first broke");
    assert.equal(broker.commits.length, 0, "no commit before commit() (autoCommit off)");
    await consumer.commit(got[29]);
    assert.deepEqual(
      broker.commits.map((c) => Number(c.offset)),
      [30],
    );
    await consumer.commit();
    assert.deepEqual(
      broker.commits.map((c) => Number(c.offset)),
      [30, 50],
    );
    await consumer.close();
  });

  it("a new group starting at the latest offset skips the backlog and commits where it started", async () => {
    const { broker, sentinel, transport } = await fakes();
    for (let i = 0; i < 5; i++) broker.append(`old${i}`);
    const consumer = new Consumer({ sentinels: [sentinel.server.url], topic: "t", group: "late", transport });
    await consumer.start();
    await waitFor(() => broker.pulls.some((p) => Number(p.offset) === 5), { what: "a pull from the end" });
    broker.append("new");
    const m = await consumer.receive({ timeoutMs: 5_000 });
    assert.deepEqual([m?.offset, m?.text()], [5, "new"]);
    await consumer.close(); // "new" is not processed yet (no next receive): the start (5) is committed
    assert.deepEqual(
      broker.commits.map((c) => [c.consumerGroup, Number(c.offset)]),
      [["late", 5]],
    );
  });
});
