import { FrameError, frameOffset, frameSizeAt, verifyFrame } from "./record-format.js";

/**
 * What lies after the first bad frame of the active segment at recovery. A crash tears only the tail:
 * everything from the bad frame on is an incomplete write, and cutting it loses nothing that was
 * acknowledged as durable. A bad frame followed by valid frames is something else (a bit flip, a lost
 * block): the records after it were written, perhaps acknowledged and replicated, and a replica that
 * silently cut them would hold a shorter log than it claims to have had.
 */
export type TailVerdict =
  | { kind: "torn-tail" }
  | {
      kind: "corruption";
      /** Offset of the first valid frame found after the damage. */
      nextValidOffset: number;
      /** One past the offset of the last valid frame after the damage: the log went at least this far. */
      endOffset: number;
    };

/**
 * Classifies `rest` (the bytes of the active segment from its first bad frame on), the bad frame
 * standing where offset `expectedOffset` was due. Looks for a valid frame (plausible length, good CRC,
 * an offset at or above `expectedOffset`) at every byte after the bad frame's first: a damaged length
 * field must not hide the frames behind it. Pure: no I/O.
 */
export function classifyTail(rest: Buffer, expectedOffset: number): TailVerdict {
  let endOffset = -1;
  let nextValidOffset = -1;
  let position = 1;
  while (position + 4 <= rest.length) {
    const size = validFrameAt(rest, position, expectedOffset);
    if (size === undefined) {
      position++;
      continue;
    }
    const offset = frameOffset(rest, position);
    if (nextValidOffset < 0) nextValidOffset = offset;
    endOffset = Math.max(endOffset, offset + 1);
    position += size;
  }
  return nextValidOffset < 0 ? { kind: "torn-tail" } : { kind: "corruption", nextValidOffset, endOffset };
}

/** The size of a verified frame at `pos` whose offset is at least `minOffset`, else undefined. */
function validFrameAt(buf: Buffer, pos: number, minOffset: number): number | undefined {
  const size = frameSizeAt(buf, pos);
  if (size === undefined || pos + size > buf.length) return undefined;
  try {
    verifyFrame(buf, pos, size);
  } catch (err) {
    if (err instanceof FrameError) return undefined;
    throw err;
  }
  return frameOffset(buf, pos) >= minOffset ? size : undefined;
}
