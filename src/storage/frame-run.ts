import {
  FrameError,
  MIN_FRAME_BYTES,
  checkFrameFields,
  decodeFrame,
  frameOffset,
  frameSizeAt,
  frameTimestamp,
  verifyFrame,
  type StoredRecord,
} from "./record-format.js";

/**
 * Runs of stored frames: consecutive records in the log's own byte format (record-format.ts), as a
 * leader ships them to followers. A follower that stores the bytes it was sent, instead of decoding
 * records and encoding them again, writes exactly what the leader wrote: no per-record encoding, no
 * per-record objects, and the CRC the leader computed is checked rather than recomputed from fields.
 */

/** Where a read puts the frames it takes: decoded records, or the frames' bytes as stored. */
export interface FrameSink {
  /** Frames taken so far. */
  readonly length: number;
  /**
   * Takes the verified frame at `pos` of `size` bytes. With `payload`, the frame's payload is held
   * apart (written in place, see encodeFrame) and `buf` ends before it. Throws FrameError when the
   * frame cannot be taken.
   */
  add(buf: Buffer, pos: number, size: number, payload?: Uint8Array): void;
}

/** Decodes every frame it takes (what consumers and the per-record paths read). */
export class RecordSink implements FrameSink {
  readonly records: StoredRecord[] = [];

  get length(): number {
    return this.records.length;
  }

  add(buf: Buffer, pos: number, size: number, payload?: Uint8Array): void {
    this.records.push(decodeFrame(buf, pos, size, payload));
  }
}

/** Keeps the frames' bytes, gathering adjacent ones of the same buffer into one piece. */
export class FrameBytesSink implements FrameSink {
  #count = 0;
  #bytes = 0;
  readonly #pieces: Uint8Array[] = [];
  #open: { buf: Buffer; start: number; end: number } | undefined;

  get length(): number {
    return this.#count;
  }

  add(buf: Buffer, pos: number, size: number, payload?: Uint8Array): void {
    const inBuffer = size - (payload?.length ?? 0);
    const open = this.#open;
    if (open !== undefined && open.buf === buf && open.end === pos) open.end = pos + inBuffer;
    else {
      this.#close();
      this.#open = { buf, start: pos, end: pos + inBuffer };
    }
    if (payload !== undefined) {
      this.#close();
      this.#pieces.push(payload);
    }
    this.#count++;
    this.#bytes += size;
  }

  /** The frames taken, as one array (a view when they came from one piece, else one copy). */
  bytes(): Uint8Array {
    this.#close();
    if (this.#pieces.length === 1) return this.#pieces[0] as Uint8Array;
    return Buffer.concat(this.#pieces, this.#bytes);
  }

  #close(): void {
    const open = this.#open;
    if (open === undefined) return;
    this.#pieces.push(open.buf.subarray(open.start, open.end));
    this.#open = undefined;
  }
}

/** A run of frames read from a log: `count` records from `firstOffset` on. */
export interface FrameRun {
  firstOffset: number;
  count: number;
  bytes: Uint8Array;
}

/** A run of frames checked for appending as they are (see checkFrameRun). */
export class CheckedFrameRun {
  constructor(
    /** The frames, back to back. */
    readonly bytes: Buffer,
    /** Where each frame starts in `bytes`. */
    readonly starts: readonly number[],
    readonly firstOffset: number,
    /** Largest record timestamp in the run. */
    readonly maxTimestamp: number,
  ) {}

  get count(): number {
    return this.starts.length;
  }
}

/**
 * Checks that `bytes` is a whole number of good frames whose offsets follow one another, each at most
 * `maxRecordBytes` long, and returns where they start; throws FrameError saying what is wrong
 * otherwise. Every check a reader would make later is made here, so what is appended reads back:
 * length, CRC, format version and the inner field lengths.
 */
export function checkFrameRun(bytes: Uint8Array, maxRecordBytes: number): CheckedFrameRun {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw new FrameError("a run of frames needs at least one frame");
  const starts: number[] = [];
  let first = 0;
  let maxTimestamp = -1;
  for (let pos = 0; pos < buf.length;) {
    const index = starts.length;
    if (buf.length - pos < MIN_FRAME_BYTES) {
      throw new FrameError(`frame ${index} is cut short: ${buf.length - pos} bytes left at byte ${pos}`);
    }
    const size = frameSizeAt(buf, pos);
    if (size === undefined || pos + size > buf.length) {
      throw new FrameError(`frame ${index} at byte ${pos} has an impossible length`);
    }
    if (size > maxRecordBytes) {
      throw new FrameError(`frame ${index} is ${size} bytes, above the limit of ${maxRecordBytes}`);
    }
    verifyFrame(buf, pos, size);
    checkFrameFields(buf, pos, size);
    const offset = frameOffset(buf, pos);
    if (index === 0) first = offset;
    else if (offset !== first + index) {
      throw new FrameError(`frame ${index} has offset ${offset} where ${first + index} was expected`);
    }
    const timestamp = frameTimestamp(buf, pos);
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    starts.push(pos);
    pos += size;
  }
  return new CheckedFrameRun(buf, starts, first, maxTimestamp);
}
