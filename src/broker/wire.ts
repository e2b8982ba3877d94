import type {
  Header,
  Message,
  MessageAck,
  ProduceError,
  ReplicatedRecord as ReplicatedRecordMessage,
} from "../gen/goulette/v1/broker_pb.js";
import type { RecordHeader, StoredRecord } from "../storage/index.js";

/**
 * Per-record wire messages built as plain objects: protobuf-es messages are plain objects with a
 * `$typeName`, and `create()` costs several times more per record on the produce, pull and replication
 * paths (it walks the schema for every object).
 */

const NO_HEADERS: Header[] = [];

export function toHeaders(headers: readonly RecordHeader[]): Header[] {
  if (headers.length === 0) return NO_HEADERS;
  return headers.map((h) => ({ $typeName: "goulette.v1.Header", key: h.key, value: h.value }));
}

export function messageAck(
  messageId: bigint,
  offset: number,
  error: ProduceError,
  errorMessage: string,
  duplicate = false,
): MessageAck {
  return {
    $typeName: "goulette.v1.MessageAck",
    messageId,
    offset: BigInt(offset),
    error,
    errorMessage,
    leaderId: "",
    leaderAddress: "",
    duplicate,
  };
}

export function toMessage(
  topic: string,
  partition: number,
  record: StoredRecord,
  highWatermark: bigint,
): Message {
  return {
    $typeName: "goulette.v1.Message",
    topic,
    partition,
    offset: BigInt(record.offset),
    timestamp: BigInt(record.timestamp),
    key: record.key,
    payload: record.payload,
    headers: toHeaders(record.headers),
    producerId: record.producerId,
    messageId: record.messageId,
    highWatermark,
  };
}

const NO_BYTES = new Uint8Array(0);

/**
 * A record inside a FetchResponse: topic, partition and high watermark stay at their defaults (the
 * response carries them once), so the encoder skips them for every record.
 */
export function toBatchedMessage(record: StoredRecord): Message {
  return {
    $typeName: "goulette.v1.Message",
    topic: "",
    partition: 0,
    offset: BigInt(record.offset),
    timestamp: BigInt(record.timestamp),
    key: record.key.length === 0 ? NO_BYTES : record.key,
    payload: record.payload,
    headers: toHeaders(record.headers),
    producerId: record.producerId,
    messageId: record.messageId,
    highWatermark: 0n,
  };
}

export function toReplicatedRecord(record: StoredRecord): ReplicatedRecordMessage {
  return {
    $typeName: "goulette.v1.ReplicatedRecord",
    offset: BigInt(record.offset),
    timestamp: BigInt(record.timestamp),
    key: record.key,
    payload: record.payload,
    headers: toHeaders(record.headers),
    producerId: record.producerId,
    messageId: record.messageId,
  };
}
