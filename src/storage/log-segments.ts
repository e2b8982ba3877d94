import path from "node:path";

import { GouletteError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { CorruptRecordError, StorageError } from "./errors.js";
import type { ResolvedPartitionLogOptions } from "./partition-log-options.js";
import { Segment, isNotFound, parseSegmentFileName, type ReadCursor } from "./segment.js";
import { REPAIR_SUFFIX } from "./segment-replace.js";

/**
 * The partition log's list of segments: opening (and recovering) it from a directory, finding the
 * segment of an offset, and reading across segments.
 */

/** Opens every segment of `o.dir` (creating the first one in an empty directory), oldest first. */
export async function openSegments(o: ResolvedPartitionLogOptions, logger: Logger): Promise<Segment[]> {
  const fs = o.fileSystem;
  let names: string[];
  try {
    await fs.mkdir(o.dir);
    names = await fs.readdir(o.dir);
  } catch (err) {
    throw new StorageError(`cannot open partition directory ${o.dir}`, err);
  }
  const bases = names
    .map(parseSegmentFileName)
    .filter((base): base is number => base !== undefined)
    .sort((a, b) => a - b);
  const segments: Segment[] = [];
  try {
    await removeLeftovers(o, names, new Set(bases));
    for (let i = 0; i < bases.length; i++) {
      segments.push(
        await Segment.open(fs, o.dir, bases[i] as number, {
          active: i === bases.length - 1,
          nextSegmentBase: bases[i + 1],
          indexIntervalBytes: o.indexIntervalBytes,
          logger,
        }),
      );
    }
    const last = segments[segments.length - 1];
    if (last === undefined) {
      segments.push(await Segment.create(fs, o.dir, o.initialOffset));
      // The directory itself may be new: make its entry in the parent durable too.
      await fs.syncDir(path.dirname(o.dir)).catch(() => undefined);
    } else {
      // The active segment's saved index would go stale with the next append; without it a crash is
      // detected (no index) and the segment rescanned.
      await last.dropIndexFile(fs);
    }
    await fs.syncDir(o.dir);
  } catch (err) {
    await Promise.all(segments.map((s) => s.closeFile().catch(() => undefined)));
    throw err instanceof GouletteError ? err : new StorageError(`cannot open partition log ${o.dir}`, err);
  }
  for (let i = 0; i + 1 < segments.length; i++) {
    const a = segments[i] as Segment;
    const b = segments[i + 1] as Segment;
    if (a.nextOffset !== b.baseOffset) {
      logger.error(
        { segment: a.dataPath, nextOffset: a.nextOffset, nextSegmentBase: b.baseOffset },
        "segments do not join up",
      );
    }
  }
  return segments;
}

async function removeLeftovers(
  o: ResolvedPartitionLogOptions,
  names: string[],
  bases: Set<number>,
): Promise<void> {
  for (const name of names) {
    const indexMatch = /^(\d{20})\.index(\.tmp)?$/.exec(name);
    if (name.endsWith(REPAIR_SUFFIX)) {
      // A replacement segment whose repair was interrupted before its rename: the old file stands.
      await o.fileSystem.unlink(path.join(o.dir, name));
      continue;
    }
    // A temp index from an interrupted save, or the index of a segment whose data file was deleted.
    if (indexMatch && (indexMatch[2] !== undefined || !bases.has(Number(indexMatch[1])))) {
      await o.fileSystem.unlink(path.join(o.dir, name)).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  }
}

/** Index of the segment holding `offset` (the last one whose base is ≤ offset). */
export function segmentIndexOf(segments: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if ((segments[mid] as Segment).baseOffset <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Fills `cursor` from the segments holding its offset on, each pinned while read. The good records
 * before a damaged one are still served (the next read starts at the damage).
 */
export async function readSegments(
  segments: readonly Segment[],
  cursor: ReadCursor,
  o: Pick<ResolvedPartitionLogOptions, "dir" | "indexIntervalBytes">,
): Promise<void> {
  const pinned = segments.slice(segmentIndexOf(segments, cursor.offset));
  for (const segment of pinned) segment.acquire();
  try {
    for (const segment of pinned) {
      if (cursor.offset < segment.baseOffset) {
        throw new CorruptRecordError(
          cursor.offset,
          segment.dataPath,
          0,
          `offsets up to ${segment.baseOffset - 1} are missing`,
        );
      }
      await segment.read(cursor, o.indexIntervalBytes);
      const limited = cursor.out.length >= cursor.maxRecords || cursor.offset >= cursor.endOffset;
      if (limited || cursor.offset < segment.nextOffset) break;
    }
  } catch (err) {
    if (err instanceof CorruptRecordError && cursor.out.length > 0) return;
    if (err instanceof GouletteError) throw err;
    throw new StorageError(`reading ${o.dir} at offset ${cursor.offset} failed`, err);
  } finally {
    for (const segment of pinned) segment.release();
  }
}
