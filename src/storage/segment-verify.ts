import { frameOffset } from "./record-format.js";
import type { Segment } from "./segment.js";

/**
 * Damage found in a sealed segment: the records from `fromOffset` to the segment's end cannot be read
 * (the bad frame hides where the frames behind it start), so that whole range is fetched again.
 */
export interface SegmentDamage {
  baseOffset: number;
  /** First offset that cannot be read. */
  fromOffset: number;
  /** The segment's end (exclusive): the next segment's base offset. */
  toOffset: number;
  /** Byte position of the bad frame: everything before it is intact. */
  position: number;
  reason: string;
}

export interface VerifyPace {
  /** Bytes read per second at most (the scrub must not compete with produce and fetch for the disk). */
  bytesPerSecond: number;
  /** Waits `ms` (default: a timer); the scan yields to the event loop between chunks in any case. */
  sleep?: (ms: number) => Promise<void>;
  /** Checked between chunks: true stops the scan (undefined result). */
  stopped?: () => boolean;
}

/** Bytes scanned between two pauses. */
const CHUNK_BYTES = 256 << 10;

const timerSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Reads every frame of a sealed segment again and checks its CRC and offset, at most
 * `pace.bytesPerSecond`, yielding between chunks. Returns the damage found, "clean", or "stopped".
 */
export async function verifySegment(
  segment: Segment,
  pace: VerifyPace,
): Promise<SegmentDamage | "clean" | "stopped"> {
  const sleep = pace.sleep ?? timerSleep;
  const limit = segment.size;
  let expected = segment.baseOffset;
  let position = 0;
  while (position < limit) {
    if (pace.stopped?.()) return "stopped";
    const chunkEnd = position + CHUNK_BYTES;
    const started = position;
    const problem = await segment.scanFrames(position, limit, CHUNK_BYTES, (buf, pos, size) => {
      if (position >= chunkEnd) return false;
      const offset = frameOffset(buf, pos);
      if (offset !== expected) return `offset ${offset} where ${expected} was expected`;
      expected++;
      position += size;
      return true;
    });
    if (problem !== undefined) {
      return {
        baseOffset: segment.baseOffset,
        fromOffset: expected,
        toOffset: segment.nextOffset,
        position: problem.position,
        reason: problem.reason,
      };
    }
    if (position >= limit) break;
    await sleep(Math.ceil(((position - started) / pace.bytesPerSecond) * 1000));
  }
  if (expected < segment.nextOffset) {
    return {
      baseOffset: segment.baseOffset,
      fromOffset: expected,
      toOffset: segment.nextOffset,
      position,
      reason: "records missing before the end of the segment",
    };
  }
  return "clean";
}
