/**
 * The two cuts from the front of a log, as decisions: which of the oldest segments retention deletes,
 * and which lie wholly below a log start that DeleteRecords moved. Pure: the shell
 * (partition-log.ts) deletes the files, in this order, oldest first. Neither ever names the active
 * (last) segment, so the log stays one contiguous range with somewhere to append.
 */

/** What a cut needs to know of a segment. */
export interface SegmentExtent {
  baseOffset: number;
  sizeBytes: number;
  /** Newest record timestamp in it (ms), -1 when empty. */
  maxTimestamp: number;
}

/** Why retention deletes a segment: too old, or the log over its size bound without it. */
export interface RetentionReason {
  expired: boolean;
  oversize: boolean;
}

export interface RetentionBounds {
  /** Segments whose newest record is older than this (ms) go. */
  retentionMs?: number | undefined;
  /** Oldest segments go while the log without them still holds at least this many bytes. */
  retentionBytes?: number | undefined;
}

/**
 * The oldest segments retention deletes at `now`, one reason each, oldest first: it stops at the first
 * segment that is neither expired nor needed gone for the size bound (a younger segment behind an
 * old-enough one waits for it), and never reaches the active segment.
 */
export function retentionCut(
  segments: readonly SegmentExtent[],
  now: number,
  bounds: RetentionBounds,
): RetentionReason[] {
  const { retentionMs, retentionBytes } = bounds;
  let total = 0;
  for (const s of segments) total += s.sizeBytes;
  const reasons: RetentionReason[] = [];
  for (let i = 0; i < segments.length - 1; i++) {
    const oldest = segments[i] as SegmentExtent;
    const expired = retentionMs !== undefined && oldest.maxTimestamp < now - retentionMs;
    const oversize = retentionBytes !== undefined && total - oldest.sizeBytes >= retentionBytes;
    if (!expired && !oversize) break;
    reasons.push({ expired, oversize });
    total -= oldest.sizeBytes;
  }
  return reasons;
}

/**
 * How many of the oldest segments hold only records below `logStart` (the next segment starts at or
 * below it), never the active one. The segment `logStart` falls inside stays: reads start within it.
 */
export function belowLogStartCut(segments: readonly SegmentExtent[], logStart: number): number {
  let count = 0;
  while (count < segments.length - 1 && (segments[count + 1] as SegmentExtent).baseOffset <= logStart)
    count++;
  return count;
}
