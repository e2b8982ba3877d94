/** Goulette as a data-plane benchmark target: BrokerService driven directly over gRPC (HTTP/2). */
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import {
  Acks,
  BrokerService,
  MessageRequestSchema,
  ProduceError,
  type MessageRequest,
} from "../src/gen/goulette/v1/broker_pb.js";
import { openEncodedRequests } from "../src/client/encoded-requests.js";
import { DEFAULT_PULL_BATCH_SIZE } from "../src/client/consumer-options.js";
import { createNodeTransport } from "../src/client/node.js";
import { encodeMessageEnvelope } from "../src/client/produce-encoding.js";
import { Pushable } from "../test/helpers/broker-process.js";
import {
  paced,
  readStamp,
  stampedPayload,
  type ConsumeResult,
  type ProduceResult,
  type QueueTarget,
} from "./dataplane-target.js";

export interface GouletteTargetOptions {
  label: string;
  /** host:port of the partition leader. */
  leaderAddress: string;
  topic: string;
  acks: Acks;
  /** Requests in flight on the SendMessage stream. */
  window?: number;
  /** Bytes of payload per request at most (records per request = this / size, 1…500). */
  batchBytes?: number;
  /**
   * Let the transport negotiate gzip/brotli with the broker (connect-node's default, the SDK's
   * `brokerCompression: true`); false (default, as the SDK and the peers' clients) never compresses.
   */
  compression?: boolean;
  /**
   * How consume reads: "fetch" (FetchMessages, batches of up to 2,000 records / 1 MiB per response, what
   * the SDK consumer uses) or "pull" (PullMessage, one stream message per record).
   */
  consumeApi?: "fetch" | "pull";
  /**
   * Streams through the SDK's lean stream client (default, as the SDK) or, false, through connect-node's
   * client pipeline (`leanBrokerStreams: false`): what the lean client saves.
   */
  leanStreams?: boolean;
}

let producerSeq = 0;

export function createGouletteTarget(options: GouletteTargetOptions): QueueTarget {
  // The SDK's transport (src/client/node.ts): HTTP/2 with wide flow-control windows, gzip only if asked.
  const transport = createNodeTransport({
    brokerCompression: options.compression ?? false,
    leanBrokerStreams: options.leanStreams ?? true,
  });
  const client: Client<typeof BrokerService> = createClient(
    BrokerService,
    transport.broker(options.leaderAddress),
  );
  const window = options.window ?? 8;
  const batchBytes = options.batchBytes ?? 256 * 1024;
  let last: { startOffset: bigint; count: number } | undefined;

  const request = (
    records: { messageId: bigint; payload: Uint8Array }[],
    producerId: string,
  ): MessageRequest =>
    create(MessageRequestSchema, {
      topic: options.topic,
      partition: 0,
      producerId,
      acks: options.acks,
      records,
    });

  async function produce(size: number, count: number, deadlineMs: number): Promise<ProduceResult> {
    // The previous run's records go first, as the peers' targets DEL / purge theirs: every system then
    // writes each run into a log of the same (empty) size, and none holds more page cache than another
    // (docs/benchmarks.md, "64 KiB produce: the page cache").
    await client.deleteRecords({ topic: options.topic, partition: 0, beforeOffset: -1n });
    const perRequest = Math.max(1, Math.min(500, Math.floor(batchBytes / size), count));
    // One payload buffer for every record: the benchmark measures the broker, not payload generation.
    const payload = stampedPayload(size, 0);
    const producerId = `bench-${process.pid}-${++producerSeq}`;
    const requests = new Pushable<MessageRequest>();
    // As the SDK's producer does (src/client/produce-channel.ts): requests encoded here, payloads copied
    // once, and a placeholder handed to Connect for each.
    const encoded = transport.encodesRequests ? openEncodedRequests() : undefined;
    const placeholder = create(MessageRequestSchema);
    let nextId = 1n;
    let sent = 0;
    let acked = 0;
    let inflight = 0;
    let minOffset: bigint | undefined;
    const start = performance.now();
    const sendBatch = () => {
      const n = Math.min(perRequest, count - sent);
      if (n <= 0 || performance.now() - start >= deadlineMs) return false;
      const records = [];
      for (let i = 0; i < n; i++) records.push({ messageId: nextId++, payload });
      sent += n;
      inflight++;
      const req = request(records, producerId);
      if (encoded === undefined) {
        requests.push(req);
      } else {
        encoded.queue.push(encodeMessageEnvelope(req));
        requests.push(placeholder);
      }
      return true;
    };
    for (let i = 0; i < window; i++) sendBatch();
    try {
      for await (const res of client.sendMessage(requests, { headers: { ...encoded?.header } })) {
        inflight--;
        for (const a of res.acks) {
          if (a.error !== ProduceError.NONE) throw new Error(`produce failed: ${a.errorMessage || a.error}`);
          if (minOffset === undefined || a.offset < minOffset) minOffset = a.offset;
          acked++;
        }
        if (!sendBatch() && inflight === 0) requests.end();
      }
    } finally {
      requests.end();
      encoded?.close();
    }
    const seconds = (performance.now() - start) / 1000;
    last = { startOffset: minOffset ?? 0n, count: acked };
    return { messages: acked, bytes: acked * size, seconds };
  }

  async function consume(): Promise<ConsumeResult> {
    if (!last) throw new Error("consume before produce");
    const start = performance.now();
    let messages = 0;
    const req = { topic: options.topic, partition: 0, offset: last.startOffset };
    if ((options.consumeApi ?? "fetch") === "fetch") {
      const batches = client.fetchMessages(
        { ...req, maxMessages: DEFAULT_PULL_BATCH_SIZE, limit: BigInt(last.count) },
        { timeoutMs: 60_000 },
      );
      for await (const batch of batches) messages += batch.messages.length;
    } else {
      const stream = client.pullMessage(
        { ...req, batchSize: 500, maxMessages: BigInt(last.count) },
        { timeoutMs: 60_000 },
      );
      for await (const _message of stream) messages++;
    }
    if (messages !== last.count) throw new Error(`consumed ${messages} of ${last.count} messages`);
    return { messages, seconds: (performance.now() - start) / 1000 };
  }

  async function latency(size: number, intervalMs: number, durationMs: number): Promise<number[]> {
    // A marker gives the log end: the tailing pull starts right after it.
    const marker = await produce(size, 1, 10_000);
    if (marker.messages !== 1 || !last) throw new Error("latency marker not acknowledged");
    const from = last.startOffset + 1n;
    const samples: number[] = [];
    const abort = new AbortController();
    const pulling = (async () => {
      try {
        if ((options.consumeApi ?? "fetch") === "fetch") {
          const batches = client.fetchMessages(
            { topic: options.topic, partition: 0, offset: from, maxMessages: DEFAULT_PULL_BATCH_SIZE },
            { signal: abort.signal },
          );
          for await (const batch of batches) {
            const now = performance.now();
            for (const m of batch.messages) samples.push(now - readStamp(m.payload));
          }
        } else {
          const stream = client.pullMessage(
            { topic: options.topic, partition: 0, offset: from, batchSize: 500 },
            { signal: abort.signal },
          );
          for await (const m of stream) samples.push(performance.now() - readStamp(m.payload));
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    })();
    const producerId = `bench-${process.pid}-${++producerSeq}`;
    const requests = new Pushable<MessageRequest>();
    let nextId = 1n;
    const acking = (async () => {
      for await (const res of client.sendMessage(requests)) {
        for (const a of res.acks) {
          if (a.error !== ProduceError.NONE) throw new Error(`produce failed: ${a.errorMessage || a.error}`);
        }
      }
    })();
    try {
      await paced(
        intervalMs,
        durationMs,
        () =>
          requests.push(
            request([{ messageId: nextId++, payload: stampedPayload(size, performance.now()) }], producerId),
          ),
        () => samples.length,
      );
    } finally {
      requests.end();
      await acking;
      abort.abort();
      await pulling;
    }
    return samples;
  }

  return { label: options.label, produce, consume, latency, close: async () => transport.close() };
}

export { Acks };
