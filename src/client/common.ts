/** What both entry points (node.ts, web.ts) export besides their transport and bound classes. */
export {
  AbortedError,
  BrokerUnreachableError,
  ClientClosedError,
  DeliveryTimeoutError,
  MessageRejectedError,
  NoSentinelReachableError,
  ProduceUnsupportedError,
  isConnectionFailure,
  toClientError,
  type RejectionReason,
} from "./errors.js";
export {
  FailedPreconditionError,
  GouletteError,
  InvalidArgumentError,
  NotFoundError,
  UnauthenticatedError,
  UnavailableError,
  isRetryable,
} from "../errors.js";
export type { ClientEvent, CommonClientOptions } from "./events.js";
export type { Bytes, ConsumedMessage, MessageHeader, ProduceAck, ProducerMessage } from "./messages.js";
export { decodeText } from "./messages.js";
export { partitionForKey, type KeylessPartitioning } from "./partitioner.js";
export type { ClientTransport } from "./transport.js";
export { PRODUCE_METHOD } from "./produce-channel.js";
export type { ProducerOptions, ProducerStats } from "./producer.js";
export type { ConsumerOptions, ConsumerStats } from "./consumer.js";
export type { AdminOptions } from "./admin.js";
export type { TopicShape } from "./topic-metadata.js";
export type {
  DeleteOffsetsOptions,
  GroupDescription,
  GroupMember,
  GroupPartitionOffsets,
  OffsetDeletion,
  OffsetReset,
  OffsetTarget,
  ResetOffsetsOptions,
  TopicPartition,
} from "./group-admin.js";
export type { DeleteRecordsOptions, RecordsDeletion } from "./records-admin.js";
