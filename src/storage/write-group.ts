import { NonContiguousOffsetError } from "./errors.js";
import { CheckedFrameRun } from "./frame-run.js";
import {
  EXTERNAL_PAYLOAD_MIN_BYTES,
  encodeFrame,
  type AppendRecord,
  type ReplicatedRecord,
} from "./record-format.js";

/**
 * The pure half of the partition log's write path: which queued appends go into the next write, and
 * the bytes, index entries and segment state that write produces. No files, no clocks: the log passes
 * the active segment's tail and the time in, and commits the result only once the write succeeded.
 */

/** Offsets given to an appended batch. */
export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
}

/** What is known about the end of the active segment; a write group moves it forward. */
export interface SegmentTail {
  /** Bytes of valid frames. */
  size: number;
  /** Offset after the last record. */
  nextOffset: number;
  /** Bytes written since the last index entry. */
  bytesSinceIndex: number;
  /** Largest record timestamp, -1 while empty. */
  maxTimestamp: number;
}

/** What one append writes: records to encode, or frames a leader encoded (checked, written as they are). */
export type AppendBatch = readonly AppendRecord[] | CheckedFrameRun;

/** Records in a batch. */
export function batchCount(batch: AppendBatch): number {
  return batch instanceof CheckedFrameRun ? batch.count : batch.length;
}

/** One append as queued: its batch and its encoded size, computed (and checked) up front. */
export interface QueuedAppend {
  batch: AppendBatch;
  bytes: number;
  /** Records carry the leader's offsets, which must continue the log exactly. */
  replicated: boolean;
}

/** Appends queued while a write is in flight are coalesced into one write of up to this many bytes. */
export const MAX_GROUP_BYTES = 8 * 1024 * 1024;

export interface GroupLimits {
  segmentBytes: number;
  maxGroupBytes: number;
}

/** The appends taken from the queue for one write, and those refused on the way. */
export interface TakenGroup<J extends QueuedAppend> {
  jobs: J[];
  bytes: number;
  refused: Array<{ job: J; error: NonContiguousOffsetError }>;
}

/**
 * True when the first queued append does not fit the rest of the active segment: roll first. A
 * segment always takes at least one append, however large.
 */
export function needsRoll(tail: SegmentTail, headBytes: number, segmentBytes: number): boolean {
  return tail.size > 0 && tail.size + headBytes > segmentBytes;
}

/**
 * Takes from the head of `queue` the appends that fit the active segment and one group's byte budget
 * (at least one), stopping at the first that is not an append. A replicated append whose first offset
 * does not continue the log is taken off the queue and refused.
 */
export function takeWriteGroup<J extends QueuedAppend>(
  queue: Array<J | { kind: "control" }>,
  tail: SegmentTail,
  limits: GroupLimits,
): TakenGroup<J> {
  const jobs: J[] = [];
  const refused: TakenGroup<J>["refused"] = [];
  let bytes = 0;
  let next = tail.nextOffset;
  for (let head = queue[0]; head !== undefined && !isControl(head); head = queue[0]) {
    const job = head;
    const filled = tail.size + bytes;
    if (filled > 0 && filled + job.bytes > limits.segmentBytes) break;
    if (jobs.length > 0 && bytes + job.bytes > limits.maxGroupBytes) break;
    queue.shift();
    if (job.replicated) {
      const batch = job.batch;
      const first =
        batch instanceof CheckedFrameRun ? batch.firstOffset : (batch[0] as ReplicatedRecord).offset;
      if (first !== next) {
        refused.push({ job, error: new NonContiguousOffsetError(next, first) });
        continue;
      }
    }
    jobs.push(job);
    bytes += job.bytes;
    next += batchCount(job.batch);
  }
  return { jobs, bytes, refused };
}

function isControl(job: QueuedAppend | { kind: "control" }): job is { kind: "control" } {
  return (job as { kind?: string }).kind === "control";
}

/** One write group, encoded: what to write where, and what the segment looks like after it. */
export interface EncodedGroup {
  /** Every frame's bytes except the payloads written in place (`pieces` gathers them back in). */
  buffer: Buffer;
  /** Set when some payloads stay where they are: write these pieces in order instead of `buffer`. */
  pieces: Uint8Array[] | undefined;
  /** Per record, its payload when written in place (undefined otherwise); set with `pieces`. */
  payloads: Array<Uint8Array | undefined> | undefined;
  /** Where each record's frame starts in `buffer`. */
  frameStarts: readonly number[];
  /** Sparse index entries to add: offset, position, offset, position… */
  indexEntries: number[];
  /** Per append, the offsets its records got. */
  results: AppendResult[];
  /** The active segment once the write is complete. */
  tail: SegmentTail;
}

/**
 * Encodes `groups` (each append's batch, in order) as frames continuing `tail`. `bytes` is their
 * total encoded size, computed when they were queued; a mismatch is a bug and throws. Records without
 * a timestamp get `now`. Large payloads are not copied: the buffer gets the other fields of their
 * frame and the write gathers [fields, payload, fields, payload, …], so a 64 KiB record is not copied
 * (nor a group-sized buffer allocated) just to be written. A run of frames is copied as it is (its
 * offsets were checked to continue the log when it was taken).
 */
export function encodeWriteGroup(
  groups: ReadonlyArray<AppendBatch>,
  bytes: number,
  tail: SegmentTail,
  now: number,
  indexIntervalBytes: number,
): EncodedGroup {
  const only = groups.length === 1 ? groups[0] : undefined;
  if (only instanceof CheckedFrameRun) return encodeFrameRun(only, bytes, tail, indexIntervalBytes);
  let external = 0;
  for (const batch of groups) {
    if (batch instanceof CheckedFrameRun) continue;
    for (const record of batch) {
      if (record.payload.length >= EXTERNAL_PAYLOAD_MIN_BYTES) external += record.payload.length;
    }
  }
  const buffer = Buffer.allocUnsafe(bytes - external);
  const pieces: Uint8Array[] = [];
  const payloads: Array<Uint8Array | undefined> | undefined = external > 0 ? [] : undefined;
  let pieceStart = 0;
  const indexEntries: number[] = [];
  const results: AppendResult[] = [];
  const frameStarts: number[] = [];
  let pos = 0;
  let filePos = 0;
  let offset = tail.nextOffset;
  let sinceIndex = tail.bytesSinceIndex;
  let maxTimestamp = tail.maxTimestamp;
  for (const batch of groups) {
    const baseOffset = offset;
    if (batch instanceof CheckedFrameRun) {
      checkPlacement(batch, offset);
      sinceIndex = indexRun(batch, offset, tail.size + filePos, sinceIndex, indexIntervalBytes, indexEntries);
      for (const start of batch.starts) {
        frameStarts.push(pos + start);
        payloads?.push(undefined);
      }
      buffer.set(batch.bytes, pos);
      pos += batch.bytes.length;
      filePos += batch.bytes.length;
      offset += batch.count;
      if (batch.maxTimestamp > maxTimestamp) maxTimestamp = batch.maxTimestamp;
      results.push({ baseOffset, lastOffset: offset - 1 });
      continue;
    }
    for (const record of batch) {
      if (sinceIndex >= indexIntervalBytes) {
        indexEntries.push(offset, tail.size + filePos);
        sinceIndex = 0;
      }
      const timestamp = record.timestamp ?? now;
      const payload = record.payload;
      const out = payload.length >= EXTERNAL_PAYLOAD_MIN_BYTES;
      frameStarts.push(pos);
      const end = encodeFrame(buffer, pos, record, offset, timestamp, out);
      const size = end - pos + (out ? payload.length : 0);
      if (payloads !== undefined) payloads.push(out ? payload : undefined);
      if (out) {
        pieces.push(buffer.subarray(pieceStart, end), payload);
        pieceStart = end;
      }
      sinceIndex += size;
      filePos += size;
      pos = end;
      offset++;
      if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    }
    results.push({ baseOffset, lastOffset: offset - 1 });
  }
  if (filePos !== bytes || pos !== buffer.length) {
    throw new Error(`encoded ${filePos} bytes (${pos} buffered) where ${bytes} were computed`);
  }
  if (pieceStart < pos) pieces.push(buffer.subarray(pieceStart, pos));
  return {
    buffer,
    pieces: payloads === undefined ? undefined : pieces,
    payloads,
    frameStarts,
    indexEntries,
    results,
    tail: { size: tail.size + bytes, nextOffset: offset, bytesSinceIndex: sinceIndex, maxTimestamp },
  };
}

/**
 * A write of one run of frames alone (a follower's usual write): the run's own buffer is written and
 * cached, not copied.
 */
function encodeFrameRun(
  run: CheckedFrameRun,
  bytes: number,
  tail: SegmentTail,
  indexIntervalBytes: number,
): EncodedGroup {
  checkPlacement(run, tail.nextOffset);
  if (bytes !== run.bytes.length) {
    throw new Error(`a run of ${run.bytes.length} bytes was queued as ${bytes}`);
  }
  const indexEntries: number[] = [];
  const sinceIndex = indexRun(
    run,
    tail.nextOffset,
    tail.size,
    tail.bytesSinceIndex,
    indexIntervalBytes,
    indexEntries,
  );
  const nextOffset = tail.nextOffset + run.count;
  return {
    buffer: run.bytes,
    pieces: undefined,
    payloads: undefined,
    frameStarts: run.starts,
    indexEntries,
    results: [{ baseOffset: tail.nextOffset, lastOffset: nextOffset - 1 }],
    tail: {
      size: tail.size + bytes,
      nextOffset,
      bytesSinceIndex: sinceIndex,
      maxTimestamp: Math.max(tail.maxTimestamp, run.maxTimestamp),
    },
  };
}

function checkPlacement(run: CheckedFrameRun, offset: number): void {
  // takeWriteGroup refused runs that do not continue the log: a mismatch here is a bug.
  if (run.firstOffset !== offset) {
    throw new Error(`a run of frames from offset ${run.firstOffset} was placed at ${offset}`);
  }
}

/**
 * Adds the sparse index entries of a run written at file position `filePos` (its first record has
 * `firstOffset`) to `entries`; returns the bytes since the last entry after it.
 */
function indexRun(
  run: CheckedFrameRun,
  firstOffset: number,
  filePos: number,
  sinceIndex: number,
  indexIntervalBytes: number,
  entries: number[],
): number {
  const { starts, bytes } = run;
  for (let i = 0; i < starts.length; i++) {
    const start = starts[i] as number;
    if (sinceIndex >= indexIntervalBytes) {
      entries.push(firstOffset + i, filePos + start);
      sinceIndex = 0;
    }
    sinceIndex += (starts[i + 1] ?? bytes.length) - start;
  }
  return sinceIndex;
}
