import { crc32c } from "./crc32c.js";

/**
 * The on-disk record frame (format version 1), big-endian. See docs/storage.md for the byte diagram.
 *
 *   length u32 | crc32c u32 | magic u8 | attributes u8 | offset i64 | timestamp i64 | messageId u64 |
 *   producerIdLength u16 | producerId | keyLength u32 | key | headerCount u16 |
 *   { headerKeyLength u16 | headerKey | headerValueLength u32 | headerValue } * headerCount |
 *   payloadLength u32 | payload
 *
 * `length` counts the bytes after itself; the CRC covers everything after the CRC field.
 */

/** Format version written in every frame; a reader rejects versions it does not know. */
export const RECORD_MAGIC = 1;
/** Bytes of `length` + `crc`, the part outside the checksum. */
export const FRAME_PREFIX_BYTES = 8;
/** Size of a frame with empty producer id, key, headers and payload. */
export const MIN_FRAME_BYTES = 4 + 4 + 1 + 1 + 8 + 8 + 8 + 2 + 4 + 2 + 4;
/** Hard ceiling on a frame a reader will believe, whatever the configured limit was when it was written. */
export const MAX_FRAME_BYTES = 1 << 30;

const TWO_POW_32 = 0x1_0000_0000;
const MAX_U16 = 0xffff;
const MAX_U64 = (1n << 64n) - 1n;

/** An application header: a UTF-8 key and opaque bytes. */
export interface RecordHeader {
  key: string;
  value: Uint8Array;
}

/** A record to append; the log assigns the offset. */
export interface AppendRecord {
  payload: Uint8Array;
  /** Partitioning / compaction key; empty when absent. */
  key?: Uint8Array;
  headers?: readonly RecordHeader[];
  /** Milliseconds since the epoch, ≥ 0; defaults to the append time. */
  timestamp?: number;
  /** Who produced it (idempotence is keyed by producer id + message id). */
  producerId?: string;
  /** Producer-assigned id, uint64. */
  messageId?: bigint;
}

/** A record copied from a leader: it keeps the leader's offset and timestamp. */
export interface ReplicatedRecord extends AppendRecord {
  offset: number;
  timestamp: number;
}

/** A record as read back. Byte fields are views into a read buffer: copy them to keep them long. */
export interface StoredRecord {
  offset: number;
  timestamp: number;
  producerId: string;
  messageId: bigint;
  key: Uint8Array;
  headers: RecordHeader[];
  payload: Uint8Array;
  /** Encoded size of the frame on disk. */
  sizeBytes: number;
}

const EMPTY = new Uint8Array(0);

/** Why a frame is unusable; the caller turns it into a CorruptRecordError or a recovery cut. */
export class FrameError extends Error {}

/**
 * The encoded size of a record, or a string saying why it cannot be encoded at all. Computed once per
 * record before anything is written, so an invalid batch is rejected whole.
 */
export function frameSize(record: AppendRecord): number | string {
  let size = MIN_FRAME_BYTES;
  if (record.producerId !== undefined) {
    const n = Buffer.byteLength(record.producerId, "utf8");
    if (n > MAX_U16) return `producer id is ${n} bytes, more than ${MAX_U16}`;
    size += n;
  }
  if (record.key !== undefined) size += record.key.length;
  if (record.headers !== undefined) {
    if (record.headers.length > MAX_U16) return `${record.headers.length} headers, more than ${MAX_U16}`;
    for (const header of record.headers) {
      const n = Buffer.byteLength(header.key, "utf8");
      if (n > MAX_U16) return `header key is ${n} bytes, more than ${MAX_U16}`;
      size += 2 + n + 4 + header.value.length;
    }
  }
  size += record.payload.length;
  if (record.timestamp !== undefined && !(Number.isSafeInteger(record.timestamp) && record.timestamp >= 0)) {
    return `timestamp must be a non-negative integer (ms), got ${record.timestamp}`;
  }
  if (record.messageId !== undefined && (record.messageId < 0n || record.messageId > MAX_U64)) {
    return `message id must be a uint64, got ${record.messageId}`;
  }
  return size;
}

function writeU64Number(buf: Buffer, value: number, pos: number): void {
  // Offsets and timestamps stay below 2^53 and are ≥ 0, so two 32-bit halves avoid a BigInt per record.
  buf.writeUInt32BE(Math.floor(value / TWO_POW_32), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
}

function readU64Number(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * TWO_POW_32 + buf.readUInt32BE(pos + 4);
}

/**
 * Payloads at least this large are not copied into the write buffer: the frame's other fields go there
 * and the payload is written from the caller's array by a gathered write (writev). Smaller ones are
 * copied, as one contiguous write beats many small iovecs.
 */
export const EXTERNAL_PAYLOAD_MIN_BYTES = 8 << 10;

/**
 * Writes one frame at `pos` (the caller sized `buf` with frameSize) and returns the position after it.
 * With `externalPayload` everything but the payload bytes is written (the frame in `buf` ends after the
 * payload length field; `length` and the CRC still cover the payload, which the caller writes next).
 */
export function encodeFrame(
  buf: Buffer,
  pos: number,
  record: AppendRecord,
  offset: number,
  timestamp: number,
  externalPayload = false,
): number {
  const start = pos;
  buf[pos + 8] = RECORD_MAGIC;
  buf[pos + 9] = 0;
  writeU64Number(buf, offset, pos + 10);
  writeU64Number(buf, timestamp, pos + 18);
  buf.writeBigUInt64BE(record.messageId ?? 0n, pos + 26);
  pos += 34;
  const producerIdLength = record.producerId ? buf.write(record.producerId, pos + 2, "utf8") : 0;
  buf.writeUInt16BE(producerIdLength, pos);
  pos += 2 + producerIdLength;
  const key = record.key ?? EMPTY;
  buf.writeUInt32BE(key.length, pos);
  buf.set(key, pos + 4);
  pos += 4 + key.length;
  const headers = record.headers ?? [];
  buf.writeUInt16BE(headers.length, pos);
  pos += 2;
  for (const header of headers) {
    const n = buf.write(header.key, pos + 2, "utf8");
    buf.writeUInt16BE(n, pos);
    pos += 2 + n;
    buf.writeUInt32BE(header.value.length, pos);
    buf.set(header.value, pos + 4);
    pos += 4 + header.value.length;
  }
  const payload = record.payload;
  buf.writeUInt32BE(payload.length, pos);
  pos += 4;
  let crc: number;
  if (externalPayload) {
    // The same checksum as over one contiguous frame, continued over the payload where it lies.
    crc = crc32c(payload, 0, payload.length, crc32c(buf, start + FRAME_PREFIX_BYTES, pos));
    buf.writeUInt32BE(pos - start - 4 + payload.length, start);
  } else {
    buf.set(payload, pos);
    pos += payload.length;
    crc = crc32c(buf, start + FRAME_PREFIX_BYTES, pos);
    buf.writeUInt32BE(pos - start - 4, start);
  }
  buf.writeUInt32BE(crc, start + 4);
  return pos;
}

/**
 * The total size of the frame starting at `pos` when its length field is plausible, else undefined.
 * Needs 4 readable bytes.
 */
export function frameSizeAt(buf: Buffer, pos: number): number | undefined {
  const size = buf.readUInt32BE(pos) + 4;
  return size < MIN_FRAME_BYTES || size > MAX_FRAME_BYTES ? undefined : size;
}

/** Throws FrameError unless the complete frame at `pos` (of `size` bytes) has a good CRC and magic. */
export function verifyFrame(buf: Buffer, pos: number, size: number): void {
  const stored = buf.readUInt32BE(pos + 4);
  const actual = crc32c(buf, pos + FRAME_PREFIX_BYTES, pos + size);
  if (stored !== actual) {
    throw new FrameError(`CRC32C mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
  }
  const magic = buf[pos + 8];
  if (magic !== RECORD_MAGIC) throw new FrameError(`unknown record format version ${magic}`);
}

/** The offset field of the frame at `pos` (only meaningful once the frame is verified). */
export function frameOffset(buf: Buffer, pos: number): number {
  return readU64Number(buf, pos + 10);
}

/** The timestamp field of the frame at `pos`. */
export function frameTimestamp(buf: Buffer, pos: number): number {
  return readU64Number(buf, pos + 18);
}

/**
 * Decodes the verified frame at `pos` of `size` bytes. Byte fields are views into `buf`. Throws
 * FrameError when the inner lengths do not add up (a CRC-valid but malformed frame). With `payload`,
 * the frame was encoded with an external payload: `buf` holds it up to the payload length field and
 * `payload` is the rest (`size` is still the whole frame's).
 */
export function decodeFrame(buf: Buffer, pos: number, size: number, payload?: Uint8Array): StoredRecord {
  const end = pos + size - (payload === undefined ? 0 : payload.length);
  const offset = readU64Number(buf, pos + 10);
  const timestamp = readU64Number(buf, pos + 18);
  const messageId = buf.readBigUInt64BE(pos + 26);
  let p = pos + 34;
  const need = (n: number): void => {
    if (p + n > end) throw new FrameError(`field runs past the end of the frame at byte ${p - pos}`);
  };
  need(2);
  const producerIdLength = buf.readUInt16BE(p);
  p += 2;
  need(producerIdLength);
  const producerId = producerIdLength === 0 ? "" : buf.toString("utf8", p, p + producerIdLength);
  p += producerIdLength;
  need(4);
  const keyLength = buf.readUInt32BE(p);
  p += 4;
  need(keyLength);
  const key = buf.subarray(p, p + keyLength);
  p += keyLength;
  need(2);
  const headerCount = buf.readUInt16BE(p);
  p += 2;
  const headers: RecordHeader[] = [];
  for (let i = 0; i < headerCount; i++) {
    need(2);
    const keyBytes = buf.readUInt16BE(p);
    p += 2;
    need(keyBytes);
    const headerKey = buf.toString("utf8", p, p + keyBytes);
    p += keyBytes;
    need(4);
    const valueBytes = buf.readUInt32BE(p);
    p += 4;
    need(valueBytes);
    headers.push({ key: headerKey, value: buf.subarray(p, p + valueBytes) });
    p += valueBytes;
  }
  need(4);
  const payloadLength = buf.readUInt32BE(p);
  p += 4;
  if (payload !== undefined) {
    if (p !== end || payloadLength !== payload.length) {
      throw new FrameError(`payload length ${payloadLength} does not match the frame length ${size}`);
    }
    return { offset, timestamp, producerId, messageId, key, headers, payload, sizeBytes: size };
  }
  if (p + payloadLength !== end) {
    throw new FrameError(`payload length ${payloadLength} does not match the frame length ${size}`);
  }
  return {
    offset,
    timestamp,
    producerId,
    messageId,
    key,
    headers,
    payload: buf.subarray(p, end),
    sizeBytes: size,
  };
}

/**
 * Throws FrameError unless the inner length fields of the CRC-valid frame at `pos` add up to its
 * `size`: the checks decodeFrame makes, without decoding (no strings, arrays or views).
 */
export function checkFrameFields(buf: Buffer, pos: number, size: number): void {
  const end = pos + size;
  let p = pos + 34; // after messageId, as in decodeFrame
  const skip = (lengthBytes: 2 | 4): void => {
    if (p + lengthBytes > end)
      throw new FrameError(`field runs past the end of the frame at byte ${p - pos}`);
    const n = lengthBytes === 2 ? buf.readUInt16BE(p) : buf.readUInt32BE(p);
    p += lengthBytes + n;
    if (p > end) throw new FrameError(`field runs past the end of the frame at byte ${p - pos}`);
  };
  skip(2); // producer id
  skip(4); // key
  if (p + 2 > end) throw new FrameError(`field runs past the end of the frame at byte ${p - pos}`);
  const headers = buf.readUInt16BE(p);
  p += 2;
  for (let i = 0; i < headers; i++) {
    skip(2);
    skip(4);
  }
  skip(4); // payload
  if (p !== end) throw new FrameError(`the frame's fields end at byte ${p - pos}, not at its length ${size}`);
}

/** Where the fields of a verified frame lie in its buffer, found without decoding any of them. */
export interface FrameLayout {
  buf: Buffer;
  offset: number;
  timestamp: number;
  /** The message id's high and low 32 bits (uint64). */
  messageIdHigh: number;
  messageIdLow: number;
  producerIdStart: number;
  producerIdLength: number;
  keyStart: number;
  keyLength: number;
  /** The first header's key length field, and how many headers follow (walk them with the lengths). */
  headersStart: number;
  headerCount: number;
  /** A view of the payload (in `buf`, or the external payload the frame was read with). */
  payload: Uint8Array;
}

/**
 * The layout of the verified frame at `pos` of `size` bytes (with `payload`: held apart, as in
 * decodeFrame). Throws FrameError when the inner lengths do not add up, as decodeFrame does.
 */
export function frameLayout(buf: Buffer, pos: number, size: number, payload?: Uint8Array): FrameLayout {
  const end = pos + size - (payload === undefined ? 0 : payload.length);
  let p = pos + 34;
  const need = (n: number): void => {
    if (p + n > end) throw new FrameError(`field runs past the end of the frame at byte ${p - pos}`);
  };
  need(2);
  const producerIdLength = buf.readUInt16BE(p);
  const producerIdStart = p + 2;
  p = producerIdStart + producerIdLength;
  need(4);
  const keyLength = buf.readUInt32BE(p);
  const keyStart = p + 4;
  p = keyStart + keyLength;
  need(2);
  const headerCount = buf.readUInt16BE(p);
  p += 2;
  const headersStart = p;
  for (let i = 0; i < headerCount; i++) {
    need(2);
    p += 2 + buf.readUInt16BE(p);
    need(4);
    p += 4 + buf.readUInt32BE(p);
  }
  need(4);
  const payloadLength = buf.readUInt32BE(p);
  p += 4;
  if (payload === undefined) {
    if (p + payloadLength !== end) {
      throw new FrameError(`payload length ${payloadLength} does not match the frame length ${size}`);
    }
    payload = buf.subarray(p, end);
  } else if (p !== end || payloadLength !== payload.length) {
    throw new FrameError(`payload length ${payloadLength} does not match the frame length ${size}`);
  }
  return {
    buf,
    offset: readU64Number(buf, pos + 10),
    timestamp: readU64Number(buf, pos + 18),
    messageIdHigh: buf.readUInt32BE(pos + 26),
    messageIdLow: buf.readUInt32BE(pos + 30),
    producerIdStart,
    producerIdLength,
    keyStart,
    keyLength,
    headersStart,
    headerCount,
    payload,
  };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}
