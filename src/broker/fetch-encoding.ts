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
import type { StoredRecord } from "../storage/index.js";

/**
 * A FetchResponse encoded straight from stored records into one buffer sized up front, inside its
 * 5-byte stream envelope: each key, header and payload is copied once, from the read buffer (or the
 * tail cache) into the response. The bytes are those protobuf-es writes for the same message (fields
 * in number order, defaults omitted; each record as toBatchedMessage builds it), so a client decodes
 * it like any other response; test/unit/fetch-encoding.spec.ts compares the two.
 *
 *   FetchResponse: topic = 1, partition = 2, messages = 3, high_watermark = 4, log_start_offset = 5
 *   Message:       offset = 3, timestamp = 4, key = 5, payload = 6, headers = 7, producer_id = 8,
 *                  message_id = 9 (topic, partition, high_watermark unset: the response carries them)
 *   Header:        key = 1, value = 2
 */

// Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
const RESPONSE_TOPIC = 0x0a;
const RESPONSE_PARTITION = 0x10;
const RESPONSE_MESSAGE = 0x1a;
const RESPONSE_HIGH_WATERMARK = 0x20;
const RESPONSE_LOG_START = 0x28;
const MESSAGE_OFFSET = 0x18;
const MESSAGE_TIMESTAMP = 0x20;
const MESSAGE_KEY = 0x2a;
const MESSAGE_PAYLOAD = 0x32;
const MESSAGE_HEADER = 0x3a;
const MESSAGE_PRODUCER_ID = 0x42;
const MESSAGE_ID = 0x48;
const HEADER_KEY = 0x0a;
const HEADER_VALUE = 0x12;

function headerSize(key: string, value: Uint8Array): number {
  const keyBytes = Buffer.byteLength(key, "utf8");
  return (
    (keyBytes === 0 ? 0 : delimitedSize(keyBytes)) + (value.length === 0 ? 0 : delimitedSize(value.length))
  );
}

function messageSize(record: StoredRecord): number {
  let size = 0;
  if (record.offset !== 0) size += 1 + varintSize(record.offset);
  if (record.timestamp !== 0) size += 1 + varintSize(record.timestamp);
  if (record.key.length !== 0) size += delimitedSize(record.key.length);
  if (record.payload.length !== 0) size += delimitedSize(record.payload.length);
  for (const h of record.headers) size += delimitedSize(headerSize(h.key, h.value));
  if (record.producerId.length !== 0) size += delimitedSize(Buffer.byteLength(record.producerId, "utf8"));
  if (record.messageId !== 0n) size += 1 + bigVarintSize(record.messageId);
  return size;
}

function writeMessage(buf: Buffer, pos: number, record: StoredRecord, size: number): number {
  buf[pos++] = RESPONSE_MESSAGE;
  pos = writeVarint(buf, pos, size);
  pos = writeVarintField(buf, pos, MESSAGE_OFFSET, record.offset);
  pos = writeVarintField(buf, pos, MESSAGE_TIMESTAMP, record.timestamp);
  if (record.key.length !== 0) pos = writeBytes(buf, pos, MESSAGE_KEY, record.key);
  if (record.payload.length !== 0) pos = writeBytes(buf, pos, MESSAGE_PAYLOAD, record.payload);
  for (const h of record.headers) {
    buf[pos++] = MESSAGE_HEADER;
    pos = writeVarint(buf, pos, headerSize(h.key, h.value));
    if (h.key.length !== 0) pos = writeString(buf, pos, HEADER_KEY, h.key);
    if (h.value.length !== 0) pos = writeBytes(buf, pos, HEADER_VALUE, h.value);
  }
  if (record.producerId.length !== 0) pos = writeString(buf, pos, MESSAGE_PRODUCER_ID, record.producerId);
  if (record.messageId !== 0n) {
    buf[pos++] = MESSAGE_ID;
    pos = writeBigVarint(buf, pos, record.messageId);
  }
  return pos;
}

/** What a FetchResponse carries besides its records. */
export interface FetchResponseFields {
  topic: string;
  partition: number;
  highWatermark: number;
  logStartOffset: number;
}

/** The FetchResponse of these records as one uncompressed stream envelope (flags 0, u32 length). */
export function encodeFetchEnvelope(fields: FetchResponseFields, records: readonly StoredRecord[]): Buffer {
  const sizes = new Array<number>(records.length);
  const topicBytes = Buffer.byteLength(fields.topic, "utf8");
  let size = topicBytes === 0 ? 0 : delimitedSize(topicBytes);
  if (fields.partition !== 0) size += 1 + varintSize(fields.partition);
  for (let i = 0; i < records.length; i++) {
    const s = messageSize(records[i] as StoredRecord);
    sizes[i] = s;
    size += delimitedSize(s);
  }
  if (fields.highWatermark !== 0) size += 1 + varintSize(fields.highWatermark);
  if (fields.logStartOffset !== 0) size += 1 + varintSize(fields.logStartOffset);

  const buf = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + size);
  buf[0] = 0;
  buf.writeUInt32BE(size, 1);
  let pos = ENVELOPE_HEADER_BYTES;
  if (topicBytes !== 0) pos = writeString(buf, pos, RESPONSE_TOPIC, fields.topic);
  pos = writeVarintField(buf, pos, RESPONSE_PARTITION, fields.partition);
  for (let i = 0; i < records.length; i++) {
    pos = writeMessage(buf, pos, records[i] as StoredRecord, sizes[i] as number);
  }
  pos = writeVarintField(buf, pos, RESPONSE_HIGH_WATERMARK, fields.highWatermark);
  pos = writeVarintField(buf, pos, RESPONSE_LOG_START, fields.logStartOffset);
  if (pos !== buf.length) throw new Error(`fetch response encoded to ${pos} bytes, sized ${buf.length}`);
  return buf;
}
