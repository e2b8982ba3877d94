import { InvalidArgumentError } from "../errors.js";
import { silentLogger, type Logger } from "../observability/logger.js";
import type { StorageFileSystem } from "./file-system.js";
import { MAX_FRAME_BYTES, MIN_FRAME_BYTES } from "./record-format.js";
import type { VolumeSync } from "./volume-sync.js";

/** When an append counts as done. */
export type FsyncPolicy = "always" | "interval";

export interface PartitionLogOptions {
  /** The partition's directory; created when missing. One log per directory, one process at a time. */
  dir: string;
  /** Roll to a new segment once the active one would exceed this many bytes. Default 64 MiB, max 1 GiB. */
  segmentBytes?: number;
  /** Add a sparse index entry every this many bytes of records. Default 4 KiB. */
  indexIntervalBytes?: number;
  /**
   * "always" (default): an append resolves after an fsync covering it; concurrent appends share one
   * fsync (group commit). "interval": it resolves once written to the OS; an fsync runs every
   * fsyncIntervalMs, so a machine crash (not a process crash) can lose that window.
   */
  fsync?: FsyncPolicy;
  /** Period of the background fsync in "interval" mode. Default 200 ms. */
  fsyncIntervalMs?: number;
  /**
   * "interval" mode: the broker's one sync of its data directory's filesystem per interval, which this
   * log's writes join instead of fsyncing its file on a timer of its own (volume-sync.ts). Default: none.
   */
  volumeSync?: VolumeSync;
  /** enforceRetention deletes sealed segments whose newest record is older than this. Default: keep. */
  retentionMs?: number;
  /** enforceRetention deletes the oldest sealed segments while the rest still holds this many bytes. Default: keep. */
  retentionBytes?: number;
  /** Largest encoded record (frame) accepted. Default 1 MiB + 16 KiB (a 1 MiB payload with key and headers). */
  maxRecordBytes?: number;
  /** Byte budget of decoded recent records served to readers without disk I/O. Default 4 MiB; 0 disables. */
  tailCacheBytes?: number;
  /** First offset of a brand-new (empty directory) log. Default 0. */
  initialOffset?: number;
  /** Where recovery and I/O failures are reported. Default: silent. */
  logger?: Logger;
  /** File operations; the default is the real file system. Tests inject failures through it. */
  fileSystem?: StorageFileSystem;
  /** Called with the duration (seconds) of every data fsync, e.g. to feed goulette_broker_fsync_seconds. */
  onFsync?: (seconds: number) => void;
  /** Clock for records appended without a timestamp. Default Date.now. */
  now?: () => number;
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_INDEX_INTERVAL_BYTES = 4096;
export const DEFAULT_FSYNC_INTERVAL_MS = 200;
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024 + 16 * 1024;
export const DEFAULT_TAIL_CACHE_BYTES = 4 * 1024 * 1024;
/** Largest single append batch; it bounds how far one batch can overflow a segment (positions are u32). */
export const MAX_BATCH_BYTES = 1024 * 1024 * 1024;

/** The options with every default applied. */
export type ResolvedPartitionLogOptions = Required<
  Omit<PartitionLogOptions, "retentionMs" | "retentionBytes" | "onFsync" | "volumeSync">
> &
  Pick<PartitionLogOptions, "retentionMs" | "retentionBytes" | "onFsync" | "volumeSync">;

function checkInteger(name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

export function resolveOptions(
  options: PartitionLogOptions,
  defaultFs: StorageFileSystem,
): ResolvedPartitionLogOptions {
  if (!options.dir) throw new InvalidArgumentError("dir must name the partition directory");
  if (options.fsync !== undefined && options.fsync !== "always" && options.fsync !== "interval") {
    throw new InvalidArgumentError(`fsync must be "always" or "interval", got ${String(options.fsync)}`);
  }
  checkInteger("segmentBytes", options.segmentBytes, 1, MAX_SEGMENT_BYTES);
  checkInteger("indexIntervalBytes", options.indexIntervalBytes, 1, MAX_SEGMENT_BYTES);
  checkInteger("fsyncIntervalMs", options.fsyncIntervalMs, 1, 3_600_000);
  checkInteger("retentionMs", options.retentionMs, 0, Number.MAX_SAFE_INTEGER);
  checkInteger("retentionBytes", options.retentionBytes, 0, Number.MAX_SAFE_INTEGER);
  checkInteger("maxRecordBytes", options.maxRecordBytes, MIN_FRAME_BYTES, MAX_FRAME_BYTES);
  checkInteger("tailCacheBytes", options.tailCacheBytes, 0, Number.MAX_SAFE_INTEGER);
  checkInteger("initialOffset", options.initialOffset, 0, Number.MAX_SAFE_INTEGER);
  return {
    dir: options.dir,
    segmentBytes: options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
    indexIntervalBytes: options.indexIntervalBytes ?? DEFAULT_INDEX_INTERVAL_BYTES,
    fsync: options.fsync ?? "always",
    fsyncIntervalMs: options.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS,
    retentionMs: options.retentionMs,
    retentionBytes: options.retentionBytes,
    maxRecordBytes: options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    tailCacheBytes: options.tailCacheBytes ?? DEFAULT_TAIL_CACHE_BYTES,
    initialOffset: options.initialOffset ?? 0,
    logger: options.logger ?? silentLogger(),
    fileSystem: options.fileSystem ?? defaultFs,
    onFsync: options.onFsync,
    volumeSync: options.volumeSync,
    now: options.now ?? Date.now,
  };
}
