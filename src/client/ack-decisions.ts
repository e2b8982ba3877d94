import { OutOfOrderError, UnavailableError, type GouletteError } from "../errors.js";
import { ProduceError, type MessageAck } from "../gen/goulette/v1/broker_pb.js";
import {
  BrokerUnreachableError,
  MessageRejectedError,
  isConnectionFailure,
  toClientError,
} from "./errors.js";
import type { ProduceAck } from "./messages.js";

/**
 * What the producer does with one record once its request is answered: pure decisions (kafkajs's
 * sendMessages.js response handling), so every produce error code is settled in one place and tested
 * without a broker.
 */
export type AckDecision =
  | { kind: "acknowledged"; ack: ProduceAck }
  /** Send again (same message id: the broker deduplicates); `refresh`: ask where the leader is first. */
  | { kind: "retry"; error: GouletteError; reason: string; refresh: boolean }
  /** The broker refused the record for good. */
  | { kind: "rejected"; error: MessageRejectedError };

/** The decision for the record `messageId` of partition `topic`#`partition`, answered by `ack`. */
export function decideAck(
  topic: string,
  partition: number,
  messageId: bigint,
  ack: MessageAck | undefined,
): AckDecision {
  if (!ack || ack.messageId !== messageId) {
    return {
      kind: "retry",
      error: new UnavailableError("the broker's response did not carry this message's ack"),
      reason: "incomplete response",
      refresh: false,
    };
  }
  switch (ack.error) {
    case ProduceError.NONE:
      return {
        kind: "acknowledged",
        ack: {
          topic,
          partition,
          offset: Number(ack.offset),
          messageId: Number(messageId),
          duplicate: ack.duplicate,
        },
      };
    case ProduceError.NOT_LEADER:
    case ProduceError.UNKNOWN_PARTITION:
    case ProduceError.NOT_ENOUGH_REPLICAS:
    case ProduceError.STORAGE:
      return {
        kind: "retry",
        error: new UnavailableError(ack.errorMessage || ProduceError[ack.error]),
        reason: ProduceError[ack.error] ?? String(ack.error),
        // Leadership moved (or not taken yet): retry once the sentinels say where it is now.
        refresh: ack.error === ProduceError.NOT_LEADER || ack.error === ProduceError.UNKNOWN_PARTITION,
      };
    case ProduceError.OUT_OF_ORDER:
      // An earlier message of the partition is not stored yet: resent in order after it (same leader).
      return {
        kind: "retry",
        error: new OutOfOrderError(ack.errorMessage || "out of order"),
        reason: "OUT_OF_ORDER",
        refresh: false,
      };
    case ProduceError.MESSAGE_TOO_LARGE:
      return { kind: "rejected", error: new MessageRejectedError("message-too-large", ack.errorMessage) };
    case ProduceError.INVALID:
      return { kind: "rejected", error: new MessageRejectedError("invalid", ack.errorMessage) };
    default:
      return {
        kind: "rejected",
        error: new MessageRejectedError("unknown", ack.errorMessage || `produce error ${ack.error}`),
      };
  }
}

/** What the producer does with the records of a request that failed as a whole. */
export type FailureDecision =
  /** The connection failed: report the broker unreachable, then retry on the new assignment. */
  | { kind: "unreachable"; error: BrokerUnreachableError }
  | { kind: "retry"; error: GouletteError }
  | { kind: "fail"; error: GouletteError };

/** The decision for a request to `leaderId` at `address` that failed with `err`. */
export function decideFailure(leaderId: string, address: string, err: unknown): FailureDecision {
  if (isConnectionFailure(err)) {
    return { kind: "unreachable", error: new BrokerUnreachableError(leaderId, address, { cause: err }) };
  }
  const error = toClientError(err);
  return error.retryable ? { kind: "retry", error } : { kind: "fail", error };
}
