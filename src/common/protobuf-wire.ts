/**
 * Protocol-buffer wire primitives for messages encoded by hand into a buffer sized up front (the broker's
 * pre-encoded responses: fetch-encoding.ts, session-encoding.ts). Sizes first, then writes; each write
 * returns the position after it. The bytes are those protobuf-es writes for the same fields.
 */

const TWO_POW_32 = 0x1_0000_0000;

/** Bytes of the varint of a non-negative safe integer. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let size = 4;
  let rest = Math.floor(value / 0x1000_0000);
  while (rest > 0) {
    size++;
    rest = Math.floor(rest / 0x80);
  }
  return size;
}

export function bigVarintSize(value: bigint): number {
  if (value <= BigInt(Number.MAX_SAFE_INTEGER)) return varintSize(Number(value));
  let size = 1;
  for (let rest = value >> 7n; rest > 0n; rest >>= 7n) size++;
  return size;
}

export function writeVarint(buf: Buffer, pos: number, value: number): number {
  while (value >= TWO_POW_32) {
    buf[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value >= 0x80) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[pos++] = value;
  return pos;
}

export function writeBigVarint(buf: Buffer, pos: number, value: bigint): number {
  if (value <= BigInt(Number.MAX_SAFE_INTEGER)) return writeVarint(buf, pos, Number(value));
  while (value >= 0x80n) {
    buf[pos++] = Number(value & 0x7fn) | 0x80;
    value >>= 7n;
  }
  buf[pos++] = Number(value);
  return pos;
}

/** A length-delimited field's bytes: tag, length varint, content. */
export function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

export function writeBytes(buf: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

/** A length-delimited field of `length` bytes of `from` at `start` (writeBytes without a view). */
export function writeSlice(
  out: Buffer,
  pos: number,
  tag: number,
  from: Buffer,
  start: number,
  length: number,
): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, length);
  from.copy(out, pos, start, start + length);
  return pos + length;
}

export function writeString(buf: Buffer, pos: number, tag: number, text: string): number {
  buf[pos++] = tag;
  const length = Buffer.byteLength(text, "utf8");
  pos = writeVarint(buf, pos, length);
  return pos + buf.write(text, pos, length, "utf8");
}

/** A varint field (tag, value), left out when the value is 0 (proto3's default). */
export function writeVarintField(buf: Buffer, pos: number, tag: number, value: number): number {
  if (value === 0) return pos;
  buf[pos++] = tag;
  return writeVarint(buf, pos, value);
}
