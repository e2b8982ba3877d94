import { createClient } from "@connectrpc/connect";
import { errorMessage, type GouletteError } from "../errors.js";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import { callSignal } from "./call-signal.js";
import {
  AbortedError,
  PartitionNotOwnedError,
  isConnectionFailure,
  isFenced,
  toClientError,
} from "./errors.js";
import type { ClientEvent } from "./events.js";
import type { PartitionState } from "./partition-state.js";
import type { TopicMetadata } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

/** One offset to commit: the partition's next offset to consume, with the member epoch that owns it. */
export interface CommitTarget {
  topic: string;
  partition: number;
  offset: number;
  /** The member epoch (0: not a group member, never fenced). */
  epoch: number;
  /** The consumer's state of the partition, when it reads it (remembers what was committed). */
  state?: PartitionState;
  /** The state's seek count when the target was taken. */
  seq?: number;
}

export interface OffsetCommitterOptions {
  group: string;
  transport: ClientTransport;
  headers: Record<string, string>;
  metadata: (topic: string) => TopicMetadata | undefined;
  emit: (event: ClientEvent) => void;
  /** CommitOffset answered ABORTED: the group gave the partition to a newer member epoch. */
  onFenced: (target: CommitTarget, error: GouletteError) => void;
}

export interface CommitRoundOptions {
  signal: AbortSignal;
  /** Reject with the first failure (explicit commits); background commits only report events. */
  throwOnError: boolean;
  /** Closing: no metadata refresh after a failure. */
  closing: boolean;
}

/**
 * Commits offsets to the partition leaders, one CommitOffset per partition, in rounds that run one at a
 * time and in order, so that a slow older round cannot overwrite a newer offset. A round's targets are
 * taken when it starts (auto commit then commits what is processed by then).
 */
export class OffsetCommitter {
  /** Offsets stored. */
  commits = 0;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: OffsetCommitterOptions) {}

  /** Resolves true when every target was stored (or already was). */
  commit(targets: () => CommitTarget[], round: CommitRoundOptions): Promise<boolean> {
    const next = this.#chain.catch(() => undefined).then(() => this.#round(targets(), round));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #round(targets: CommitTarget[], round: CommitRoundOptions): Promise<boolean> {
    const errors: unknown[] = [];
    await Promise.all(
      targets.map(async (target) => {
        const { topic, partition, offset, state } = target;
        const memo = state?.committed;
        if (memo && memo.seq === target.seq && memo.offset >= offset) return;
        const metadata = this.options.metadata(topic);
        const location = metadata?.current?.partitions[partition];
        if (!location || location.address === "") {
          errors.push(new Error(`partition ${topic}/${partition} has no known leader`));
          return;
        }
        try {
          const client = createClient(BrokerService, this.options.transport.broker(location.address));
          await client.commitOffset(
            {
              consumerGroup: this.options.group,
              topic,
              partition,
              offset: BigInt(offset),
              memberEpoch: BigInt(target.epoch),
            },
            { signal: callSignal(round.signal), headers: this.options.headers, timeoutMs: 10_000 },
          );
          if (state && target.seq === state.seq) state.committed = { offset, seq: target.seq };
          this.commits++;
        } catch (err) {
          if (isFenced(err)) {
            // Fenced: another member owns the partition now. Not retried: its offsets are theirs.
            const error = new PartitionNotOwnedError(
              topic,
              partition,
              `was given to another member: ${err.rawMessage}`,
            );
            errors.push(error);
            this.options.onFenced(target, error);
            return;
          }
          errors.push(err);
          const error = toClientError(err);
          this.options.emit({ type: "error", topic, what: `commit of partition ${partition}`, error });
          // The leader moved or died: learn the new one before the next attempt.
          const report = isConnectionFailure(err) ? [location.leaderId] : [];
          if (!round.closing) void metadata?.refresh(report).catch(() => undefined);
        }
      }),
    );
    if (round.throwOnError && errors.length > 0) {
      const first = errors[0];
      throw first instanceof Error && !(first instanceof AbortedError)
        ? toClientError(first)
        : new Error(`commit failed: ${errorMessage(first)}`);
    }
    return errors.length === 0;
  }
}
