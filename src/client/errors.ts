import { Code, ConnectError } from "@connectrpc/connect";
import {
  FailedPreconditionError,
  GouletteError,
  InvalidArgumentError,
  NotFoundError,
  OverloadedError,
  RETRY_AFTER_HEADER,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
  isRetryableCode,
} from "../errors.js";

/**
 * Errors the client SDK throws. Every one is a GouletteError, so `err.code` (a Connect code) and
 * `err.retryable` work the same on both sides of the wire.
 */

/** A broker did not answer (connection refused or reset, or no response in time). */
export class BrokerUnreachableError extends UnavailableError {
  readonly brokerId: string;
  readonly address: string;

  constructor(brokerId: string, address: string, options?: ErrorOptions) {
    const cause = options?.cause === undefined ? "" : `: ${errorMessage(options.cause)}`;
    super(`broker ${brokerId} (${address}) is unreachable${cause}`, options);
    this.brokerId = brokerId;
    this.address = address;
  }
}

/** Every sentinel URL of the list failed; `errors` holds one failure per URL. */
export class NoSentinelReachableError extends UnavailableError {
  readonly urls: readonly string[];
  readonly errors: readonly Error[];

  constructor(urls: readonly string[], errors: readonly Error[]) {
    super(
      `no sentinel answered (${urls.length} tried): ` +
        errors.map((err, i) => `${urls[i] ?? "?"}: ${err.message}`).join("; "),
      { cause: errors[errors.length - 1] },
    );
    this.urls = urls;
    this.errors = errors;
  }
}

/** Why a broker refused a message for good (retrying the same message cannot succeed). */
export type RejectionReason = "message-too-large" | "invalid" | "unknown";

/** The broker refused this message (too large, bad timestamp...). Other messages are not affected. */
export class MessageRejectedError extends GouletteError {
  readonly reason: RejectionReason;

  constructor(reason: RejectionReason, message: string) {
    super(message, Code.InvalidArgument);
    this.reason = reason;
  }
}

/**
 * A message was not acknowledged within the producer's deliveryTimeoutMs. When it had been sent, it may
 * or may not have been written: the producer cannot tell.
 */
export class DeliveryTimeoutError extends GouletteError {
  readonly attempts: number;

  constructor(timeoutMs: number, attempts: number, lastError?: unknown) {
    super(
      `not acknowledged within ${timeoutMs} ms (${attempts} attempt${attempts === 1 ? "" : "s"})` +
        (lastError === undefined ? "" : `; last error: ${errorMessage(lastError)}`),
      Code.DeadlineExceeded,
      false,
      lastError === undefined ? undefined : { cause: lastError },
    );
    this.attempts = attempts;
  }
}

/** The producer, consumer or admin client was closed (or closed while this call waited). */
export class ClientClosedError extends FailedPreconditionError {
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

/** A partition this group member does not (or no longer) own: another member commits its offsets. */
export class PartitionNotOwnedError extends FailedPreconditionError {
  readonly topic: string;
  readonly partition: number;

  constructor(topic: string, partition: number, why: string) {
    super(`partition ${topic}/${partition} ${why}`);
    this.topic = topic;
    this.partition = partition;
  }
}

/**
 * Another consumer joined the group with this consumer's `instanceId` and took its place (static
 * membership: the newest process wins); this one stopped.
 */
export class MemberReplacedError extends GouletteError {
  readonly group: string;

  constructor(group: string, detail: string) {
    super(`another consumer took this member's place in group ${group}: ${detail}`, Code.Aborted, false);
    this.group = group;
  }
}

/** The caller's AbortSignal fired. `reason` is the signal's reason. */
export class AbortedError extends GouletteError {
  readonly reason: unknown;

  constructor(reason: unknown, what = "the operation") {
    super(`${what} was aborted${reason === undefined ? "" : `: ${abortReasonText(reason)}`}`, Code.Canceled);
    this.reason = reason;
  }
}

/** The broker serves no unary Produce RPC, which clients without HTTP/2 streaming (browsers) need. */
export class ProduceUnsupportedError extends GouletteError {
  constructor(address: string) {
    super(
      `broker ${address} does not serve goulette.v1.BrokerService/Produce, which browsers (HTTP/1.1, no ` +
        "bidirectional streams) need to produce; put the example gateway in front of it (docs/client.md)",
      Code.Unimplemented,
    );
  }
}

function abortReasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return String(reason);
}

/** The typed error for any value thrown by a call (ConnectErrors are mapped by code). */
export function toClientError(err: unknown): GouletteError {
  if (err instanceof GouletteError) return err;
  if (!(err instanceof ConnectError)) {
    return new GouletteError(errorMessage(err), Code.Unknown, false, { cause: err });
  }
  const message = err.rawMessage;
  switch (err.code) {
    case Code.InvalidArgument:
      return withCause(new InvalidArgumentError(message), err);
    case Code.NotFound:
      return withCause(new NotFoundError(message), err);
    case Code.FailedPrecondition:
      return withCause(new FailedPreconditionError(message), err);
    case Code.Unauthenticated:
      return withCause(new UnauthenticatedError(message), err);
    case Code.Unavailable:
      return new UnavailableError(message, { cause: err });
    case Code.ResourceExhausted: {
      // An overload refusal carries a retry hint; a request over a size limit does not (and is final).
      const hint = Number(err.metadata.get(RETRY_AFTER_HEADER) ?? NaN);
      if (Number.isFinite(hint)) return new OverloadedError(message, hint, { cause: err });
      return new GouletteError(message, err.code, true, { cause: err });
    }
    default:
      return new GouletteError(message, err.code, isRetryableCode(err.code), { cause: err });
  }
}

function withCause<E extends Error>(target: E, cause: unknown): E {
  Object.defineProperty(target, "cause", { value: cause, enumerable: false, configurable: true });
  return target;
}

/**
 * True when the call failed because the peer could not be reached, did not answer in time, or the
 * connection was cut (as opposed to an error the peer sent back; call it only when the caller's own
 * AbortSignal did not fire). Transport failures carry the network error as their cause: a refused
 * or reset connection, a failed fetch; a deadline means the peer never answered.
 */
/**
 * The partition leader refused this member's epoch (ABORTED from the broker: the group gave the
 * partition to another member). Not a connection reset, which Node's HTTP/2 client also reports as
 * ABORTED ("read ECONNRESET") when a broker dies mid-call: that one is retried, the partition kept.
 */
export function isFenced(err: unknown): err is ConnectError {
  return err instanceof ConnectError && err.code === Code.Aborted && !isConnectionFailure(err);
}

export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof BrokerUnreachableError) return true;
  if (!(err instanceof ConnectError)) return false;
  // No answer in time; or the stream was cut under us (the caller checks its own abort signal first).
  if (err.code === Code.DeadlineExceeded || err.code === Code.Canceled) return true;
  const cause = err.cause;
  if (cause instanceof Error && !(cause instanceof ConnectError)) return true;
  // Errors raised by the HTTP/2 client itself (a session that died under an open stream).
  return (
    (err.code === Code.Unavailable || err.code === Code.Unknown || err.code === Code.Internal) &&
    /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|socket hang up|GOAWAY|ERR_HTTP2|NGHTTP2|fetch failed|Failed to fetch|NetworkError/.test(
      err.rawMessage,
    )
  );
}
