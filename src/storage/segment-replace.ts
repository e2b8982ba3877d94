import path from "node:path";

import { InvalidArgumentError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { StorageFileSystem } from "./file-system.js";
import { encodeFrame, frameSize, type ReplicatedRecord } from "./record-format.js";
import { Segment, readFully, segmentName, writeFully } from "./segment.js";
import type { SegmentDamage } from "./segment-verify.js";

/** Suffix of a replacement segment being written; a leftover one is debris of an interrupted repair. */
export const REPAIR_SUFFIX = ".log.repair";

const COPY_CHUNK_BYTES = 1 << 20;

/**
 * Writes a sealed segment again: its intact bytes before the damage, then `records` (the damaged range
 * `[damage.fromOffset, damage.toOffset)` fetched from a replica, each with its offset), into a temporary
 * file that is synced and renamed over the damaged one. A crash at any point leaves either the old
 * file or the whole new one, never a mix. Returns the new segment, opened (and its index rebuilt) like
 * any sealed segment; the caller retires the old object (its handle still reads the old bytes).
 */
export async function replaceSegmentTail(
  fs: StorageFileSystem,
  old: Segment,
  damage: SegmentDamage,
  records: readonly ReplicatedRecord[],
  options: { indexIntervalBytes: number; logger: Logger },
): Promise<Segment> {
  checkRange(damage, records);
  const dir = path.dirname(old.dataPath);
  const tmp = path.join(dir, `${segmentName(old.baseOffset)}${REPAIR_SUFFIX}`);
  await fs.unlink(tmp).catch(() => undefined);
  const file = await fs.open(tmp, "create");
  try {
    let position = 0;
    const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(1, damage.position)));
    while (position < damage.position) {
      const want = chunk.subarray(0, Math.min(chunk.length, damage.position - position));
      const got = await readFully(old.file, want, position);
      if (got < want.length) throw new Error(`${old.dataPath} ended at ${position + got} while copying`);
      await writeFully(file, want, position);
      position += want.length;
    }
    const sizes = records.map((r) => frameSize(r) as number);
    const tail = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const record of records) at = encodeFrame(tail, at, record, record.offset, record.timestamp);
    await writeFully(file, tail, position);
    await file.datasync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await file.close();
  // The old index describes the old bytes; the new segment's is rebuilt by the scan at open.
  await old.dropIndexFile(fs);
  await fs.rename(tmp, old.dataPath);
  await fs.syncDir(dir);
  const replacement = await Segment.open(fs, dir, old.baseOffset, {
    active: false,
    nextSegmentBase: damage.toOffset,
    indexIntervalBytes: options.indexIntervalBytes,
    logger: options.logger,
  });
  if (replacement.nextOffset !== damage.toOffset) {
    // Cannot happen with records that passed checkRange, short of a disk failing again under us.
    options.logger.error(
      { segment: old.dataPath, nextOffset: replacement.nextOffset, expected: damage.toOffset },
      "the repaired segment does not end where it should",
    );
  }
  return replacement;
}

function checkRange(damage: SegmentDamage, records: readonly ReplicatedRecord[]): void {
  const want = damage.toOffset - damage.fromOffset;
  if (records.length !== want) {
    throw new InvalidArgumentError(
      `a repair of offsets ${damage.fromOffset}..${damage.toOffset - 1} needs ${want} records, got ${records.length}`,
    );
  }
  records.forEach((record, i) => {
    if (record.offset !== damage.fromOffset + i) {
      throw new InvalidArgumentError(
        `repair record ${i} has offset ${record.offset}, expected ${damage.fromOffset + i}`,
      );
    }
    const size = frameSize(record);
    if (typeof size === "string") throw new InvalidArgumentError(`repair record ${record.offset}: ${size}`);
  });
}
