/**
 * The log start set by a deletion of records (`PartitionLog.deleteRecordsBefore`), kept in one small
 * file of the partition directory. Segments hold whole runs of records, so a log start inside a segment
 * cannot be told by the segment files alone; this file says where reads begin until the segments below
 * it are gone. Replaced crash-atomically (temp file, fsync, rename, directory fsync): after a crash the
 * log start is the old one or the new one, never a mix.
 */
import path from "node:path";

import type { StorageFileSystem } from "./file-system.js";
import { StorageError } from "./errors.js";
import { isNotFound, writeFully } from "./segment.js";

export const LOG_START_FILE = "log-start-offset";
const TEMP_SUFFIX = ".tmp";

/** The recorded log start, or 0 when none was ever recorded. */
export async function readLogStart(fs: StorageFileSystem, dir: string): Promise<number> {
  const file = path.join(dir, LOG_START_FILE);
  let text: string;
  try {
    const handle = await fs.open(file, "read");
    try {
      const buffer = Buffer.alloc(32);
      const n = await handle.read(buffer, 0, buffer.length, 0);
      text = buffer.toString("utf8", 0, n);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isNotFound(err)) return 0;
    throw new StorageError(`cannot read ${file}`, err);
  }
  const offset = Number(text.trim());
  if (!/^\d+\s*$/.test(text) || !Number.isSafeInteger(offset)) {
    throw new StorageError(`${file} is damaged`, new Error(`it holds '${text.trim()}', not an offset`));
  }
  return offset;
}

/** Records `offset` as the log start (durably, before it returns). */
export async function writeLogStart(fs: StorageFileSystem, dir: string, offset: number): Promise<void> {
  const file = path.join(dir, LOG_START_FILE);
  const temp = file + TEMP_SUFFIX;
  await fs.unlink(temp).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  const handle = await fs.open(temp, "create");
  try {
    await writeFully(handle, Buffer.from(`${offset}\n`, "utf8"), 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, file);
  await fs.syncDir(dir);
}

/** Forgets the recorded log start (the log restarts at its first segment's base). */
export async function removeLogStart(fs: StorageFileSystem, dir: string): Promise<void> {
  for (const name of [LOG_START_FILE, LOG_START_FILE + TEMP_SUFFIX]) {
    await fs.unlink(path.join(dir, name)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}
