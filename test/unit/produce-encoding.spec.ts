import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { UniversalClientRequest, UniversalClientResponse } from "@connectrpc/connect/protocol";

import { openEncodedRequests, withEncodedRequests } from "../../src/client/encoded-requests.js";
import { encodeBatchesEnvelope, encodeMessageEnvelope } from "../../src/client/produce-encoding.js";
import {
  Acks,
  BatchesRequestSchema,
  MessageRequestSchema,
  type ProduceRecordSchema,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { patternedBytes as bytes } from "../helpers/patterned-bytes.js";

type RecordInit = MessageInitShape<typeof ProduceRecordSchema>;

function record(id: number, init: RecordInit = {}): RecordInit {
  return {
    messageId: BigInt(id),
    payload: bytes(100, id),
    timestamp: 1_765_000_000_000n + BigInt(id),
    ...init,
  };
}

function assertBatchesLikeProtobufEs(init: Parameters<typeof create<typeof BatchesRequestSchema>>[1]): void {
  const request = create(BatchesRequestSchema, init);
  const envelope = encodeBatchesEnvelope(request);
  const expected = toBinary(BatchesRequestSchema, request);
  assert.equal(envelope[0], 0, "uncompressed envelope");
  assert.equal(envelope.readUInt32BE(1), expected.length, "envelope length");
  assert.deepEqual(new Uint8Array(envelope.subarray(5)), expected);
  // The broker decodes it back to the same request.
  assert.deepEqual(
    toBinary(BatchesRequestSchema, fromBinary(BatchesRequestSchema, envelope.subarray(5))),
    expected,
  );
}

function assertMessageLikeProtobufEs(init: Parameters<typeof create<typeof MessageRequestSchema>>[1]): void {
  const request = create(MessageRequestSchema, init);
  const envelope = encodeMessageEnvelope(request);
  const expected = toBinary(MessageRequestSchema, request);
  assert.equal(envelope.readUInt32BE(1), expected.length, "envelope length");
  assert.deepEqual(new Uint8Array(envelope.subarray(5)), expected);
}

describe("produce requests encoded by the SDK", () => {
  it("SendBatches: the same bytes as protobuf-es, for batches of many partitions and payload sizes", () => {
    assertBatchesLikeProtobufEs({
      requestId: 42n,
      producerId: "producer-1",
      acks: Acks.ALL,
      batches: [
        { topic: "orders", partition: 0, records: [record(1), record(2, { key: bytes(8, 3) })] },
        {
          topic: "orders",
          partition: 7,
          records: [record(3, { payload: bytes(65_536, 4) })],
          previousMessageId: 2n,
        },
        { topic: "events", partition: 2, records: [record(4, { payload: bytes(300_000, 5) })] },
      ],
    });
    assertBatchesLikeProtobufEs({});
    assertBatchesLikeProtobufEs({ requestId: 1n, batches: [{ topic: "t", records: [] }] });
    assertBatchesLikeProtobufEs({
      requestId: 7n,
      answerPerBatch: true,
      batches: [{ topic: "t", partition: 1, records: [record(1)] }],
    });
  });

  it("leaves defaults out and encodes headers, multi-byte UTF-8, negative timestamps and the widest integers", () => {
    assertBatchesLikeProtobufEs({
      requestId: (1n << 64n) - 1n,
      producerId: "prödücer-𝄞",
      acks: Acks.LEADER,
      batches: [
        {
          topic: "tópico-✓",
          partition: 0xffff_ffff,
          previousMessageId: 1n << 53n,
          records: [
            record(0, {
              messageId: 0n,
              timestamp: 0n,
              payload: new Uint8Array(0),
              key: new Uint8Array(0),
              headers: [
                { key: "trace-id", value: bytes(16, 9) },
                { key: "", value: new Uint8Array(0) },
                { key: "ключ", value: bytes(300, 4) },
              ],
            }),
            record(9, { timestamp: -1n }),
            record(10, { timestamp: -(1n << 62n), messageId: (1n << 64n) - 1n }),
          ],
        },
      ],
    });
  });

  it("copies payloads that are views into a larger buffer from where they start", () => {
    const backing = Buffer.from(bytes(8_192, 6));
    assertBatchesLikeProtobufEs({
      requestId: 3n,
      batches: [
        {
          topic: "t",
          records: [record(1, { payload: backing.subarray(1_000, 5_000), key: backing.subarray(7, 9) })],
        },
      ],
    });
  });

  it("SendMessage: the same bytes as protobuf-es", () => {
    assertMessageLikeProtobufEs({
      topic: "orders",
      partition: 3,
      producerId: "p",
      acks: Acks.ALL,
      records: [record(1), record(2, { payload: bytes(70_000, 1) })],
      previousMessageId: 0n,
    });
    assertMessageLikeProtobufEs({});
  });
});

describe("pre-encoded produce requests on the wire", () => {
  /** An HTTP client that records what it was asked to send. */
  function recordingClient(): {
    client: (req: UniversalClientRequest) => Promise<UniversalClientResponse>;
    sent: { header: Headers; chunks: Uint8Array[] }[];
  } {
    const sent: { header: Headers; chunks: Uint8Array[] }[] = [];
    return {
      sent,
      client: async (req) => {
        const chunks: Uint8Array[] = [];
        for await (const chunk of req.body ?? []) chunks.push(chunk);
        sent.push({ header: req.header, chunks });
        return {
          status: 200,
          header: new Headers(),
          body: (async function* () {})(),
          trailer: new Headers(),
        };
      },
    };
  }

  async function* body(...chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
    yield* chunks;
  }

  it("swap each placeholder for the next queued envelope, in order, and the header never leaves", async () => {
    const { client, sent } = recordingClient();
    const stream = openEncodedRequests();
    const first = encodeBatchesEnvelope(create(BatchesRequestSchema, { requestId: 1n }));
    const second = encodeBatchesEnvelope(create(BatchesRequestSchema, { requestId: 2n }));
    stream.queue.push(first);
    stream.queue.push(second);
    const placeholder = new Uint8Array(5);
    const other = Uint8Array.of(0, 0, 0, 0, 2, 8, 7);
    await withEncodedRequests(client)({
      url: "http://broker/goulette.v1.BrokerService/SendBatches",
      method: "POST",
      header: new Headers({ ...stream.header, "content-type": "application/grpc" }),
      body: body(placeholder, other, placeholder),
    });
    stream.close();
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0]?.chunks, [first, other, second]);
    assert.deepEqual([...(sent[0]?.header.keys() ?? [])], ["content-type"]);
  });

  it("leave requests of streams that encode nothing untouched", async () => {
    const { client, sent } = recordingClient();
    const placeholder = new Uint8Array(5);
    await withEncodedRequests(client)({
      url: "http://broker/x",
      method: "POST",
      header: new Headers({ "content-type": "application/grpc" }),
      body: body(placeholder),
    });
    assert.deepEqual(sent[0]?.chunks, [placeholder]);
  });
});
