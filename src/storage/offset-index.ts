import { crc32c } from "./crc32c.js";

/**
 * The sparse offset index of one segment: (offset - baseOffset, byte position) pairs, one every
 * `indexIntervalBytes` of records, kept in memory (8 bytes per entry: 16 K entries for a full 64 MiB
 * segment at the 4 KiB default). A lookup returns the last entry at or before the wanted offset; the
 * reader scans forward from there, so at most one interval plus one record is read in vain.
 *
 * It is saved to `<base>.index` when the segment is sealed (rolled) and on a clean close, with a header
 * describing the segment it was built from, so a stale or torn index is detected and rebuilt by a scan.
 */
export class OffsetIndex {
  private data: Uint32Array;
  private count = 0;

  constructor(
    readonly baseOffset: number,
    initialCapacity = 64,
  ) {
    this.data = new Uint32Array(Math.max(2, initialCapacity * 2));
  }

  /** Number of entries. */
  get length(): number {
    return this.count;
  }

  /** Adds an entry; offsets and positions must increase. */
  add(offset: number, position: number): void {
    if (this.count * 2 === this.data.length) {
      const bigger = new Uint32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count * 2] = offset - this.baseOffset;
    this.data[this.count * 2 + 1] = position;
    this.count++;
  }

  /** The last entry at or before `offset`, or the segment start when there is none. */
  lookup(offset: number): { offset: number; position: number } {
    const relative = offset - this.baseOffset;
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.data[mid * 2] as number) <= relative) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0) return { offset: this.baseOffset, position: 0 };
    return {
      offset: this.baseOffset + (this.data[found * 2] as number),
      position: this.data[found * 2 + 1] as number,
    };
  }

  /** Drops the entries for offsets ≥ `offset` (the log was truncated there). */
  truncateFrom(offset: number): void {
    const relative = offset - this.baseOffset;
    while (this.count > 0 && (this.data[(this.count - 1) * 2] as number) >= relative) this.count--;
  }

  /** The entry at `i` (tests, serialisation). */
  entry(i: number): { offset: number; position: number } {
    return {
      offset: this.baseOffset + (this.data[i * 2] as number),
      position: this.data[i * 2 + 1] as number,
    };
  }

  /** The raw pairs, for saving. */
  pairs(): Uint32Array {
    return this.data.subarray(0, this.count * 2);
  }
}

/** What an index file says about the segment it was built from. */
export interface IndexFileMeta {
  baseOffset: number;
  /** The offset after the segment's last record. */
  nextOffset: number;
  /** Size of the segment file the index describes; a different size means the index is stale. */
  segmentBytes: number;
  /** Largest record timestamp in the segment, -1 when it is empty (time-based retention uses it). */
  maxTimestamp: number;
}

const INDEX_MAGIC = 0x47494458; // "GIDX"
const INDEX_VERSION = 1;
const HEADER_BYTES = 48;
const CRC_POSITION = 44;

/** Encodes an index file: a 48-byte header (see docs/storage.md) and the entries, checksummed. */
export function encodeIndexFile(meta: IndexFileMeta, index: OffsetIndex): Buffer {
  const pairs = index.pairs();
  const buf = Buffer.alloc(HEADER_BYTES + pairs.length * 4);
  buf.writeUInt32BE(INDEX_MAGIC, 0);
  buf[4] = INDEX_VERSION;
  buf.writeBigUInt64BE(BigInt(meta.baseOffset), 8);
  buf.writeBigUInt64BE(BigInt(meta.nextOffset), 16);
  buf.writeBigUInt64BE(BigInt(meta.segmentBytes), 24);
  buf.writeBigInt64BE(BigInt(meta.maxTimestamp), 32);
  buf.writeUInt32BE(index.length, 40);
  for (let i = 0; i < pairs.length; i++) buf.writeUInt32BE(pairs[i] as number, HEADER_BYTES + i * 4);
  buf.writeUInt32BE(indexChecksum(buf), CRC_POSITION);
  return buf;
}

/** Decodes an index file, or says why it cannot be trusted. */
export function decodeIndexFile(buf: Buffer): { meta: IndexFileMeta; index: OffsetIndex } | string {
  if (buf.length < HEADER_BYTES) return `index file is ${buf.length} bytes, shorter than its header`;
  if (buf.readUInt32BE(0) !== INDEX_MAGIC) return "bad index magic";
  if (buf[4] !== INDEX_VERSION) return `unknown index version ${buf[4]}`;
  const count = buf.readUInt32BE(40);
  if (buf.length !== HEADER_BYTES + count * 8)
    return `index says ${count} entries but is ${buf.length} bytes`;
  if (buf.readUInt32BE(CRC_POSITION) !== indexChecksum(buf)) return "index checksum mismatch";
  const meta: IndexFileMeta = {
    baseOffset: Number(buf.readBigUInt64BE(8)),
    nextOffset: Number(buf.readBigUInt64BE(16)),
    segmentBytes: Number(buf.readBigUInt64BE(24)),
    maxTimestamp: Number(buf.readBigInt64BE(32)),
  };
  const index = new OffsetIndex(meta.baseOffset, count);
  let lastRelative = -1;
  let lastPosition = -1;
  for (let i = 0; i < count; i++) {
    const relative = buf.readUInt32BE(HEADER_BYTES + i * 8);
    const position = buf.readUInt32BE(HEADER_BYTES + i * 8 + 4);
    if (relative <= lastRelative || position <= lastPosition || position >= meta.segmentBytes) {
      return `index entry ${i} is out of order or out of bounds`;
    }
    lastRelative = relative;
    lastPosition = position;
    index.add(meta.baseOffset + relative, position);
  }
  return { meta, index };
}

function indexChecksum(buf: Buffer): number {
  return crc32c(buf, HEADER_BYTES, buf.length, crc32c(buf, 0, CRC_POSITION));
}
