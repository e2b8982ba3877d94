import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  BrokerService,
  MessageAckSchema,
  ProduceError,
  type BatchesRequest,
  type BatchesResponse,
  type MessageResponse,
  type PartitionBatch,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { Producer, createNodeTransport, type ClientTransport } from "../../src/index.js";
import { serveConnect, type ConnectTestServer } from "../helpers/connect-server.js";

/**
 * The producer's side of SendBatches answered per batch, against an in-process fake broker that answers
 * a request's partitions at moments the test chooses (a real broker answers each as its replication
 * completes, which cannot be timed on demand): records are acknowledged by their own partition's
 * answer, and a stream that fails after part of a request retries only the unanswered part.
 */

const TOPIC = "orders";

/** What the fake does once a request's first partition (0) is answered: hold partition 1, or fail. */
type Plan = "hold" | "fail-stream";

class FakeBroker {
  readonly requests: BatchesRequest[] = [];
  plan: Plan = "hold";
  #release: () => void = () => undefined;
  #offsets = new Map<number, bigint>();
  server!: ConnectTestServer;

  async start(): Promise<this> {
    this.server = await serveConnect((router) =>
      router.service(BrokerService, {
        sendBatches: (requests) => this.#sendBatches(requests),
      }),
    );
    return this;
  }

  /** Lets a held partition 1 be answered. */
  release(): void {
    this.#release();
  }

  async *#sendBatches(requests: AsyncIterable<BatchesRequest>): AsyncGenerator<BatchesResponse> {
    for await (const req of requests) {
      this.requests.push(req);
      const first = req.batches.filter((b) => b.partition === 0);
      const rest = req.batches.filter((b) => b.partition !== 0);
      if (!req.answerPerBatch || first.length === 0 || rest.length === 0) {
        yield this.#answer(req, req.batches, false);
        continue;
      }
      yield this.#answer(req, first, true);
      if (this.plan === "fail-stream") {
        this.plan = "hold";
        throw new ConnectError("the broker went away", Code.Unavailable);
      }
      await new Promise<void>((resolve) => (this.#release = resolve));
      yield this.#answer(req, rest, false);
    }
  }

  #answer(req: BatchesRequest, batches: PartitionBatch[], more: boolean): BatchesResponse {
    return {
      $typeName: "goulette.v1.BatchesResponse",
      requestId: req.requestId,
      more,
      responses: batches.map((b): MessageResponse => {
        let next = this.#offsets.get(b.partition) ?? 0n;
        const acks = b.records.map((r) =>
          create(MessageAckSchema, { messageId: r.messageId, offset: next++, error: ProduceError.NONE }),
        );
        this.#offsets.set(b.partition, next);
        return { $typeName: "goulette.v1.MessageResponse", topic: b.topic, partition: b.partition, acks };
      }),
    };
  }
}

/** A sentinel placing both partitions of the topic on the fake broker. */
async function fakeSentinel(brokerAddress: string): Promise<ConnectTestServer> {
  const brokers = [{ brokerId: "b1", address: brokerAddress, status: BrokerStatus.HEALTHY }];
  return serveConnect((router) =>
    router.service(SentinelService, {
      getBrokers: () => ({
        brokers,
        partitions: [0, 1].map((partition) => ({ partition, leader: "b1", replicas: ["b1"], epoch: 1n })),
        version: 1n,
      }),
      getClusterStatus: () => ({ brokers }),
    }),
  );
}

// Without answers per batch the first test would wait forever for its first ack: fail instead.
describe("client SDK: produce requests answered per batch (fake broker)", { timeout: 20_000 }, () => {
  const closers: Array<() => Promise<void>> = [];
  const transports: ClientTransport[] = [];
  after(async () => {
    for (const t of transports) t.close();
    for (const close of closers.reverse()) await close();
  });

  async function setUp(): Promise<{ broker: FakeBroker; producer: Producer }> {
    const broker = await new FakeBroker().start();
    const sentinel = await fakeSentinel(broker.server.address);
    closers.push(
      () => broker.server.close(),
      () => sentinel.close(),
    );
    const transport = createNodeTransport();
    transports.push(transport);
    const producer = new Producer({
      sentinels: [sentinel.url],
      transport,
      lingerMs: 20,
      retryBackoffMs: 5,
    });
    return { broker, producer };
  }

  it("acknowledges each partition's records with its own answer, before the rest of the request", async () => {
    const { broker, producer } = await setUp();
    let heldAcked = false;
    const fast = producer.send({ topic: TOPIC, partition: 0, value: "fast" });
    const held = producer.send({ topic: TOPIC, partition: 1, value: "held" }).then((ack) => {
      heldAcked = true;
      return ack;
    });

    const fastAck = await fast;
    assert.deepEqual([fastAck.partition, fastAck.offset], [0, 0]);
    assert.equal(broker.requests.length, 1, "both records went in one request");
    assert.equal(broker.requests[0]?.answerPerBatch, true, "the producer asks for answers per batch");
    assert.equal(heldAcked, false, "partition 1 is not answered yet");
    assert.equal(producer.stats().inFlight, 1, "the answered record left the window, the held one did not");

    broker.release();
    const heldAck = await held;
    assert.deepEqual([heldAck.partition, heldAck.offset], [1, 0]);
    await producer.close();
    assert.equal(broker.requests.length, 1, "nothing was sent twice");
  });

  it("after a stream fails part-way through a request, retries only the partitions not answered", async () => {
    const { broker, producer } = await setUp();
    broker.plan = "fail-stream";
    // Partition 0 is answered, then the stream fails before partition 1's answer; the retry (a request
    // of partition 1 alone) is answered at once.
    const acks = await Promise.all([
      producer.send({ topic: TOPIC, partition: 0, value: "answered" }),
      producer.send({ topic: TOPIC, partition: 1, value: "retried" }),
    ]);
    await producer.close();

    assert.deepEqual(
      acks.map((a) => [a.partition, a.offset]),
      [
        [0, 0],
        [1, 0],
      ],
    );
    const [first, retry] = broker.requests;
    assert.deepEqual(
      first?.batches.map((b) => b.partition),
      [0, 1],
    );
    assert.deepEqual(
      retry?.batches.map((b) => [b.partition, b.records[0]?.messageId]),
      [[1, first?.batches[1]?.records[0]?.messageId]],
      "the retry carries partition 1's record again (same message id), not partition 0's",
    );
    assert.equal(producer.stats().retried, 1);
  });
});
