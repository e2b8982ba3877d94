/**
 * One segment of a partition log and the file I/O helpers it needs. Longer than ~400 lines because
 * opening (with recovery of a torn or damaged tail), scanning, reading and saving the index all keep
 * the same invariants of one file (size, next offset, index), which the class owns.
 */
import path from "node:path";

import type { Logger } from "../observability/logger.js";
import { CorruptRecordError } from "./errors.js";
import { classifyTail } from "./recovery-scan.js";
import { pinFile, unpinFile } from "./file-cache.js";
import type { StorageFile, StorageFileSystem } from "./file-system.js";
import { OffsetIndex, decodeIndexFile, encodeIndexFile } from "./offset-index.js";
import type { FrameSink } from "./frame-run.js";
import { FrameError, frameOffset, frameSizeAt, frameTimestamp, verifyFrame } from "./record-format.js";
import type { SegmentTail } from "./write-group.js";

/** `00000000000000000042` for base offset 42: names sort in offset order. */
export function segmentName(baseOffset: number): string {
  return String(baseOffset).padStart(20, "0");
}

/** The base offset of a segment data file name, or undefined for other files. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = /^(\d{20})\.log$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * Records recovery had to cut from the active segment although valid frames followed the damage (not
 * a torn tail): `[fromOffset, toOffset)` at least were written, and must be fetched again from a replica.
 */
export interface LogDamage {
  fromOffset: number;
  toOffset: number;
  reason: string;
}

/** Where a scan stopped early, and why. */
export interface FrameProblem {
  position: number;
  reason: string;
}

/** What a read collects into; the log shares one across the segments it visits. */
export interface ReadCursor {
  /** Next offset wanted. */
  offset: number;
  /** Stop before this offset. */
  endOffset: number;
  maxRecords: number;
  maxBytes: number;
  bytes: number;
  /** What the read takes: decoded records or the frames' bytes. */
  out: FrameSink;
}

const SCAN_CHUNK_BYTES = 1 << 20;
const MIN_READ_CHUNK_BYTES = 64 << 10;

/**
 * One segment: a data file of frames starting at `baseOffset`, its in-memory sparse index, and what is
 * known about it (size, next offset, largest timestamp). The partition log owns the write path and
 * serialises every mutation; a segment only knows how to read, scan, truncate and save its index.
 */
export class Segment {
  #size: number;
  /** Set by recovery when the active segment was cut at corruption followed by valid frames. */
  damage: LogDamage | undefined = undefined;
  #nextOffset: number;
  #maxTimestamp: number;
  #bytesSinceIndex = 0;
  private refs = 0;
  private retired = false;
  private closed = false;

  private constructor(
    readonly baseOffset: number,
    readonly file: StorageFile,
    readonly dataPath: string,
    readonly indexPath: string,
    public index: OffsetIndex,
    size: number,
    nextOffset: number,
    maxTimestamp: number,
  ) {
    this.#size = size;
    this.#nextOffset = nextOffset;
    this.#maxTimestamp = maxTimestamp;
  }

  /** Bytes of valid frames; reads never go past it (bytes beyond are an unacknowledged write). */
  get size(): number {
    return this.#size;
  }

  /** Offset after the last record. */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /** Largest record timestamp, -1 while empty. Stays conservative (may be too high) after a truncation. */
  get maxTimestamp(): number {
    return this.#maxTimestamp;
  }

  /** Bytes written since the last index entry. */
  get bytesSinceIndex(): number {
    return this.#bytesSinceIndex;
  }

  /** The end of the segment as the write-group encoder continues it. */
  get tail(): SegmentTail {
    return {
      size: this.#size,
      nextOffset: this.#nextOffset,
      bytesSinceIndex: this.#bytesSinceIndex,
      maxTimestamp: this.#maxTimestamp,
    };
  }

  /**
   * A write continuing the segment is complete on file: from now on reads see it. `tail` and the
   * index entries are the encoder's (see write-group.ts); the tail must continue this one.
   */
  commitWrite(tail: SegmentTail, indexEntries: readonly number[]): void {
    if (tail.size < this.#size || tail.nextOffset < this.#nextOffset) {
      throw new Error(
        `a write must continue ${this.dataPath} (at ${this.#nextOffset}, ${this.#size} bytes), ` +
          `got ${tail.nextOffset}, ${tail.size} bytes`,
      );
    }
    this.#size = tail.size;
    this.#nextOffset = tail.nextOffset;
    for (let i = 0; i < indexEntries.length; i += 2) {
      this.index.add(indexEntries[i] as number, indexEntries[i + 1] as number);
    }
    this.#bytesSinceIndex = tail.bytesSinceIndex;
    this.#maxTimestamp = tail.maxTimestamp;
  }

  /**
   * Forgets everything from `offset` (at byte `size`) on, in memory only: the caller cuts the file. The
   * largest timestamp is kept (conservative).
   */
  cutTo(size: number, offset: number): void {
    this.#size = size;
    this.#nextOffset = offset;
    this.index.truncateFrom(offset);
    const entries = this.index.length;
    this.#bytesSinceIndex = size - (entries > 0 ? this.index.entry(entries - 1).position : 0);
  }

  /** Creates a new empty segment file (the caller syncs the directory). */
  static async create(fs: StorageFileSystem, dir: string, baseOffset: number): Promise<Segment> {
    const name = segmentName(baseOffset);
    const dataPath = path.join(dir, `${name}.log`);
    const file = await fs.open(dataPath, "create");
    return new Segment(
      baseOffset,
      file,
      dataPath,
      path.join(dir, `${name}.index`),
      new OffsetIndex(baseOffset),
      0,
      baseOffset,
      -1,
    );
  }

  /**
   * Opens an existing segment. A saved index is trusted only when its checksum is good and it describes
   * a file of exactly this size; otherwise the segment is scanned. The last segment (`active`) is cut at
   * its first bad frame: that is a torn write from a crash. Earlier segments were synced before the log
   * rolled past them, so a bad frame there is real damage: it is logged, kept, and reported by reads.
   */
  static async open(
    fs: StorageFileSystem,
    dir: string,
    baseOffset: number,
    options: {
      active: boolean;
      nextSegmentBase: number | undefined;
      indexIntervalBytes: number;
      logger: Logger;
    },
  ): Promise<Segment> {
    const name = segmentName(baseOffset);
    const dataPath = path.join(dir, `${name}.log`);
    const indexPath = path.join(dir, `${name}.index`);
    const file = await fs.open(dataPath, "read-write");
    try {
      const fileSize = await file.size();
      const saved = await readIndexFile(fs, indexPath);
      if (
        typeof saved === "object" &&
        saved.meta.baseOffset === baseOffset &&
        saved.meta.segmentBytes === fileSize
      ) {
        const { meta, index } = saved;
        const segment = new Segment(
          baseOffset,
          file,
          dataPath,
          indexPath,
          index,
          fileSize,
          meta.nextOffset,
          meta.maxTimestamp,
        );
        segment.#bytesSinceIndex = fileSize - (index.length > 0 ? index.entry(index.length - 1).position : 0);
        return segment;
      }
      if (typeof saved === "string") {
        options.logger.warn(
          { segment: dataPath, reason: saved },
          "segment index unusable, rebuilding it by a scan",
        );
      } else if (saved !== undefined) {
        options.logger.warn({ segment: dataPath }, "segment index is stale, rebuilding it by a scan");
      }
      const segment = new Segment(
        baseOffset,
        file,
        dataPath,
        indexPath,
        new OffsetIndex(baseOffset),
        fileSize,
        baseOffset,
        -1,
      );
      const problem = await segment.rebuild(fileSize, options.indexIntervalBytes);
      if (problem === undefined && !options.active) {
        // Sealed segments do not change again: save the rebuilt index so the next open skips the scan.
        await segment.saveIndex(fs).catch((err: unknown) => {
          options.logger.warn({ err, segment: dataPath }, "cannot save the rebuilt index");
        });
      }
      if (problem !== undefined) {
        if (options.active) {
          const rest = Buffer.alloc(fileSize - problem.position);
          await readFully(file, rest, problem.position);
          const verdict = classifyTail(rest, segment.nextOffset);
          if (verdict.kind === "corruption") {
            // Cut all the same, so the log stays contiguous; the partition refuses to lead and fetches
            // the range again from a replica (see Partition: damaged replicas).
            segment.damage = {
              fromOffset: segment.nextOffset,
              toOffset: verdict.endOffset,
              reason: problem.reason,
            };
            options.logger.error(
              {
                segment: dataPath,
                position: problem.position,
                fromOffset: segment.nextOffset,
                toOffset: verdict.endOffset,
                reason: problem.reason,
              },
              "corrupt record followed by valid records in the active segment (not a torn write); " +
                "cutting it, the replica must fetch these records again from another replica",
            );
          }
          options.logger.warn(
            {
              segment: dataPath,
              position: problem.position,
              bytesCut: fileSize - problem.position,
              nextOffset: segment.nextOffset,
              reason: problem.reason,
            },
            "cutting the torn tail of the log",
          );
          await file.truncate(problem.position);
          await file.datasync();
          segment.#size = problem.position;
        } else {
          // Keep the bytes: reads reaching the bad frame fail with CorruptRecordError instead of
          // silently skipping offsets.
          options.logger.error(
            {
              segment: dataPath,
              position: problem.position,
              offset: segment.nextOffset,
              reason: problem.reason,
            },
            "corrupt record in a sealed segment; reads from this offset will fail",
          );
          segment.#size = fileSize;
          if (options.nextSegmentBase !== undefined) segment.#nextOffset = options.nextSegmentBase;
        }
      }
      return segment;
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
  }

  /** Scans the whole file, rebuilding index, next offset and max timestamp; returns where it stopped. */
  private async rebuild(fileSize: number, indexIntervalBytes: number): Promise<FrameProblem | undefined> {
    let expected = this.baseOffset;
    let sinceIndex = 0;
    let maxTimestamp = -1;
    let position = 0;
    const problem = await this.scanFrames(0, fileSize, SCAN_CHUNK_BYTES, (buf, pos, size) => {
      const offset = frameOffset(buf, pos);
      if (offset !== expected) return `offset ${offset} where ${expected} was expected`;
      if (sinceIndex >= indexIntervalBytes) {
        this.index.add(offset, position);
        sinceIndex = 0;
      }
      maxTimestamp = Math.max(maxTimestamp, frameTimestamp(buf, pos));
      sinceIndex += size;
      position += size;
      expected++;
      return true;
    });
    this.#nextOffset = expected;
    this.#maxTimestamp = maxTimestamp;
    this.#bytesSinceIndex = sinceIndex;
    this.#size = position;
    return problem;
  }

  /**
   * Reads verified frames from `position` up to `limit`, calling `visit` with each (buffer, start,
   * size). `visit` returns true to go on, false to stop, or a string to stop with a problem. Stops with a
   * problem at the first frame that is incomplete, implausible or fails its CRC.
   */
  async scanFrames(
    position: number,
    limit: number,
    chunkBytes: number,
    visit: (buf: Buffer, pos: number, size: number) => boolean | string,
  ): Promise<FrameProblem | undefined> {
    let buf = Buffer.alloc(0);
    let bufStart = position;
    const fill = async (need: number): Promise<boolean> => {
      const length = Math.min(Math.max(chunkBytes, need), limit - position);
      buf = Buffer.allocUnsafe(length);
      bufStart = position;
      const got = await readFully(this.file, buf, position);
      if (got < length) buf = buf.subarray(0, got);
      return got >= need;
    };
    while (position < limit) {
      if (position + 4 > bufStart + buf.length && !(await fill(4))) {
        return { position, reason: "incomplete frame header at the end of the file" };
      }
      const size = frameSizeAt(buf, position - bufStart);
      if (size === undefined) return { position, reason: "implausible frame length" };
      if (position + size > limit) return { position, reason: "incomplete frame at the end of the file" };
      if (position + size > bufStart + buf.length && !(await fill(size))) {
        return { position, reason: "incomplete frame at the end of the file" };
      }
      const pos = position - bufStart;
      try {
        verifyFrame(buf, pos, size);
      } catch (err) {
        if (err instanceof FrameError) return { position, reason: err.message };
        throw err;
      }
      const verdict = visit(buf, pos, size);
      if (typeof verdict === "string") return { position, reason: verdict };
      if (!verdict) return undefined;
      position += size;
    }
    return undefined;
  }

  /**
   * Appends to `cursor.out` the records from `cursor.offset` on, within the cursor's limits and this
   * segment's current end. Throws CorruptRecordError at a bad frame.
   */
  async read(cursor: ReadCursor, indexIntervalBytes: number): Promise<void> {
    const limit = this.size;
    const lastOffset = this.nextOffset;
    if (cursor.offset >= lastOffset) return;
    const start = this.index.lookup(cursor.offset);
    let expected = start.offset;
    // Read about what the record limit needs, not the whole byte budget: a 500-record fetch of 100 B
    // records would otherwise pread (and allocate) 1 MiB to use 75 KB. The segment's average frame
    // size is the estimate; a short guess only costs another read (scanFrames refills).
    const stored = this.nextOffset - this.baseOffset;
    const average = stored > 0 ? this.size / stored : 0;
    const wantRecords = cursor.maxRecords - cursor.out.length;
    const estimate = average > 0 ? Math.ceil(average * wantRecords * 1.25) : Infinity;
    const wantBytes = Math.min(cursor.maxBytes - cursor.bytes, estimate, 64 << 20);
    const chunk = Math.max(MIN_READ_CHUNK_BYTES, indexIntervalBytes + wantBytes);
    let position = start.position;
    let failure: string | undefined;
    const problem = await this.scanFrames(start.position, limit, chunk, (buf, pos, size) => {
      const offset = frameOffset(buf, pos);
      if (offset !== expected) return `offset ${offset} where ${expected} was expected`;
      if (offset >= cursor.endOffset || cursor.out.length >= cursor.maxRecords) return false;
      if (offset >= cursor.offset) {
        // At least one record per read, even above maxBytes, so a consumer always makes progress.
        if (cursor.out.length > 0 && cursor.bytes + size > cursor.maxBytes) return false;
        try {
          cursor.out.add(buf, pos, size);
        } catch (err) {
          if (err instanceof FrameError) return (failure = err.message);
          throw err;
        }
        cursor.bytes += size;
        cursor.offset = offset + 1;
      }
      expected++;
      position += size;
      return true;
    });
    if (problem !== undefined) {
      throw new CorruptRecordError(expected, this.dataPath, problem.position, failure ?? problem.reason);
    }
    if (
      position >= limit &&
      expected < lastOffset &&
      cursor.offset < lastOffset &&
      cursor.out.length < cursor.maxRecords
    ) {
      // The segment ended before the offsets it claims: only a damaged sealed segment does that.
      throw new CorruptRecordError(
        expected,
        this.dataPath,
        position,
        "records missing before the end of the segment",
      );
    }
  }

  /**
   * The byte position of the record with `offset` (or the end when offset = nextOffset), found through
   * the index and a short scan.
   */
  async positionOf(offset: number): Promise<number> {
    if (offset >= this.nextOffset) return this.size;
    const start = this.index.lookup(offset);
    let expected = start.offset;
    let position = start.position;
    const problem = await this.scanFrames(start.position, this.size, SCAN_CHUNK_BYTES, (buf, pos, size) => {
      if (frameOffset(buf, pos) !== expected)
        return `offset ${frameOffset(buf, pos)} where ${expected} was expected`;
      if (expected === offset) return false;
      expected++;
      position += size;
      return true;
    });
    if (problem !== undefined)
      throw new CorruptRecordError(expected, this.dataPath, problem.position, problem.reason);
    return position;
  }

  /** Writes the index file atomically (temp file, fsync, rename); the caller syncs the directory. */
  async saveIndex(fs: StorageFileSystem): Promise<void> {
    const bytes = encodeIndexFile(
      {
        baseOffset: this.baseOffset,
        nextOffset: this.nextOffset,
        segmentBytes: this.size,
        maxTimestamp: this.maxTimestamp,
      },
      this.index,
    );
    const tmp = `${this.indexPath}.tmp`;
    await fs.unlink(tmp).catch(() => undefined);
    const file = await fs.open(tmp, "create");
    try {
      await writeFully(file, bytes, 0);
      await file.datasync();
    } finally {
      await file.close();
    }
    await fs.rename(tmp, this.indexPath);
  }

  /** Removes the saved index: the segment is being written again, so it would go stale. */
  async dropIndexFile(fs: StorageFileSystem): Promise<void> {
    await fs.unlink(this.indexPath).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /** Pins the file open for a read (a file cache does not close it under the reader either). */
  acquire(): void {
    this.refs++;
    pinFile(this.file);
  }

  release(): void {
    this.refs--;
    unpinFile(this.file);
    if (this.refs === 0 && this.retired) void this.closeFile().catch(() => undefined);
  }

  /** Replaced by a repaired file at the same path: the handle closes once the last reader releases it. */
  async supersede(): Promise<void> {
    this.retired = true;
    if (this.refs === 0) await this.closeFile();
  }

  /** Deletes the files; the handle closes once the last reader releases it. */
  async retire(fs: StorageFileSystem): Promise<void> {
    this.retired = true;
    await fs.unlink(this.dataPath);
    await this.dropIndexFile(fs);
    if (this.refs === 0) await this.closeFile();
  }

  async closeFile(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }
}

async function readIndexFile(
  fs: StorageFileSystem,
  indexPath: string,
): Promise<ReturnType<typeof decodeIndexFile> | undefined> {
  let file: StorageFile;
  try {
    file = await fs.open(indexPath, "read");
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  try {
    const size = await file.size();
    const buf = Buffer.allocUnsafe(size);
    const got = await readFully(file, buf, 0);
    return decodeIndexFile(buf.subarray(0, got));
  } finally {
    await file.close();
  }
}

/** Reads until the buffer is full or the file ends; returns the bytes read. */
export async function readFully(file: StorageFile, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Writes the whole buffer at `position`, looping over short writes. */
export async function writeFully(file: StorageFile, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await file.write(buf, done, buf.length - done, position + done);
    if (n <= 0) throw new Error(`short write: ${done} of ${buf.length} bytes at ${position}`);
    done += n;
  }
}

/** Writes all of `buffers`, back to back, at `position` with gathered writes, looping over short ones. */
export async function writevFully(
  file: StorageFile,
  buffers: readonly Uint8Array[],
  position: number,
): Promise<void> {
  let rest = buffers;
  let done = 0;
  while (rest.length > 0) {
    const n = await file.writev(rest, position + done);
    if (n <= 0) throw new Error(`short write: ${done} bytes at ${position}`);
    done += n;
    let skip = n;
    let i = 0;
    while (i < rest.length && skip >= (rest[i] as Uint8Array).length)
      skip -= (rest[i++] as Uint8Array).length;
    rest = rest.slice(i);
    if (skip > 0 && rest.length > 0) rest = [(rest[0] as Uint8Array).subarray(skip), ...rest.slice(1)];
  }
}

export function isNotFound(err: unknown): boolean {
  return (
    typeof err === "object" && err !== null && "code" in err && (err as { code: unknown }).code === "ENOENT"
  );
}
