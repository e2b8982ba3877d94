import type { Message } from "../gen/goulette/v1/broker_pb.js";

/** Bytes, or text sent as UTF-8. */
export type Bytes = Uint8Array | string;

/** A message to produce. */
export interface ProducerMessage {
  /** The producer's `topic` option when omitted. */
  topic?: string;
  /** Messages with the same key go to the same partition (stable hash); no key: the producer's partitioner. */
  key?: Bytes;
  value: Bytes;
  headers?: Record<string, Bytes>;
  /** This partition instead of the key's or the partitioner's. */
  partition?: number;
  /** Unix milliseconds; the broker's clock when omitted. */
  timestamp?: number;
}

/** Where an acknowledged message was stored. */
export interface ProduceAck {
  topic: string;
  partition: number;
  /** Its offset in the partition (-1 when the broker knew it was a duplicate but no longer its offset). */
  offset: number;
  /** The idempotency id it was sent with (per producer id and partition). */
  messageId: number;
  /** True when a retry found the message already written (it was written once). */
  duplicate: boolean;
}

export interface MessageHeader {
  key: string;
  value: Uint8Array;
}

/** A consumed message. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  /** Unix milliseconds. */
  timestamp: number;
  key: Uint8Array;
  value: Uint8Array;
  headers: MessageHeader[];
  /** The producer id and message id it was written with ("" and 0 when produced without). */
  producerId: string;
  messageId: number;
  /** The partition's high watermark when the message was sent (lag = highWatermark - offset - 1). */
  highWatermark: number;
  /** The value as UTF-8 text. */
  text(): string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function toBytes(value: Bytes | undefined): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  return typeof value === "string" ? encoder.encode(value) : value;
}

/** UTF-8 text of bytes (invalid sequences become U+FFFD). */
export function decodeText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

class ReceivedMessage implements ConsumedMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly headers: MessageHeader[];
  readonly producerId: string;
  readonly messageId: number;
  readonly highWatermark: number;

  constructor(m: Message, batch: BatchContext | undefined) {
    this.topic = batch ? batch.topic : m.topic;
    this.partition = batch ? batch.partition : m.partition;
    this.offset = Number(m.offset);
    this.timestamp = Number(m.timestamp);
    this.key = m.key;
    this.value = m.payload;
    this.headers = m.headers.map((h) => ({ key: h.key, value: h.value }));
    this.producerId = m.producerId;
    this.messageId = Number(m.messageId);
    this.highWatermark = batch ? batch.highWatermark : Number(m.highWatermark);
  }

  text(): string {
    return decodeText(this.value);
  }
}

/** What a FetchResponse carries once for all its messages (they leave these fields unset). */
export interface BatchContext {
  topic: string;
  partition: number;
  highWatermark: number;
}

/** A pulled Message, or one of a fetched batch (then `batch` supplies topic, partition and hw). */
export function toConsumedMessage(m: Message, batch?: BatchContext): ConsumedMessage {
  return new ReceivedMessage(m, batch);
}
