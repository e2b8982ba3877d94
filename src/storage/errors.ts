import { Code } from "@connectrpc/connect";
import { FailedPreconditionError, GouletteError, InvalidArgumentError, errorMessage } from "../errors.js";

/**
 * A stored record failed its CRC or framing check. The bad bytes are never returned; the error names
 * where they are so an operator (or the replication layer) can act on it.
 */
export class CorruptRecordError extends GouletteError {
  /** The offset the reader expected at that position (the stored one cannot be trusted). */
  readonly offset: number;
  /** Path of the segment file holding the damaged frame. */
  readonly segmentFile: string;
  /** Byte position of the damaged frame in that file. */
  readonly position: number;

  constructor(offset: number, segmentFile: string, position: number, reason: string) {
    super(
      `corrupt record at offset ${offset} (${segmentFile}, byte ${position}): ${reason}`,
      Code.DataLoss,
      false,
    );
    this.offset = offset;
    this.segmentFile = segmentFile;
    this.position = position;
  }
}

/** One record encodes to more bytes than `maxRecordBytes` allows; nothing of its batch was written. */
export class RecordTooLargeError extends InvalidArgumentError {
  readonly sizeBytes: number;
  readonly maxBytes: number;

  constructor(sizeBytes: number, maxBytes: number, index: number) {
    super(`record ${index} of the batch encodes to ${sizeBytes} bytes, more than the limit of ${maxBytes}`);
    this.sizeBytes = sizeBytes;
    this.maxBytes = maxBytes;
  }
}

/**
 * The file system refused an operation (ENOSPC, EACCES, EROFS, EIO...). The failed append left nothing
 * readable behind; retrying may succeed once the cause is gone (space freed, disk remounted).
 */
export class StorageError extends GouletteError {
  /** The errno code of the cause when it had one, e.g. "ENOSPC". */
  readonly errno: string | undefined;

  constructor(what: string, cause: unknown) {
    const errno = errnoOf(cause);
    super(`${what}: ${errorMessage(cause)}`, Code.Unavailable, true, { cause });
    this.errno = errno;
  }
}

/** A read asked for an offset outside [logStartOffset, logEndOffset]. */
export class OffsetOutOfRangeError extends GouletteError {
  readonly requested: number;
  readonly logStartOffset: number;
  readonly logEndOffset: number;

  constructor(requested: number, logStartOffset: number, logEndOffset: number) {
    super(
      `offset ${requested} is outside the log [${logStartOffset}, ${logEndOffset})`,
      Code.OutOfRange,
      false,
    );
    this.requested = requested;
    this.logStartOffset = logStartOffset;
    this.logEndOffset = logEndOffset;
  }
}

/** A replicated batch does not continue the log exactly (a gap, an overlap or out-of-order offsets). */
export class NonContiguousOffsetError extends FailedPreconditionError {
  readonly expected: number;
  readonly actual: number;

  constructor(expected: number, actual: number) {
    super(`replicated record has offset ${actual}, but the log expects ${expected} next`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** The log was closed (or is closing); open it again to use it. */
export class LogClosedError extends FailedPreconditionError {
  constructor(dir: string) {
    super(`partition log ${dir} is closed`);
  }
}

function errnoOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
