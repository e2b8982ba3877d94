import { ENVELOPE_HEADER_BYTES } from "../common/grpc-frame.js";
import {
  bigVarintSize,
  delimitedSize,
  varintSize,
  writeBigVarint,
  writeBytes,
  writeSlice,
  writeString,
  writeVarint,
  writeVarintField,
} from "../common/protobuf-wire.js";
import type { FrameSink } from "../storage/index.js";
import { frameLayout, type FrameLayout } from "../storage/record-format.js";

/**
 * A FetchResponse encoded straight from the stored frames into one buffer sized up front, inside its
 * 5-byte stream envelope: each key, header and payload is copied once, from the read buffer (or the
 * tail cache) into the response, and no record is decoded (producer ids and header keys are stored as
 * the UTF-8 their writer encoded, so they are copied as they are). The bytes are those protobuf-es
 * writes for the records the frames decode to (fields in number order, defaults omitted; each record as
 * toBatchedMessage builds it), so a client decodes it like any other response;
 * test/unit/fetch-encoding.spec.ts compares the two.
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

/** What a FetchResponse carries besides its records. */
export interface FetchResponseFields {
  topic: string;
  partition: number;
  highWatermark: number;
  logStartOffset: number;
}

/**
 * What a fetch reads when its response is encoded here: each frame's layout (record-format.ts
 * frameLayout), no decoded record — no producer-id or header-key strings decoded only to be encoded
 * again, no per-record views but the payload's.
 */
export class FetchFrames implements FrameSink {
  readonly frames: FrameLayout[] = [];
  payloadBytes = 0;

  get length(): number {
    return this.frames.length;
  }

  add(buf: Buffer, pos: number, size: number, payload?: Uint8Array): void {
    const frame = frameLayout(buf, pos, size, payload);
    this.frames.push(frame);
    this.payloadBytes += frame.payload.length;
  }
}

const TWO_POW_21 = 0x20_0000;

/** The message id as a number when it is a safe integer (nearly always), else as a bigint. */
function messageIdOf(f: FrameLayout): number | bigint {
  if (f.messageIdHigh < TWO_POW_21) return f.messageIdHigh * 0x1_0000_0000 + f.messageIdLow;
  return (BigInt(f.messageIdHigh) << 32n) | BigInt(f.messageIdLow);
}

/** The Header messages' sizes of a frame, walking its header fields. */
function frameHeadersSize(f: FrameLayout, headerSizes: number[]): number {
  const { buf } = f;
  let p = f.headersStart;
  let total = 0;
  for (let i = 0; i < f.headerCount; i++) {
    const keyLength = buf.readUInt16BE(p);
    p += 2 + keyLength;
    const valueLength = buf.readUInt32BE(p);
    p += 4 + valueLength;
    const size =
      (keyLength === 0 ? 0 : delimitedSize(keyLength)) + (valueLength === 0 ? 0 : delimitedSize(valueLength));
    headerSizes.push(size);
    total += delimitedSize(size);
  }
  return total;
}

function frameMessageSize(f: FrameLayout, id: number | bigint, headerSizes: number[]): number {
  let size = 0;
  if (f.offset !== 0) size += 1 + varintSize(f.offset);
  if (f.timestamp !== 0) size += 1 + varintSize(f.timestamp);
  if (f.keyLength !== 0) size += delimitedSize(f.keyLength);
  if (f.payload.length !== 0) size += delimitedSize(f.payload.length);
  size += frameHeadersSize(f, headerSizes);
  if (f.producerIdLength !== 0) size += delimitedSize(f.producerIdLength);
  if (id !== 0) size += 1 + (typeof id === "number" ? varintSize(id) : bigVarintSize(id));
  return size;
}

function writeFrameMessage(
  out: Buffer,
  pos: number,
  f: FrameLayout,
  id: number | bigint,
  size: number,
  headerSizes: readonly number[],
  firstHeader: number,
): number {
  const { buf } = f;
  out[pos++] = RESPONSE_MESSAGE;
  pos = writeVarint(out, pos, size);
  pos = writeVarintField(out, pos, MESSAGE_OFFSET, f.offset);
  pos = writeVarintField(out, pos, MESSAGE_TIMESTAMP, f.timestamp);
  if (f.keyLength !== 0) pos = writeSlice(out, pos, MESSAGE_KEY, buf, f.keyStart, f.keyLength);
  if (f.payload.length !== 0) pos = writeBytes(out, pos, MESSAGE_PAYLOAD, f.payload);
  let p = f.headersStart;
  for (let i = 0; i < f.headerCount; i++) {
    out[pos++] = MESSAGE_HEADER;
    pos = writeVarint(out, pos, headerSizes[firstHeader + i] as number);
    const keyLength = buf.readUInt16BE(p);
    if (keyLength !== 0) pos = writeSlice(out, pos, HEADER_KEY, buf, p + 2, keyLength);
    p += 2 + keyLength;
    const valueLength = buf.readUInt32BE(p);
    if (valueLength !== 0) pos = writeSlice(out, pos, HEADER_VALUE, buf, p + 4, valueLength);
    p += 4 + valueLength;
  }
  if (f.producerIdLength !== 0) {
    pos = writeSlice(out, pos, MESSAGE_PRODUCER_ID, buf, f.producerIdStart, f.producerIdLength);
  }
  if (id !== 0) {
    out[pos++] = MESSAGE_ID;
    pos = typeof id === "number" ? writeVarint(out, pos, id) : writeBigVarint(out, pos, id);
  }
  return pos;
}

/**
 * The FetchResponse of these frames as one uncompressed stream envelope.
 */
export function encodeFetchEnvelopeFromFrames(fields: FetchResponseFields, read: FetchFrames): Buffer {
  const { frames } = read;
  const ids = new Array<number | bigint>(frames.length);
  const sizes = new Array<number>(frames.length);
  const headerSizes: number[] = [];
  const topicBytes = Buffer.byteLength(fields.topic, "utf8");
  let size = topicBytes === 0 ? 0 : delimitedSize(topicBytes);
  if (fields.partition !== 0) size += 1 + varintSize(fields.partition);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as FrameLayout;
    const id = messageIdOf(f);
    ids[i] = id;
    const s = frameMessageSize(f, id, headerSizes);
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
  let header = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as FrameLayout;
    pos = writeFrameMessage(buf, pos, f, ids[i] as number | bigint, sizes[i] as number, headerSizes, header);
    header += f.headerCount;
  }
  pos = writeVarintField(buf, pos, RESPONSE_HIGH_WATERMARK, fields.highWatermark);
  pos = writeVarintField(buf, pos, RESPONSE_LOG_START, fields.logStartOffset);
  if (pos !== buf.length) throw new Error(`fetch response encoded to ${pos} bytes, sized ${buf.length}`);
  return buf;
}
