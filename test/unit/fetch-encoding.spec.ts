import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";

import {
  FetchFrames,
  encodeFetchEnvelopeFromFrames,
  type FetchResponseFields,
} from "../../src/broker/fetch-encoding.js";
import { toBatchedMessage } from "../../src/broker/wire.js";
import { FetchResponseSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import { EncodedEnvelopes } from "../../src/common/encoded-envelopes.js";
import { trackEncoded } from "../../src/server/encoded-responses.js";
import {
  EXTERNAL_PAYLOAD_MIN_BYTES,
  encodeFrame,
  frameSize,
  type StoredRecord,
} from "../../src/storage/record-format.js";
import { patternedBytes as bytes } from "../helpers/patterned-bytes.js";

function record(offset: number, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return {
    offset,
    timestamp: 1_765_000_000_000 + offset,
    producerId: "producer-1",
    messageId: BigInt(offset + 1),
    key: bytes(8, offset),
    headers: [],
    payload: bytes(100, offset),
    sizeBytes: 0,
    ...overrides,
  };
}

/** What protobuf-es writes for the same response, as fetch.ts builds it without pre-encoding. */
function reference(fields: FetchResponseFields, records: StoredRecord[]): Uint8Array {
  return toBinary(
    FetchResponseSchema,
    create(FetchResponseSchema, {
      topic: fields.topic,
      partition: fields.partition,
      messages: records.map(toBatchedMessage),
      highWatermark: BigInt(fields.highWatermark),
      logStartOffset: BigInt(fields.logStartOffset),
    }),
  );
}

/**
 * The records as a log stores them (one frame each, in one buffer; payloads of 8 KiB and more written
 * apart, as the log's gathered writes and its tail cache hold them), read through FetchFrames.
 */
function framesOf(records: StoredRecord[]): FetchFrames {
  const read = new FetchFrames();
  for (const r of records) {
    const size = frameSize(r);
    if (typeof size !== "number") throw new Error(size);
    const external = r.payload.length >= EXTERNAL_PAYLOAD_MIN_BYTES;
    // Each frame at an odd position of a larger buffer: the encoder must read from where it lies.
    const buf = Buffer.alloc(size + 7);
    encodeFrame(buf, 3, r, r.offset, r.timestamp, external);
    read.add(buf, 3, size, external ? r.payload : undefined);
  }
  return read;
}

function assertSameAsProtobufEs(fields: FetchResponseFields, records: StoredRecord[]): void {
  const envelope = encodeFetchEnvelopeFromFrames(fields, framesOf(records));
  const expected = reference(fields, records);
  assert.equal(envelope[0], 0, "uncompressed envelope");
  assert.equal(envelope.readUInt32BE(1), expected.length, "envelope length");
  assert.deepEqual(new Uint8Array(envelope.subarray(5)), expected);
  const decoded = fromBinary(FetchResponseSchema, envelope.subarray(5));
  assert.equal(decoded.messages.length, records.length);
}

describe("FetchResponse encoded from stored frames", () => {
  const fields = { topic: "orders", partition: 7, highWatermark: 1_000, logStartOffset: 3 };

  it("writes the same bytes as protobuf-es for typical batches", () => {
    assertSameAsProtobufEs(fields, [record(3), record(4), record(5)]);
    assertSameAsProtobufEs(fields, []);
    // 64 KiB payloads: three-byte length prefixes on the payload and the message.
    assertSameAsProtobufEs(fields, [
      record(10, { payload: bytes(65_536, 1) }),
      record(11, { payload: bytes(200_000, 2) }),
    ]);
  });

  it("omits defaults as protobuf-es does: offset 0, empty key/payload/producer, message id 0", () => {
    assertSameAsProtobufEs({ topic: "", partition: 0, highWatermark: 0, logStartOffset: 0 }, [
      record(0, {
        timestamp: 0,
        key: new Uint8Array(0),
        payload: new Uint8Array(0),
        producerId: "",
        messageId: 0n,
      }),
    ]);
  });

  it("encodes headers, multi-byte UTF-8 and the widest integers", () => {
    assertSameAsProtobufEs(
      { topic: "tópico-✓", partition: 0xffff_ffff, highWatermark: 2 ** 53 - 1, logStartOffset: 2 ** 40 },
      [
        record(2 ** 33 + 5, {
          timestamp: 2 ** 52 + 3,
          producerId: "prödücer-𝄞",
          messageId: (1n << 64n) - 1n,
          headers: [
            { key: "trace-id", value: bytes(16, 9) },
            { key: "", value: new Uint8Array(0) },
            { key: "ключ", value: bytes(300, 4) },
          ],
        }),
        record(2 ** 33 + 6, { messageId: 1n << 53n }),
        record(2 ** 33 + 7, { messageId: (1n << 53n) - 1n }),
      ],
    );
  });

  it("reads every byte from the records it was given (views into a larger buffer)", () => {
    const backing = Buffer.from(bytes(4_096, 5));
    const payload = backing.subarray(1_000, 3_000);
    assertSameAsProtobufEs(fields, [record(1, { payload, key: backing.subarray(10, 20) })]);
  });
});

describe("pre-encoded response envelopes", () => {
  it("are offered to binary protocols that ask for no compression only", () => {
    const offered = (headers: Record<string, string>) =>
      trackEncoded(createContextValues(), headers) !== undefined;
    assert.equal(offered({ "content-type": "application/grpc" }), true);
    assert.equal(
      offered({ "content-type": "application/grpc+proto", "grpc-accept-encoding": "identity" }),
      true,
    );
    assert.equal(offered({ "content-type": "application/connect+proto" }), true);
    assert.equal(offered({ "content-type": "application/grpc-web+proto" }), true);
    assert.equal(
      offered({ "content-type": "application/grpc", "grpc-accept-encoding": "identity,gzip" }),
      false,
    );
    assert.equal(
      offered({ "content-type": "application/connect+proto", "connect-accept-encoding": "br" }),
      false,
    );
    assert.equal(offered({ "content-type": "application/grpc", "grpc-encoding": "gzip" }), false);
    assert.equal(offered({ "content-type": "application/grpc+json" }), false);
    assert.equal(offered({ "content-type": "application/connect+json" }), false);
    assert.equal(offered({ "content-type": "application/json" }), false);
    assert.equal(offered({}), false);
  });

  it("replace placeholders in order and leave every other chunk alone", () => {
    const encoded = new EncodedEnvelopes();
    const placeholder = new Uint8Array(5);
    const first = Uint8Array.of(0, 0, 0, 0, 1, 42);
    const second = Uint8Array.of(0, 0, 0, 0, 1, 43);
    const trailer = Uint8Array.of(0x80, 0, 0, 0, 0);
    encoded.push(first);
    encoded.push(second);
    assert.equal(encoded.substitute(placeholder), first);
    assert.equal(encoded.substitute(trailer), trailer);
    assert.equal(encoded.substitute(placeholder), second);
    // Nothing queued: a real empty message goes out as it is.
    assert.equal(encoded.substitute(placeholder), placeholder);
  });
});
