import type { CommonClientOptions } from "./events.js";
import type { KeylessPartitioning } from "./partitioner.js";
import type { TopicShape } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

/** The options of a Producer (src/client/producer.ts) and its counters. */

export interface ProducerOptions extends CommonClientOptions {
  /** How to reach sentinels and brokers (the Node and web entry points supply one). */
  transport: ClientTransport;
  /** Close `transport` when the producer closes (default false: the caller owns it). */
  ownsTransport?: boolean;
  /** Topic of messages that name none. */
  topic?: string;
  /**
   * The shape of a topic this producer creates by producing to it (a topic is created by the first
   * GetBrokers that names it). Ignored for existing topics.
   */
  createTopic?: TopicShape;
  /** "all" (default): acknowledged once every in-sync replica has it; "leader": once the leader has. */
  acks?: "all" | "leader";
  /**
   * Where messages with neither key nor partition go (default "sticky"): "sticky" fills one partition's
   * batch until it is sent or full, then moves to the next partition (Kafka's default; full batches
   * however many partitions the topic has); "round-robin" puts each message in the next partition.
   */
  partitioner?: KeylessPartitioning;
  /** How long a partial batch waits for more messages before it is sent (ms, default 5). */
  lingerMs?: number;
  /** Messages per partition batch at most (default 500). */
  maxBatchMessages?: number;
  /** Payload bytes per partition batch at most (default 1 MiB; a larger single message goes alone). */
  maxBatchBytes?: number;
  /**
   * Payload bytes per request at most (default 4 MiB): one request to a broker carries the batches of
   * every partition it leads that has messages to send, up to this; a single larger batch goes alone.
   */
  maxRequestBytes?: number;
  /**
   * The sliding window: messages sent and not yet acknowledged, over all partitions (default 16384). Bytes
   * on the wire are bounded anyway (maxInFlightRequestsPerBroker × maxRequestBytes per broker); this
   * bounds how many records wait for acknowledgements, which is what throughput over thousands of
   * partitions needs plenty of (a record or two per partition per request costs the brokers dearly).
   */
  maxInFlightMessages?: number;
  /**
   * The window of one partition (default 1000). Keep it at or below the brokers' idempotency window
   * (1024 message ids per producer and partition), so that every retry is recognised as one.
   */
  maxInFlightPerPartition?: number;
  /**
   * Requests in flight to one broker at most (default 5, Kafka's max.in.flight.requests.per.connection).
   * While they are out, what is sent meanwhile queues up and goes in the next request, batches of many
   * partitions together: with records spread over many partitions, this is what makes requests large.
   */
  maxInFlightRequestsPerBroker?: number;
  /** waitForRoom() waits while this many messages are unacknowledged (default 20000). */
  maxPendingMessages?: number;
  /** A message not acknowledged this long after send() fails with DeliveryTimeoutError (ms, default 120000). */
  deliveryTimeoutMs?: number;
  /** A request without a response this long counts as a broker failure (ms, default 30000). */
  requestTimeoutMs?: number;
  /** First retry delay (ms, default 50); doubles per consecutive failure. */
  retryBackoffMs?: number;
  /** Longest retry delay (ms, default 2000). */
  maxRetryBackoffMs?: number;
  /** The idempotency id of this producer (default: random). Reuse one only for the same message stream. */
  producerId?: string;
}

/** Counters of a producer. */
export interface ProducerStats {
  /** Messages accepted by send() and not settled yet. */
  pending: number;
  /** Messages on the wire, waiting for their acks. */
  inFlight: number;
  acknowledged: number;
  /** Messages that failed for good (rejected, timed out, aborted, closed). */
  failed: number;
  /** Message sends repeated after a retryable error. */
  retried: number;
  /** Requests sent (batches, first attempts and retries). */
  requests: number;
  /** GetBrokers requests that reported unreachable brokers. */
  unreachableReports: number;
  /** Broker ids reported unreachable, in order (repeats included). */
  unreachableBrokers: string[];
  /** Moves from a failed sentinel to another one. */
  sentinelFailovers: number;
}

export const PRODUCER_DEFAULTS = {
  lingerMs: 5,
  maxBatchMessages: 500,
  maxBatchBytes: 1024 * 1024,
  maxRequestBytes: 4 * 1024 * 1024,
  maxInFlightMessages: 16_384,
  maxInFlightPerPartition: 1000,
  maxInFlightRequestsPerBroker: 5,
  maxPendingMessages: 20_000,
  deliveryTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  retryBackoffMs: 50,
  maxRetryBackoffMs: 2_000,
  sentinelTimeoutMs: 5_000,
};
