import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import { backoffDelay, sleep } from "./backoff.js";
import { AbortedError, BrokerUnreachableError, isConnectionFailure, toClientError } from "./errors.js";
import type { ClientEvent } from "./events.js";
import { toConsumedMessage, type BatchContext, type ConsumedMessage } from "./messages.js";
import type { MessageBuffer } from "./message-buffer.js";
import type { PartitionLocation, TopicMetadata } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

export interface PartitionFetcherOptions {
  topic: string;
  partition: number;
  group: string;
  /** Where to start when the group has no committed offset. */
  from: "earliest" | "latest";
  metadata: TopicMetadata;
  transport: ClientTransport;
  headers: Record<string, string>;
  buffer: MessageBuffer<ConsumedMessage>;
  /** Messages per pull wait cycle. */
  batchSize: number;
  retryBackoffMs: number;
  maxRetryBackoffMs: number;
  emit: (event: ClientEvent) => void;
  /** The start position chosen where the group had no committed offset. */
  onStart: (offset: number) => void;
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
            this.position = at + 1;
            const consumed = toConsumedMessage(message, context);
            if (!this.options.buffer.tryPut(consumed)) await this.options.buffer.put(consumed, signal);
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
   * Where this consumer starts: the group's committed offset, else the log start ("earliest") or end
   * ("latest"). A start chosen without a committed offset is reported (onStart), so that the group
   * commits it and a later consumer of the group starts there too.
   */
  async #startOffset(client: Client<typeof BrokerService>, signal: AbortSignal): Promise<number> {
    const { topic, partition, group } = this.options;
    const committed = await client.getCommittedOffset(
      { topic, partition, consumerGroup: group },
      { signal, headers: this.options.headers },
    );
    if (committed.offset >= 0n) {
      this.position = Number(committed.offset);
      return this.position;
    }
    // The broker answers with its log range: "earliest" is the first stored offset, "latest" the high
    // watermark (what is readable now).
    this.position =
      this.options.from === "earliest" ? Number(committed.logStartOffset) : Number(committed.highWatermark);
    this.options.onStart(this.position);
    return this.position;
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
          this.#reset(position, start, "retention removed these messages");
        } else if (position > end) {
          // A new leader may still be catching up; after a while, believe its log.
          if (++this.#aheadRetries > MAX_AHEAD_RETRIES)
            this.#reset(position, end, "the leader's log is shorter");
          await metadata.refresh([], signal).catch((e: unknown) => this.#refreshFailed(e));
        }
        return true;
      }
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
