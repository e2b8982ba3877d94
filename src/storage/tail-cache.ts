import type { ReadCursor } from "./segment.js";

/** One write's buffer: consecutive frames, the first with offset `firstOffset`. */
interface Chunk {
  firstOffset: number;
  buf: Buffer;
  /** Start of each frame in `buf`. */
  starts: readonly number[];
  /** End of the last frame (shorter than buf after a truncation). */
  end: number;
  /**
   * Per frame, its payload when it was written from the caller's array (the frame in `buf` then stops
   * before the payload bytes); undefined when every payload is inline.
   */
  payloads: ReadonlyArray<Uint8Array | undefined> | undefined;
  /** Bytes held: `buf` plus the external payloads. */
  bytes: number;
}

/**
 * The buffers of the most recent writes, bounded by bytes (external payloads included: they are the
 * appender's arrays, kept by reference, so an appender must not modify them after `append`). Consumers and followers that keep up read
 * from here without a pread or a CRC pass (the bytes are the ones just written). Frames are decoded
 * only when read, so appends pay nothing but keeping a reference.
 */
export class TailCache {
  private chunks: Chunk[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Adds the frames of a write; a write that does not follow the cached ones restarts the cache. */
  push(
    firstOffset: number,
    buf: Buffer,
    starts: readonly number[],
    payloads?: ReadonlyArray<Uint8Array | undefined>,
  ): void {
    if (this.maxBytes <= 0 || starts.length === 0) return;
    const last = this.chunks[this.chunks.length - 1];
    if (last !== undefined && last.firstOffset + last.starts.length !== firstOffset) this.clear();
    let bytes = buf.length;
    if (payloads !== undefined) for (const p of payloads) bytes += p?.length ?? 0;
    this.chunks.push({ firstOffset, buf, starts, end: buf.length, payloads, bytes });
    this.bytes += bytes;
    while (this.bytes > this.maxBytes && this.chunks.length > 0) {
      this.bytes -= (this.chunks.shift() as Chunk).bytes;
    }
  }

  /**
   * Serves the read when it starts inside the cache (filling `cursor` like a segment read would) and
   * returns true; returns false when the disk has to serve it.
   */
  serve(cursor: ReadCursor): boolean {
    let c = this.chunkIndexOf(cursor.offset);
    if (c < 0) return false;
    for (; c < this.chunks.length; c++) {
      const chunk = this.chunks[c] as Chunk;
      for (let i = cursor.offset - chunk.firstOffset; i < chunk.starts.length; i++) {
        if (cursor.out.length >= cursor.maxRecords || chunk.firstOffset + i >= cursor.endOffset) return true;
        const start = chunk.starts[i] as number;
        const payload = chunk.payloads?.[i];
        const size = (chunk.starts[i + 1] ?? chunk.end) - start + (payload?.length ?? 0);
        if (cursor.out.length > 0 && cursor.bytes + size > cursor.maxBytes) return true;
        cursor.out.add(chunk.buf, start, size, payload);
        cursor.bytes += size;
        cursor.offset = chunk.firstOffset + i + 1;
      }
    }
    return true;
  }

  /** Forgets the records at or after `offset` (the log was cut there). */
  truncateFrom(offset: number): void {
    for (
      let last = this.chunks[this.chunks.length - 1];
      last !== undefined;
      last = this.chunks[this.chunks.length - 1]
    ) {
      if (last.firstOffset >= offset) {
        this.chunks.pop();
        this.bytes -= last.bytes;
        continue;
      }
      const keep = offset - last.firstOffset;
      if (keep < last.starts.length) {
        last.end = last.starts[keep] as number;
        last.starts = last.starts.slice(0, keep);
        if (last.payloads !== undefined) last.payloads = last.payloads.slice(0, keep);
      }
      break;
    }
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }

  private chunkIndexOf(offset: number): number {
    // Reads that keep up hit the newest chunks: search from the end.
    for (let c = this.chunks.length - 1; c >= 0; c--) {
      const chunk = this.chunks[c] as Chunk;
      if (offset >= chunk.firstOffset) return offset < chunk.firstOffset + chunk.starts.length ? c : -1;
    }
    return -1;
  }
}
