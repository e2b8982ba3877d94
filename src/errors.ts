import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The error hierarchy. Every error that can cross the wire is a GouletteError with a Connect code;
 * retryability is a property of the class, not a decision scattered over call sites.
 */
export class GouletteError extends Error {
  readonly code: Code;
  readonly retryable: boolean;

  constructor(message: string, code: Code, retryable = false, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }

  /** Metadata (trailers) the error carries on the wire beside its code and message: hints for the caller. */
  wireMetadata(): Record<string, string> | undefined {
    return undefined;
  }
}

/** The request is malformed or names impossible values; retrying will not help. */
export class InvalidArgumentError extends GouletteError {
  constructor(message: string) {
    super(message, Code.InvalidArgument);
  }
}

/** A broker, topic or partition that does not exist. */
export class NotFoundError extends GouletteError {
  constructor(message: string) {
    super(message, Code.NotFound);
  }
}

/** The request is valid but the cluster is not in a state to carry it out (e.g. too few brokers). */
export class FailedPreconditionError extends GouletteError {
  constructor(message: string) {
    super(message, Code.FailedPrecondition);
  }
}

/** Temporarily impossible: no leader, etcd unreachable, still recovering. Retry with backoff. */
export class UnavailableError extends GouletteError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.Unavailable, true, options);
  }
}

/** This sentinel lost leadership while it was writing: its append was fenced off by etcd. */
export class NotLeaderError extends GouletteError {
  constructor(message = "this sentinel is not the leader (its election key is gone)") {
    super(message, Code.Unavailable, true);
  }
}

/**
 * An idempotent producer's record reached its partition leader before the message it follows was stored
 * there: nothing of it was stored; sent again after the earlier messages, it goes through. Aborted on the
 * wire (a retryable conflict).
 */
export class OutOfOrderError extends GouletteError {
  constructor(message: string) {
    super(message, Code.Aborted, true);
  }
}

/** Header (gRPC trailer) of an OverloadedError: how long the caller should wait before retrying, in ms. */
export const RETRY_AFTER_HEADER = "goulette-retry-after-ms";

/**
 * The server is taking as much of this kind of work as it can commit (e.g. topic creations on the
 * sentinel leader): retry after about `retryAfterMs`, with backoff and jitter. ResourceExhausted on the
 * wire, with the hint in RETRY_AFTER_HEADER.
 */
export class OverloadedError extends GouletteError {
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, Code.ResourceExhausted, true, options);
    this.retryAfterMs = retryAfterMs;
  }

  override wireMetadata(): Record<string, string> {
    return { [RETRY_AFTER_HEADER]: String(Math.round(this.retryAfterMs)) };
  }
}

/** Credentials missing or wrong. */
export class UnauthenticatedError extends GouletteError {
  constructor(message: string) {
    super(message, Code.Unauthenticated);
  }
}

/** Authenticated, but this identity may not make this call (or not with these arguments). */
export class PermissionDeniedError extends GouletteError {
  constructor(message: string) {
    super(message, Code.PermissionDenied);
  }
}

/** Codes of errors from the wire that the same call may get past later (with backoff). */
const RETRYABLE_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
]);

/** True when a call that failed with this code (from the wire) may succeed if tried again. */
export function isRetryableCode(code: Code): boolean {
  return RETRYABLE_CODES.has(code);
}

/** True when the same call may succeed later. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof GouletteError) return err.retryable;
  if (err instanceof ConnectError) return isRetryableCode(err.code);
  return false;
}

/**
 * Translates any error into the ConnectError that goes on the wire, with the hints the error carries
 * (wireMetadata) as metadata; unknown errors become Internal. The RPC servers call it once, at their
 * edge (the errorTranslation interceptor, unary and streaming alike).
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof GouletteError) {
    const hints = err.wireMetadata();
    const metadata = hints === undefined ? undefined : new Headers(hints);
    return new ConnectError(err.message, err.code, metadata, undefined, err);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(`internal error: ${message}`, Code.Internal, undefined, undefined, err);
}

/** The message of any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
