import { ENVELOPE_HEADER_BYTES } from "../common/grpc-frame.js";
import {
  bigVarintSize,
  delimitedSize,
  varintSize,
  writeBigVarint,
  writeBytes,
  writeString,
  writeVarint,
  writeVarintField,
} from "../common/protobuf-wire.js";
import type {
  BatchesRequest,
  Header,
  MessageRequest,
  PartitionBatch,
  ProduceRecord,
} from "../gen/goulette/v1/broker_pb.js";

/**
 * Produce requests encoded into one buffer sized up front, inside their 5-byte stream envelope, so each
 * key, header value and payload is copied once, from the application's buffer into the request
 * (src/common/encoded-envelopes.ts says what protobuf-es and Connect would copy instead). The bytes are
 * those protobuf-es writes for the same message: fields in number order, defaults left out
 * (test/unit/produce-encoding.spec.ts compares the two).
 *
 *   BatchesRequest: request_id = 1, producer_id = 2, acks = 3, batches = 4, answer_per_batch = 5
 *   PartitionBatch: topic = 1, partition = 2, records = 3, previous_message_id = 4
 *   MessageRequest: topic = 1, partition = 2, producer_id = 3, acks = 4, records = 5,
 *                   previous_message_id = 6
 *   ProduceRecord:  message_id = 1, key = 2, payload = 3, headers = 4, timestamp = 5
 *   Header:         key = 1, value = 2
 */

// Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
const BATCHES_REQUEST_ID = 0x08;
const BATCHES_PRODUCER_ID = 0x12;
const BATCHES_ACKS = 0x18;
const BATCHES_BATCH = 0x22;
const BATCHES_ANSWER_PER_BATCH = 0x28;
const BATCH_TOPIC = 0x0a;
const BATCH_PARTITION = 0x10;
const BATCH_RECORD = 0x1a;
const BATCH_PREVIOUS_ID = 0x20;
const MESSAGE_TOPIC = 0x0a;
const MESSAGE_PARTITION = 0x10;
const MESSAGE_PRODUCER_ID = 0x1a;
const MESSAGE_ACKS = 0x20;
const MESSAGE_RECORD = 0x2a;
const MESSAGE_PREVIOUS_ID = 0x30;
const RECORD_ID = 0x08;
const RECORD_KEY = 0x12;
const RECORD_PAYLOAD = 0x1a;
const RECORD_HEADER = 0x22;
const RECORD_TIMESTAMP = 0x28;
const HEADER_KEY = 0x0a;
const HEADER_VALUE = 0x12;

/** An int64 as protobuf writes it: negative values as their 64-bit two's complement. */
function int64(value: bigint): bigint {
  return value < 0n ? BigInt.asUintN(64, value) : value;
}

function stringFieldSize(text: string): number {
  const bytes = Buffer.byteLength(text, "utf8");
  return bytes === 0 ? 0 : delimitedSize(bytes);
}

function bytesFieldSize(bytes: Uint8Array): number {
  return bytes.length === 0 ? 0 : delimitedSize(bytes.length);
}

function bigFieldSize(value: bigint): number {
  return value === 0n ? 0 : 1 + bigVarintSize(int64(value));
}

function headerSize(h: Header): number {
  return stringFieldSize(h.key) + bytesFieldSize(h.value);
}

function recordSize(r: ProduceRecord): number {
  let size = bigFieldSize(r.messageId) + bytesFieldSize(r.key) + bytesFieldSize(r.payload);
  for (const h of r.headers) size += delimitedSize(headerSize(h));
  return size + bigFieldSize(r.timestamp);
}

/** Each record's size (so it is computed once), and the records' total as fields of their parent. */
function recordsSize(records: readonly ProduceRecord[], sizes: number[]): number {
  let total = 0;
  for (const r of records) {
    const size = recordSize(r);
    sizes.push(size);
    total += delimitedSize(size);
  }
  return total;
}

function writeStringField(buf: Buffer, pos: number, tag: number, text: string): number {
  return text.length === 0 ? pos : writeString(buf, pos, tag, text);
}

function writeBytesField(buf: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  return bytes.length === 0 ? pos : writeBytes(buf, pos, tag, bytes);
}

function writeBigField(buf: Buffer, pos: number, tag: number, value: bigint): number {
  if (value === 0n) return pos;
  buf[pos++] = tag;
  return writeBigVarint(buf, pos, int64(value));
}

function writeRecords(
  buf: Buffer,
  pos: number,
  tag: number,
  records: readonly ProduceRecord[],
  sizes: readonly number[],
  first: number,
): number {
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as ProduceRecord;
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, sizes[first + i] as number);
    pos = writeBigField(buf, pos, RECORD_ID, r.messageId);
    pos = writeBytesField(buf, pos, RECORD_KEY, r.key);
    pos = writeBytesField(buf, pos, RECORD_PAYLOAD, r.payload);
    for (const h of r.headers) {
      buf[pos++] = RECORD_HEADER;
      pos = writeVarint(buf, pos, headerSize(h));
      pos = writeStringField(buf, pos, HEADER_KEY, h.key);
      pos = writeBytesField(buf, pos, HEADER_VALUE, h.value);
    }
    pos = writeBigField(buf, pos, RECORD_TIMESTAMP, r.timestamp);
  }
  return pos;
}

/** A buffer for `size` bytes of message inside its envelope (flags 0, u32 length), positioned after it. */
function envelopeOf(size: number): Buffer {
  const buf = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + size);
  buf[0] = 0;
  buf.writeUInt32BE(size, 1);
  return buf;
}

function checkEnd(buf: Buffer, pos: number, what: string): Buffer {
  if (pos !== buf.length) throw new Error(`${what} encoded to ${pos} bytes, sized ${buf.length}`);
  return buf;
}

/** The BatchesRequest as one uncompressed stream envelope. */
export function encodeBatchesEnvelope(request: BatchesRequest): Buffer {
  const recordSizes: number[] = [];
  const batchSizes: number[] = [];
  let size =
    bigFieldSize(request.requestId) +
    stringFieldSize(request.producerId) +
    (request.acks === 0 ? 0 : 1 + varintSize(request.acks)) +
    (request.answerPerBatch ? 2 : 0);
  for (const b of request.batches) {
    const batchSize =
      stringFieldSize(b.topic) +
      (b.partition === 0 ? 0 : 1 + varintSize(b.partition)) +
      recordsSize(b.records, recordSizes) +
      bigFieldSize(b.previousMessageId);
    batchSizes.push(batchSize);
    size += delimitedSize(batchSize);
  }
  const buf = envelopeOf(size);
  let pos = writeBigField(buf, ENVELOPE_HEADER_BYTES, BATCHES_REQUEST_ID, request.requestId);
  pos = writeStringField(buf, pos, BATCHES_PRODUCER_ID, request.producerId);
  pos = writeVarintField(buf, pos, BATCHES_ACKS, request.acks);
  let firstRecord = 0;
  for (let i = 0; i < request.batches.length; i++) {
    const b = request.batches[i] as PartitionBatch;
    buf[pos++] = BATCHES_BATCH;
    pos = writeVarint(buf, pos, batchSizes[i] as number);
    pos = writeStringField(buf, pos, BATCH_TOPIC, b.topic);
    pos = writeVarintField(buf, pos, BATCH_PARTITION, b.partition);
    pos = writeRecords(buf, pos, BATCH_RECORD, b.records, recordSizes, firstRecord);
    firstRecord += b.records.length;
    pos = writeBigField(buf, pos, BATCH_PREVIOUS_ID, b.previousMessageId);
  }
  pos = writeVarintField(buf, pos, BATCHES_ANSWER_PER_BATCH, request.answerPerBatch ? 1 : 0);
  return checkEnd(buf, pos, "produce request");
}

/** The MessageRequest as one uncompressed stream envelope. */
export function encodeMessageEnvelope(request: MessageRequest): Buffer {
  const recordSizes: number[] = [];
  const size =
    stringFieldSize(request.topic) +
    (request.partition === 0 ? 0 : 1 + varintSize(request.partition)) +
    stringFieldSize(request.producerId) +
    (request.acks === 0 ? 0 : 1 + varintSize(request.acks)) +
    recordsSize(request.records, recordSizes) +
    bigFieldSize(request.previousMessageId);
  const buf = envelopeOf(size);
  let pos = writeStringField(buf, ENVELOPE_HEADER_BYTES, MESSAGE_TOPIC, request.topic);
  pos = writeVarintField(buf, pos, MESSAGE_PARTITION, request.partition);
  pos = writeStringField(buf, pos, MESSAGE_PRODUCER_ID, request.producerId);
  pos = writeVarintField(buf, pos, MESSAGE_ACKS, request.acks);
  pos = writeRecords(buf, pos, MESSAGE_RECORD, request.records, recordSizes, 0);
  pos = writeBigField(buf, pos, MESSAGE_PREVIOUS_ID, request.previousMessageId);
  return checkEnd(buf, pos, "produce request");
}
