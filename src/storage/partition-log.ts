/**
 * A partition's log: the public interface and its file-backed shell. The pure parts live beside it —
 * write-group.ts (which appends go into a write, and the frames, index entries and segment tail it
 * produces), durability.ts (the fsync policy and group commit), log-segments.ts (opening the segment
 * list, reading across it), front-cuts.ts (which old segments retention and DeleteRecords delete) —
 * and Segment keeps its own size, offsets and index (`commitWrite`, `cutTo`). What is left here is
 * longer than ~400 lines because every mutation shares one queue, one segment list and one tail
 * cache: appends, rolls, the cuts (truncation, reset, rollback after a failed fsync), retention and
 * close stay together so their ordering is visible in one place.
 */
import path from "node:path";

import { FailedPreconditionError, GouletteError, InvalidArgumentError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { DurabilityLoop, type DurabilityHost } from "./durability.js";
import {
  LogClosedError,
  NonContiguousOffsetError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  StorageError,
} from "./errors.js";
import { nodeFileSystem } from "./file-system.js";
import { openSegments, readSegments } from "./log-segments.js";
import {
  MAX_BATCH_BYTES,
  resolveOptions,
  type PartitionLogOptions,
  type ResolvedPartitionLogOptions,
} from "./partition-log-options.js";
import { FrameBytesSink, RecordSink, checkFrameRun, type FrameRun, type FrameSink } from "./frame-run.js";
import { belowLogStartCut, retentionCut, type SegmentExtent } from "./front-cuts.js";
import {
  FrameError,
  frameSize,
  type AppendRecord,
  type ReplicatedRecord,
  type StoredRecord,
} from "./record-format.js";
import {
  Segment,
  isNotFound,
  segmentName,
  writeFully,
  writevFully,
  type LogDamage,
  type ReadCursor,
} from "./segment.js";
import { TailCache } from "./tail-cache.js";
import { readLogStart, removeLogStart, writeLogStart } from "./log-start-file.js";
import { replaceSegmentTail } from "./segment-replace.js";
import { verifySegment, type SegmentDamage, type VerifyPace } from "./segment-verify.js";
import {
  MAX_GROUP_BYTES,
  encodeWriteGroup,
  needsRoll,
  takeWriteGroup,
  type AppendBatch,
  type AppendResult,
  type QueuedAppend,
} from "./write-group.js";

export type { AppendResult } from "./write-group.js";

export interface ReadOptions {
  /** Return no record at or past this offset (e.g. the high watermark). Default: the log end. */
  endOffset?: number;
}

/** One segment as seen from outside (tests, metrics, admin). */
export interface SegmentInfo {
  baseOffset: number;
  nextOffset: number;
  sizeBytes: number;
  path: string;
  maxTimestamp: number;
}

export interface RetentionResult {
  deletedSegments: number;
  deletedBytes: number;
  logStartOffset: number;
}

/** Counters since open. */
export interface PartitionLogStats {
  /** Append calls that succeeded (leader and replicated). */
  appends: number;
  recordsAppended: number;
  bytesAppended: number;
  /** Data write calls: several concurrent appends coalesce into one. */
  writes: number;
  /** Data fsyncs (group commits, rolls, truncations, close). */
  fsyncs: number;
  fsyncSeconds: number;
  writeErrors: number;
  fsyncErrors: number;
  segmentsRolled: number;
  segmentsDeleted: number;
  reads: number;
  tailCacheHits: number;
}

/**
 * A partition's durable append-only log: segment files named by base offset, each with a sparse index.
 * Mutations (appends, truncations, retention, close) run one at a time in arrival order; reads run
 * concurrently with them. Offsets are plain numbers (they stay far below 2^53).
 */
export interface PartitionLog {
  readonly dir: string;
  /** First offset still stored. */
  readonly logStartOffset: number;
  /**
   * Records recovery cut although valid ones followed the damage (see LogDamage); undefined when the
   * log opened clean or only a torn tail was cut.
   */
  readonly damage: LogDamage | undefined;
  /** The offset the next record gets. */
  readonly logEndOffset: number;
  /** Every record below it has been fsynced (reads may return records at or above it). */
  readonly durableOffset: number;
  /**
   * How long the oldest write not fsynced yet has waited (ms, from performance.now(); 0 when every
   * write is on disk).
   */
  unsyncedAgeMs(now?: number): number;
  /** Bytes of all segments. */
  readonly sizeBytes: number;
  /**
   * Appends records with the next offsets. Resolves once durable per the fsync policy; rejects with
   * RecordTooLargeError / InvalidArgumentError (nothing written) or StorageError (nothing readable
   * left behind; the log stays usable).
   */
  append(records: readonly AppendRecord[]): Promise<AppendResult>;
  /**
   * Follower path: stores records with the leader's offsets and timestamps. The first must equal
   * logEndOffset and the rest follow one by one, else NonContiguousOffsetError.
   */
  appendReplicated(records: readonly ReplicatedRecord[]): Promise<AppendResult>;
  /**
   * Follower path: stores frames copied from a leader (readFrames there) as they are. Every frame is
   * checked first (length, CRC, format, offsets one by one, the record size limit): a bad run is
   * refused whole with InvalidArgumentError, nothing written. The first offset must equal
   * logEndOffset, else NonContiguousOffsetError.
   */
  appendFrames(frames: Uint8Array): Promise<AppendResult>;
  /**
   * Records from `fromOffset` on: at most `maxRecords`, and no more than `maxBytes` of frames except that
   * the first record is always returned. [] at the log end; OffsetOutOfRangeError outside
   * [logStartOffset, logEndOffset]; CorruptRecordError at a damaged record.
   */
  read(
    fromOffset: number,
    maxRecords?: number,
    maxBytes?: number,
    options?: ReadOptions,
  ): Promise<StoredRecord[]>;
  /** As read, but the frames' bytes as stored (what a follower appends with appendFrames). */
  readFrames(
    fromOffset: number,
    maxRecords?: number,
    maxBytes?: number,
    options?: ReadOptions,
  ): Promise<FrameRun>;
  /**
   * As read, into a sink of the caller's: each frame as verified (CRC, format), before any decoding.
   * `newSink` is called again when a cut (truncation, rollback) during the read makes it start over.
   */
  readInto<S extends FrameSink>(
    newSink: () => S,
    fromOffset: number,
    maxRecords?: number,
    maxBytes?: number,
    options?: ReadOptions,
  ): Promise<S>;
  /** Resolves once everything appended so far is fsynced (useful in "interval" mode). */
  flush(): Promise<void>;
  /**
   * Deletes every record at or after `offset`, across segments (a follower that diverged from a new
   * leader). No-op at or past the end; at or below the start it empties the log like resetTo.
   */
  truncateTo(offset: number): Promise<void>;
  /** Deletes everything; the log restarts empty at `offset` (a follower behind the leader's start). */
  resetTo(offset: number): Promise<void>;
  /** Deletes whole old segments per retentionMs / retentionBytes; never the active segment. */
  enforceRetention(now?: number): Promise<RetentionResult>;
  /**
   * Deletes every record below `offset` (an operator's DeleteRecords, or a follower adopting its
   * leader's log start): reads start there from now on, recorded durably before it resolves, and the
   * segments wholly below it are removed (the active one is rolled first when `offset` is the log end,
   * so a purge frees every byte). No-op at or below the log start; InvalidArgumentError past the log end.
   */
  deleteRecordsBefore(offset: number): Promise<RetentionResult>;
  /** Calls `listener(logEndOffset)` after each write becomes readable; returns the unsubscribe function. */
  onAppend(listener: (logEndOffset: number) => void): () => void;
  segments(): SegmentInfo[];
  /**
   * Reads the sealed segment starting at `baseOffset` again, checking every frame (see
   * segment-verify.ts). "gone" when it is no longer a sealed segment of the log (retention, truncation).
   */
  verifySegment(baseOffset: number, pace: VerifyPace): Promise<SegmentDamage | "clean" | "stopped" | "gone">;
  /**
   * Replaces the damaged range of a sealed segment with `records` fetched from a replica, atomically
   * (see segment-replace.ts). FailedPreconditionError when that segment changed since the damage was found.
   */
  repairSegment(damage: SegmentDamage, records: readonly ReplicatedRecord[]): Promise<void>;
  stats(): PartitionLogStats;
  /** Waits for queued work, fsyncs, saves the active index (a clean shutdown) and closes the files. */
  close(): Promise<void>;
}

interface AppendJob extends QueuedAppend {
  kind: "append";
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

interface ControlJob {
  kind: "control";
  run: () => Promise<void>;
  fail: (err: unknown) => void;
}

type Job = AppendJob | ControlJob;

const DEFAULT_READ_RECORDS = 500;
const DEFAULT_READ_BYTES = 1024 * 1024;

/** Opens (creating or recovering) the log in `options.dir`. */
export async function openPartitionLog(options: PartitionLogOptions): Promise<PartitionLog> {
  const o = resolveOptions(options, nodeFileSystem);
  const logger = o.logger.child({ component: "storage", dir: o.dir });
  const segments = await openSegments(o, logger);
  const end = (segments[segments.length - 1] as Segment).nextOffset;
  let start = await readLogStart(o.fileSystem, o.dir);
  if (start > end) {
    // Only a damaged directory gets here (a reset removes the record before it cuts): nothing below the
    // log end may be served, and the next record must not land below the recorded start.
    logger.warn(
      { recorded: start, logEndOffset: end },
      "recorded log start is past the log end; using the end",
    );
    start = end;
  }
  return new FileLog(o, logger, segments, start);
}

/**
 * The log's I/O shell: one queue of mutations, the write-group encoder's output written and committed
 * to the active segment, the durability loop told about each write, and the cuts (truncation, reset,
 * rollback after a failed fsync, retention).
 */
class FileLog implements PartitionLog, DurabilityHost {
  private segmentList: Segment[];
  private readonly queue: Job[] = [];
  private draining = false;
  private readonly durability: DurabilityLoop;
  private readonly recoveredDamage: LogDamage | undefined;
  /** Bumped by every cut (truncate, reset, rollback): fsyncs and reads started before it are stale. */
  generation = 0;
  private syncFailure: { error: unknown } | undefined;
  /** The active file may hold bytes past `size` from a failed write that could not be cut yet. */
  private dirtyTail = false;
  closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private readonly cache: TailCache;
  private readonly listeners = new Set<(logEndOffset: number) => void>();
  private readonly counters: PartitionLogStats = {
    appends: 0,
    recordsAppended: 0,
    bytesAppended: 0,
    writes: 0,
    fsyncs: 0,
    fsyncSeconds: 0,
    writeErrors: 0,
    fsyncErrors: 0,
    segmentsRolled: 0,
    segmentsDeleted: 0,
    reads: 0,
    tailCacheHits: 0,
  };

  constructor(
    private readonly o: ResolvedPartitionLogOptions,
    private readonly logger: Logger,
    segments: Segment[],
    /** Where reads begin when records were deleted inside a segment (log-start-file.ts); 0: none. */
    private recordedStart: number,
  ) {
    this.segmentList = segments;
    this.recoveredDamage = segments[segments.length - 1]?.damage;
    this.cache = new TailCache(o.tailCacheBytes);
    this.durability = new DurabilityLoop(o, this.counters, logger, this);
  }

  get dir(): string {
    return this.o.dir;
  }

  get logStartOffset(): number {
    return Math.max((this.segmentList[0] as Segment).baseOffset, this.recordedStart);
  }

  get logEndOffset(): number {
    return this.active.nextOffset;
  }

  get damage(): LogDamage | undefined {
    return this.recoveredDamage;
  }

  get durableOffset(): number {
    return this.durability.durable.offset;
  }

  /** How long the oldest write not fsynced yet has waited (ms; 0 when everything is on disk). */
  unsyncedAgeMs(now?: number): number {
    return this.durability.unsyncedAgeMs(now);
  }

  get sizeBytes(): number {
    let total = 0;
    for (const s of this.segmentList) total += s.size;
    return total;
  }

  get active(): Segment {
    return this.segmentList[this.segmentList.length - 1] as Segment;
  }

  // ---- appends -------------------------------------------------------------------------------------

  async append(records: readonly AppendRecord[]): Promise<AppendResult> {
    return this.enqueueAppend(records, false);
  }

  async appendReplicated(records: readonly ReplicatedRecord[]): Promise<AppendResult> {
    return this.enqueueAppend(records, true);
  }

  private enqueueAppend(records: readonly AppendRecord[], replicated: boolean): Promise<AppendResult> {
    if (this.closing) throw new LogClosedError(this.o.dir);
    if (!Array.isArray(records) || records.length === 0) {
      throw new InvalidArgumentError("an append needs at least one record");
    }
    let bytes = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as AppendRecord;
      const size = frameSize(record);
      if (typeof size === "string") throw new InvalidArgumentError(`record ${i} of the batch: ${size}`);
      if (size > this.o.maxRecordBytes) throw new RecordTooLargeError(size, this.o.maxRecordBytes, i);
      bytes += size;
    }
    if (bytes > MAX_BATCH_BYTES) {
      throw new InvalidArgumentError(
        `append batch of ${bytes} bytes exceeds the limit of ${MAX_BATCH_BYTES}`,
      );
    }
    if (replicated) checkReplicatedBatch(records as readonly ReplicatedRecord[]);
    return this.enqueue(records, bytes, replicated);
  }

  async appendFrames(frames: Uint8Array): Promise<AppendResult> {
    if (this.closing) throw new LogClosedError(this.o.dir);
    if (frames.length > MAX_BATCH_BYTES) {
      throw new InvalidArgumentError(
        `append batch of ${frames.length} bytes exceeds the limit of ${MAX_BATCH_BYTES}`,
      );
    }
    // The run is written and cached as it is: a view into a much larger message (a replication answer
    // for many partitions) is copied first, so the tail cache never holds more memory than it counts.
    const own = frames.byteLength * 2 >= frames.buffer.byteLength ? frames : Buffer.from(frames);
    let run;
    try {
      run = checkFrameRun(own, this.o.maxRecordBytes);
    } catch (err) {
      if (err instanceof FrameError)
        throw new InvalidArgumentError(`replicated frames refused: ${err.message}`);
      throw err;
    }
    return this.enqueue(run, frames.length, true);
  }

  private enqueue(batch: AppendBatch, bytes: number, replicated: boolean): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ kind: "append", batch, bytes, replicated, resolve, reject });
      this.kick();
    });
  }

  /** Runs `fn` alone, in queue order with the appends. */
  private control<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: "control", run: () => fn().then(resolve, reject), fail: reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    // A microtask later, so appends issued in the same tick share the first write.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.syncFailure !== undefined) await this.rollBackToDurable();
        const job = this.queue[0];
        if (job === undefined) break;
        if (job.kind === "control") {
          this.queue.shift();
          await job.run();
        } else {
          await this.writeGroup();
        }
      }
    } catch (err) {
      // Only a bug gets here; fail what is queued rather than leave callers hanging.
      this.logger.error({ err }, "partition log writer failed");
      for (const job of this.queue.splice(0)) {
        if (job.kind === "append") job.reject(err);
        else job.fail(err);
      }
    } finally {
      this.draining = false;
    }
  }

  /** Writes the appends at the head of the queue that fit the active segment, as one write. */
  private async writeGroup(): Promise<void> {
    const head = this.queue[0] as AppendJob;
    if (needsRoll(this.active, head.bytes, this.o.segmentBytes)) {
      try {
        await this.roll();
      } catch (err) {
        this.queue.shift();
        head.reject(
          err instanceof GouletteError
            ? err
            : new StorageError(`cannot roll ${this.o.dir} to a new segment`, err),
        );
        return;
      }
    }
    const active = this.active;
    const limits = { segmentBytes: this.o.segmentBytes, maxGroupBytes: MAX_GROUP_BYTES };
    const { jobs, bytes, refused } = takeWriteGroup<AppendJob>(this.queue, active, limits);
    for (const { job, error } of refused) job.reject(error);
    if (jobs.length === 0) return;
    const encoded = encodeWriteGroup(
      jobs.map((job) => job.batch),
      bytes,
      active.tail,
      this.o.now(),
      this.o.indexIntervalBytes,
    );

    try {
      await this.cleanTail(active);
      if (encoded.pieces === undefined) await writeFully(active.file, encoded.buffer, active.size);
      else await writevFully(active.file, encoded.pieces, active.size);
    } catch (err) {
      this.counters.writeErrors++;
      await this.cutFileBack(active);
      const error = new StorageError(`append to ${active.dataPath} failed`, err);
      this.logger.error({ err, segment: active.dataPath, bytes }, "append failed; nothing of it is readable");
      for (const job of jobs) job.reject(error);
      return;
    }

    // The write is complete: only now do readers get to see it.
    active.commitWrite(encoded.tail, encoded.indexEntries);
    const records = encoded.frameStarts.length;
    this.cache.push(active.nextOffset - records, encoded.buffer, encoded.frameStarts, encoded.payloads);
    this.counters.writes++;
    this.counters.appends += jobs.length;
    this.counters.recordsAppended += records;
    this.counters.bytesAppended += bytes;
    for (const listener of this.listeners) {
      try {
        listener(active.nextOffset);
      } catch (err) {
        this.logger.error({ err }, "append listener threw");
      }
    }
    this.durability.written(jobs, encoded.results);
  }

  // ---- durability ----------------------------------------------------------------------------------

  /**
   * A failed fsync leaves the unsynced bytes in an unknown state (Linux may drop them and report
   * success next time), so the log goes back to the last durable point; the writer does it next.
   */
  syncFailed(err: unknown): void {
    this.logger.error(
      { err, segment: this.active.dataPath },
      "fsync failed; rolling back to the last durable record",
    );
    this.syncFailure = { error: err };
    this.kick();
  }

  private async rollBackToDurable(): Promise<void> {
    const cause = (this.syncFailure as { error: unknown }).error;
    this.syncFailure = undefined;
    this.generation++;
    const { segment, size, offset } = this.durability.durable;
    const error = new StorageError(
      `fsync of ${segment.dataPath} failed; unsynced records were rolled back`,
      cause,
    );
    this.durability.rejectAll(error);
    if (segment !== this.active) {
      // A roll syncs the old segment before the first write to the new one, so this cannot happen.
      this.logger.error(
        { segment: segment.dataPath },
        "durable point is not in the active segment; not rolling back",
      );
      return;
    }
    if (offset < segment.nextOffset) {
      this.cutInMemory(segment, size, offset);
      await this.cutFileBack(segment);
    }
    this.durability.forgetWrites();
  }

  async flush(): Promise<void> {
    if (this.closed) throw new LogClosedError(this.o.dir);
    await this.durability.flush(this.logEndOffset);
  }

  // ---- cutting back --------------------------------------------------------------------------------

  private cutInMemory(segment: Segment, size: number, offset: number): void {
    segment.cutTo(size, offset);
    this.cache.truncateFrom(offset);
  }

  /** Best effort: cut the file to the segment's size; when that fails too, retry before the next write. */
  private async cutFileBack(segment: Segment): Promise<void> {
    try {
      await segment.file.truncate(segment.size);
      this.dirtyTail = false;
    } catch (err) {
      this.dirtyTail = true;
      this.logger.error(
        { err, segment: segment.dataPath },
        "cannot cut a failed write off the segment; retrying before the next write",
      );
    }
  }

  private async cleanTail(segment: Segment): Promise<void> {
    if (!this.dirtyTail) return;
    await segment.file.truncate(segment.size);
    this.dirtyTail = false;
  }

  /** Seals the active segment (synced, index saved) and starts a new one at the log end. */
  private async roll(): Promise<void> {
    const fs = this.o.fileSystem;
    const old = this.active;
    await this.cleanTail(old);
    try {
      await this.durability.syncData(old);
    } catch (err) {
      this.syncFailed(err);
      throw new StorageError(`fsync of ${old.dataPath} failed`, err);
    }
    // Everything written so far is in `old`, now synced: every waiter is durable.
    this.durability.allDurable({ segment: old, size: old.size, offset: old.nextOffset });
    await old.saveIndex(fs);
    let next: Segment | undefined;
    try {
      // A file already there with this name is debris of an earlier failed roll: nothing points to it.
      await fs.unlink(path.join(this.o.dir, `${segmentName(old.nextOffset)}.log`)).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
      next = await Segment.create(fs, this.o.dir, old.nextOffset);
      await fs.syncDir(this.o.dir);
    } catch (err) {
      if (next !== undefined) await next.retire(fs).catch(() => undefined);
      await old.dropIndexFile(fs).catch(() => undefined);
      throw err;
    }
    this.segmentList.push(next);
    this.durability.moveDurablePoint({ segment: next, size: 0, offset: next.baseOffset });
    this.counters.segmentsRolled++;
  }

  async truncateTo(offset: number): Promise<void> {
    checkOffset("truncateTo offset", offset);
    if (this.closing) throw new LogClosedError(this.o.dir);
    return this.control(async () => {
      if (offset >= this.logEndOffset) return;
      if (offset <= this.logStartOffset) return this.resetNow(offset);
      const fs = this.o.fileSystem;
      this.generation++;
      this.durability.rejectWaitersFrom(offset);
      try {
        // Newest first, so a crash in between still leaves a log that is a prefix of the old one.
        while (this.active.baseOffset >= offset) {
          const doomed = this.active;
          await doomed.retire(fs);
          this.segmentList.pop();
          this.counters.segmentsDeleted++;
          this.dirtyTail = false;
        }
        const target = this.active;
        await target.dropIndexFile(fs);
        const position = await target.positionOf(offset);
        this.cutInMemory(target, position, offset);
        const durable = this.durability.durable;
        if (durable.offset > offset || durable.segment !== target) {
          this.durability.moveDurablePoint({ segment: target, size: position, offset });
        }
        await target.file.truncate(position);
        this.dirtyTail = false;
        await this.durability.syncData(target);
        await fs.syncDir(this.o.dir);
      } catch (err) {
        if (err instanceof GouletteError) throw err;
        throw new StorageError(`truncating ${this.o.dir} to offset ${offset} failed`, err);
      }
      // Everything left was just synced.
      const active = this.active;
      this.durability.allDurable({ segment: active, size: active.size, offset: active.nextOffset });
    });
  }

  async resetTo(offset: number): Promise<void> {
    checkOffset("resetTo offset", offset);
    if (this.closing) throw new LogClosedError(this.o.dir);
    return this.control(() => this.resetNow(offset));
  }

  private async resetNow(offset: number): Promise<void> {
    const fs = this.o.fileSystem;
    this.generation++;
    this.durability.rejectWaitersFrom(-1);
    try {
      // Forgotten first: a crash part-way leaves old records readable (the follower is told to cut
      // again), never a recorded start past the new log's end.
      await removeLogStart(fs, this.o.dir);
      this.recordedStart = 0;
      while (this.segmentList.length > 0) {
        await this.active.retire(fs);
        this.segmentList.pop();
        this.counters.segmentsDeleted++;
      }
      this.dirtyTail = false;
      this.cache.clear();
      const next = await Segment.create(fs, this.o.dir, offset);
      this.segmentList.push(next);
      await fs.syncDir(this.o.dir);
    } catch (err) {
      if (this.segmentList.length === 0) {
        // Without a segment the log cannot go on; the instance is unusable and must be reopened.
        this.closing = true;
        this.closed = true;
      }
      throw new StorageError(`resetting ${this.o.dir} to offset ${offset} failed`, err);
    }
    this.durability.forgetWrites();
    this.durability.moveDurablePoint({ segment: this.active, size: 0, offset });
  }

  async enforceRetention(now: number = this.o.now()): Promise<RetentionResult> {
    if (this.closing) throw new LogClosedError(this.o.dir);
    return this.control(async () => {
      const reasons = retentionCut(this.extents(), now, this.o);
      return this.retireOldest(reasons);
    });
  }

  async deleteRecordsBefore(offset: number): Promise<RetentionResult> {
    checkOffset("deleteRecordsBefore offset", offset);
    if (this.closing) throw new LogClosedError(this.o.dir);
    return this.control(async () => {
      const end = this.logEndOffset;
      if (offset > end) {
        throw new InvalidArgumentError(
          `cannot delete records before offset ${offset}: the log ends at ${end}`,
        );
      }
      if (offset > this.logStartOffset) {
        try {
          await writeLogStart(this.o.fileSystem, this.o.dir, offset);
        } catch (err) {
          throw new StorageError(`recording log start ${offset} in ${this.o.dir} failed`, err);
        }
        this.recordedStart = offset;
        this.logger.info({ logStartOffset: offset }, "records deleted below the new log start");
      }
      // Everything is deleted: a new active segment lets the old one's bytes go too.
      if (this.logStartOffset === end && this.active.baseOffset < end) await this.roll();
      const count = belowLogStartCut(this.extents(), this.logStartOffset);
      return this.retireOldest(Array.from({ length: count }, () => ({ belowLogStart: true })));
    });
  }

  private extents(): SegmentExtent[] {
    return this.segmentList.map((s) => ({
      baseOffset: s.baseOffset,
      sizeBytes: s.size,
      maxTimestamp: s.maxTimestamp,
    }));
  }

  /**
   * Deletes the oldest segments, one per reason (front-cuts.ts decided which, never the active one),
   * then syncs the directory once.
   */
  private async retireOldest(reasons: readonly object[]): Promise<RetentionResult> {
    let deletedBytes = 0;
    for (const why of reasons) {
      const oldest = this.segmentList[0] as Segment;
      const size = oldest.size;
      try {
        await oldest.retire(this.o.fileSystem);
      } catch (err) {
        throw new StorageError(`deleting segment ${oldest.dataPath} failed`, err);
      }
      this.segmentList.shift();
      this.counters.segmentsDeleted++;
      deletedBytes += size;
      this.logger.info({ segment: oldest.dataPath, ...why }, "deleted a segment");
    }
    if (reasons.length > 0) await this.syncDirAfterDeletion();
    return { deletedSegments: reasons.length, deletedBytes, logStartOffset: this.logStartOffset };
  }

  private async syncDirAfterDeletion(): Promise<void> {
    await this.o.fileSystem.syncDir(this.o.dir).catch((err: unknown) => {
      this.logger.warn({ err }, "directory sync after deleting segments failed");
    });
  }

  // ---- reads ---------------------------------------------------------------------------------------

  async read(
    fromOffset: number,
    maxRecords = DEFAULT_READ_RECORDS,
    maxBytes = DEFAULT_READ_BYTES,
    options: ReadOptions = {},
  ): Promise<StoredRecord[]> {
    return (await this.readInto(() => new RecordSink(), fromOffset, maxRecords, maxBytes, options)).records;
  }

  async readFrames(
    fromOffset: number,
    maxRecords = DEFAULT_READ_RECORDS,
    maxBytes = DEFAULT_READ_BYTES,
    options: ReadOptions = {},
  ): Promise<FrameRun> {
    const sink = await this.readInto(() => new FrameBytesSink(), fromOffset, maxRecords, maxBytes, options);
    return { firstOffset: fromOffset, count: sink.length, bytes: sink.bytes() };
  }

  async readInto<S extends FrameSink>(
    newSink: () => S,
    fromOffset: number,
    maxRecords = DEFAULT_READ_RECORDS,
    maxBytes = DEFAULT_READ_BYTES,
    options: ReadOptions = {},
  ): Promise<S> {
    if (this.closed) throw new LogClosedError(this.o.dir);
    checkOffset("read offset", fromOffset);
    if (!Number.isSafeInteger(maxRecords) || maxRecords < 1) {
      throw new InvalidArgumentError(`maxRecords must be a positive integer, got ${maxRecords}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new InvalidArgumentError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
    this.counters.reads++;
    // A cut (truncation, rollback) during the read may pull bytes from under it: try again then.
    for (let attempt = 0; ; attempt++) {
      const generation = this.generation;
      try {
        const sink = await this.readOnce(newSink(), fromOffset, maxRecords, maxBytes, options.endOffset);
        if (generation === this.generation || attempt >= 3) return sink;
      } catch (err) {
        if (generation === this.generation || attempt >= 3) throw err;
      }
    }
  }

  private async readOnce<S extends FrameSink>(
    sink: S,
    fromOffset: number,
    maxRecords: number,
    maxBytes: number,
    endOffset: number | undefined,
  ): Promise<S> {
    const start = this.logStartOffset;
    const end = this.logEndOffset;
    if (fromOffset < start || fromOffset > end) throw new OffsetOutOfRangeError(fromOffset, start, end);
    const cursor: ReadCursor = {
      offset: fromOffset,
      endOffset: Math.min(end, endOffset ?? end),
      maxRecords,
      maxBytes,
      bytes: 0,
      out: sink,
    };
    if (cursor.offset >= cursor.endOffset) return sink;
    if (this.cache.serve(cursor)) {
      this.counters.tailCacheHits++;
      return sink;
    }
    await readSegments(this.segmentList, cursor, this.o);
    return sink;
  }

  // ---- the rest ------------------------------------------------------------------------------------

  onAppend(listener: (logEndOffset: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  segments(): SegmentInfo[] {
    return this.segmentList.map((s) => ({
      baseOffset: s.baseOffset,
      nextOffset: s.nextOffset,
      sizeBytes: s.size,
      path: s.dataPath,
      maxTimestamp: s.maxTimestamp,
    }));
  }

  async verifySegment(
    baseOffset: number,
    pace: VerifyPace,
  ): Promise<SegmentDamage | "clean" | "stopped" | "gone"> {
    const i = this.segmentList.findIndex((s) => s.baseOffset === baseOffset);
    const segment = this.segmentList[i];
    if (segment === undefined || i === this.segmentList.length - 1 || this.closing) return "gone";
    const generation = this.generation;
    segment.acquire();
    try {
      const verdict = await verifySegment(segment, {
        ...pace,
        stopped: () => this.closing || pace.stopped?.() === true,
      });
      // A cut (truncation, reset) during the scan may have shortened the file under it: not damage.
      if (generation !== this.generation && !this.segmentList.slice(0, -1).includes(segment)) return "gone";
      if (generation !== this.generation && verdict !== "clean") return "stopped";
      return verdict;
    } finally {
      segment.release();
    }
  }

  repairSegment(damage: SegmentDamage, records: readonly ReplicatedRecord[]): Promise<void> {
    if (this.closing) throw new LogClosedError(this.o.dir);
    return this.control(async () => {
      const i = this.segmentList.findIndex((s) => s.baseOffset === damage.baseOffset);
      const old = this.segmentList[i];
      if (old === undefined || i === this.segmentList.length - 1 || old.nextOffset !== damage.toOffset) {
        throw new FailedPreconditionError(
          `segment ${damage.baseOffset} of ${this.o.dir} changed since its damage was found`,
        );
      }
      const replacement = await replaceSegmentTail(this.o.fileSystem, old, damage, records, {
        indexIntervalBytes: this.o.indexIntervalBytes,
        logger: this.logger,
      });
      this.segmentList[i] = replacement;
      this.generation++;
      await old.supersede().catch(() => undefined);
    });
  }

  stats(): PartitionLogStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    if (this.closePromise !== undefined) return this.closePromise;
    this.closing = true;
    this.closePromise = this.control(async () => {
      await this.durability.settle();
      if (this.syncFailure !== undefined) await this.rollBackToDurable();
      const fs = this.o.fileSystem;
      const active = this.active;
      let failure: unknown;
      try {
        await this.cleanTail(active);
        await this.durability.syncData(active);
        this.durability.allDurable({ segment: active, size: active.size, offset: active.nextOffset });
        // The saved index marks a clean shutdown: the next open trusts it instead of scanning.
        await active.saveIndex(fs);
        await fs.syncDir(this.o.dir);
      } catch (err) {
        failure = err;
        const error = new StorageError(`closing ${this.o.dir} failed`, err);
        this.durability.rejectAll(error);
      }
      await Promise.all(this.segmentList.map((s) => s.closeFile().catch(() => undefined)));
      this.closed = true;
      this.listeners.clear();
      if (failure !== undefined) throw new StorageError(`closing ${this.o.dir} failed`, failure);
    });
    return this.closePromise;
  }
}

function checkOffset(what: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${offset}`);
  }
}

function checkReplicatedBatch(records: readonly ReplicatedRecord[]): void {
  const first = (records[0] as ReplicatedRecord).offset;
  checkOffset("replicated record offset", first);
  records.forEach((record, i) => {
    if (record.offset !== first + i) throw new NonContiguousOffsetError(first + i, record.offset);
    if (record.timestamp === undefined) {
      throw new InvalidArgumentError(`replicated record ${record.offset} has no timestamp`);
    }
  });
}
