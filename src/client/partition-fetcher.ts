import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import { backoffDelay, sleep } from "./backoff.js";
import {
  AbortedError,
  BrokerUnreachableError,
  isConnectionFailure,
  isFenced,
  toClientError,
} from "./errors.js";
import type { ClientEvent } from "./events.js";
import { toConsumedMessage, type BatchContext, type ConsumedMessage } from "./messages.js";
import type { PartitionLocation, TopicMetadata } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

/** A start position: the log start, its end, an offset, or the last `last` messages of the partition. */
export type StartPosition = "earliest" | "latest" | number | { last: number };

/** Where a read starts: an offset, the log start or end, the last n, or the group's committed offset. */
export type StartAt =
  | { kind: "offset"; offset: number }
  | { kind: "earliest" }
  | { kind: "latest" }
  | { kind: "last"; count: number }
  /** The group's committed offset; `otherwise` where it has none. */
  | { kind: "committed"; otherwise: StartPosition };

/** Where fetched messages go (the consumer's bounded buffer): tryPut without waiting, else put. */
export interface FetchSink {
  tryPut(message: ConsumedMessage): boolean;
  put(message: ConsumedMessage, signal: AbortSignal): Promise<void>;
}

/**
 * GetCommittedOffset needs a group name; a consumer without a group asks with this one only to learn
 * the log range (a read: nothing is stored for it).
 */
export const RANGE_PROBE_GROUP = "goulette.log-range";

export interface PartitionFetcherOptions {
  topic: string;
  partition: number;
  /** The consumer group ("" for none: nothing is looked up or fenced for a group). */
  group: string;
  /**
   * The member epoch sent with GetCommittedOffset: the partition leader raises the group's fence to it,
   * so that the previous owner can no longer commit (0: not a group member, nothing is fenced).
   */
  memberEpoch: bigint;
  /** Where to start. */
  start: StartAt;
  metadata: TopicMetadata;
  transport: ClientTransport;
  headers: Record<string, string>;
  sink: FetchSink;
  /** Messages per pull wait cycle. */
  batchSize: number;
  retryBackoffMs: number;
  maxRetryBackoffMs: number;
  emit: (event: ClientEvent) => void;
  /**
   * The start position, once resolved: "committed" when it is the group's committed offset, "chosen"
   * otherwise (an offset, the log start or end).
   */
  onStart: (offset: number, source: "committed" | "chosen") => void;
  /** GetCommittedOffset answered ABORTED: the group gave the partition to a newer member epoch. */
  onFenced: (err: Error) => void;
  /** Called once with an error no retry can fix (bad credentials, invalid group...). */
  onFatal: (err: Error) => void;
}

/** Offsets past the end are refused with the log's range in the message: "outside the log [s, e)". */
const RANGE = /\[(\d+), (\d+)\)/;
/** A position past the log end is waited for this many times (a new leader catching up) before reset. */
const MAX_AHEAD_RETRIES = 10;

/**
 * Reads one partition from its leader with FetchMessages (a long-polling server stream of record
 * batches) into the shared buffer, and follows the partition when its leader moves. `position` is the
 * next offset to receive; a new stream starts there, so nothing is delivered twice by this consumer and
 * nothing is skipped.
 */
export class PartitionFetcher {
  /** The next offset to receive; undefined until the start position is known. */
  position: number | undefined;
  readonly #clients = new Map<string, Client<typeof BrokerService>>();
  #aheadRetries = 0;

  constructor(private readonly options: PartitionFetcherOptions) {}

  /** Runs until `signal` aborts or a fatal error. */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let location: PartitionLocation | undefined;
      try {
        location = (await this.options.metadata.get(signal)).partitions[this.options.partition];
        if (!location || location.address === "") {
          throw new ConnectError(`partition ${this.options.partition} has no leader`, Code.Unavailable);
        }
        const client = this.#client(location.address);
        const offset = this.position ?? (await this.#startOffset(client, signal));
        const stream = client.fetchMessages(
          {
            topic: this.options.topic,
            partition: this.options.partition,
            offset: BigInt(offset),
            maxMessages: this.options.batchSize,
            consumerGroup: this.options.group,
          },
          { signal, headers: this.options.headers },
        );
        for await (const batch of stream) {
          failures = 0;
          this.#aheadRetries = 0;
          const context: BatchContext = {
            topic: this.options.topic,
            partition: this.options.partition,
            highWatermark: Number(batch.highWatermark),
          };
          for (const message of batch.messages) {
            const at = Number(message.offset);
            if (this.position !== undefined && at < this.position) continue; // already received
            if (this.position !== undefined && at > this.position) {
              this.options.emit({
                type: "offset-reset",
                topic: this.options.topic,
                partition: this.options.partition,
                from: this.position,
                to: at,
                reason: "the leader's log skips these offsets",
              });
            }
            // A batch already received is still iterated after a stop; nothing of it may go out.
            if (signal.aborted) return;
            this.position = at + 1;
            const consumed = toConsumedMessage(message, context);
            if (!this.options.sink.tryPut(consumed)) await this.options.sink.put(consumed, signal);
          }
        }
      } catch (err) {
        if (signal.aborted || err instanceof AbortedError) return;
        failures++;
        if (!(await this.#recover(err, location, signal))) return;
        if (failures > 1 || !(err instanceof ConnectError && err.code === Code.OutOfRange)) {
          try {
            await sleep(
              backoffDelay(failures, this.options.retryBackoffMs, this.options.maxRetryBackoffMs),
              signal,
            );
          } catch {
            return;
          }
        }
      }
    }
  }

  /**
   * Resolves the start position: an offset as given; the group's committed offset (GetCommittedOffset,
   * which also raises the group's fence to this member's epoch); the log start ("earliest") or the high
   * watermark ("latest", what is readable now), both in the leader's GetCommittedOffset answer.
   */
  async #startOffset(client: Client<typeof BrokerService>, signal: AbortSignal): Promise<number> {
    const { topic, partition, group, start } = this.options;
    if (start.kind === "offset") return this.#started(start.offset, "chosen");
    const answer = await client.getCommittedOffset(
      { topic, partition, consumerGroup: group || RANGE_PROBE_GROUP, memberEpoch: this.options.memberEpoch },
      { signal, headers: this.options.headers },
    );
    if (start.kind === "committed" && group !== "" && answer.offset >= 0n) {
      return this.#started(Number(answer.offset), "committed");
    }
    const where =
      start.kind === "committed"
        ? start.otherwise
        : start.kind === "last"
          ? { last: start.count }
          : start.kind;
    const logStart = Number(answer.logStartOffset);
    const highWatermark = Number(answer.highWatermark);
    const offset =
      where === "earliest"
        ? logStart
        : where === "latest"
          ? highWatermark
          : typeof where === "number"
            ? where
            : Math.max(logStart, highWatermark - where.last);
    return this.#started(offset, "chosen");
  }

  #started(offset: number, source: "committed" | "chosen"): number {
    this.position = offset;
    this.options.onStart(offset, source);
    return offset;
  }

  /** Handles a failed stream; false when the fetcher must stop. */
  async #recover(
    err: unknown,
    location: PartitionLocation | undefined,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { topic, metadata } = this.options;
    if (isConnectionFailure(err) && location) {
      const error = new BrokerUnreachableError(location.leaderId, location.address, { cause: err });
      this.#clients.delete(location.address);
      this.options.transport.forget(location.address);
      this.options.emit({
        type: "broker-unreachable",
        topic,
        brokerId: location.leaderId,
        address: location.address,
        error,
      });
      await metadata.refresh([location.leaderId], signal).catch((e: unknown) => this.#refreshFailed(e));
      return true;
    }
    if (err instanceof ConnectError && err.code === Code.OutOfRange) {
      const range = parseRange(err.rawMessage);
      const position = this.position;
      if (range && position !== undefined) {
        const [start, end] = range;
        if (position < start) {
          this.#reset(position, start, "retention or DeleteRecords removed these messages");
        } else if (position > end) {
          // A new leader may still be catching up; after a while, believe its log.
          if (++this.#aheadRetries > MAX_AHEAD_RETRIES)
            this.#reset(position, end, "the leader's log is shorter");
          await metadata.refresh([], signal).catch((e: unknown) => this.#refreshFailed(e));
        }
        return true;
      }
    }
    if (isFenced(err)) {
      // Fenced: the group gave this partition to another member; no retry can fix that.
      this.options.onFenced(toClientError(err));
      return false;
    }
    const error = toClientError(err);
    if (
      error.retryable ||
      error.code === Code.NotFound ||
      error.code === Code.FailedPrecondition ||
      error.code === Code.Unknown ||
      error.code === Code.Internal
    ) {
      // Not the leader (any more, or not yet), a partition not taken yet: ask where it is now.
      await metadata.refresh([], signal).catch((e: unknown) => this.#refreshFailed(e));
      return true;
    }
    this.options.onFatal(error);
    return false;
  }

  #reset(from: number, to: number, reason: string): void {
    this.position = to;
    this.#aheadRetries = 0;
    this.options.emit({
      type: "offset-reset",
      topic: this.options.topic,
      partition: this.options.partition,
      from,
      to,
      reason,
    });
  }

  #refreshFailed(err: unknown): void {
    if (err instanceof AbortedError) return;
    this.options.emit({
      type: "error",
      topic: this.options.topic,
      what: "GetBrokers",
      error: toClientError(err),
    });
  }

  #client(address: string): Client<typeof BrokerService> {
    let client = this.#clients.get(address);
    if (!client) {
      client = createClient(BrokerService, this.options.transport.broker(address));
      this.#clients.set(address, client);
    }
    return client;
  }
}

function parseRange(message: string): [number, number] | undefined {
  const match = RANGE.exec(message);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}
