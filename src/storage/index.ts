export { crc32c } from "./crc32c.js";
export {
  CorruptRecordError,
  LogClosedError,
  NonContiguousOffsetError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  StorageError,
} from "./errors.js";
export { type FrameRun, type FrameSink } from "./frame-run.js";
export { OpenFileCache, defaultMaxOpenFiles } from "./file-cache.js";
export { SyncfsHelper } from "./syncfs-helper.js";
export {
  VolumeSync,
  VolumeSyncUnavailableError,
  type SyncVolume,
  type VolumeSyncCompletion,
  type VolumeSyncMember,
} from "./volume-sync.js";
export { nodeFileSystem, type StorageFile, type StorageFileSystem } from "./file-system.js";
export {
  openPartitionLog,
  type AppendResult,
  type PartitionLog,
  type PartitionLogStats,
  type ReadOptions,
  type RetentionResult,
  type SegmentInfo,
} from "./partition-log.js";
export {
  DEFAULT_FSYNC_INTERVAL_MS,
  DEFAULT_INDEX_INTERVAL_BYTES,
  DEFAULT_MAX_RECORD_BYTES,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_TAIL_CACHE_BYTES,
  type FsyncPolicy,
  type PartitionLogOptions,
} from "./partition-log-options.js";
export { type LogDamage } from "./segment.js";
export { type SegmentDamage, type VerifyPace } from "./segment-verify.js";
export {
  RECORD_MAGIC,
  type AppendRecord,
  type RecordHeader,
  type ReplicatedRecord,
  type StoredRecord,
} from "./record-format.js";
export {
  createFaultyFileSystem,
  errnoError,
  type FaultDecision,
  type FaultyFileSystemOptions,
  type FileOperation,
} from "./faulty-file-system.js";
