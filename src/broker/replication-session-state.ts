/**
 * The pure bookkeeping of a replication session on the leader (see replication-session-leader.ts): what
 * the leader remembers per partition of one follower's session, what counts as news worth an answer,
 * which partitions an answer serves (first come, first served, within a byte budget), and how a
 * follower's acknowledgement moves a partition on, and the answers that carry no records. No I/O: the
 * shell reads logs and sends answers.
 */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  ReplicateResponseSchema,
  SessionPartitionAnswerSchema,
  type ReplicateResponse,
  type SessionPartitionAnswer,
} from "../gen/goulette/v1/broker_pb.js";

/** What the session needs to know about a partition on the leader, read at one moment. */
export interface LeaderPartitionView {
  /** The leadership generation, or undefined when this broker does not lead the partition now. */
  generation: number | undefined;
  /** The follower is in the leader's replica list. */
  hasFollower: boolean;
  logStartOffset: number;
  logEndOffset: number;
  /** Followers may copy records below this. */
  shippableEnd: number;
  highWatermark: number;
  /** The consumer-offset table version. */
  offsetsVersion: number;
}

/** One partition of a session, as the leader sees it. */
export interface SessionEntry {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  /** The partition's stream number for this follower (Partition.openStream). */
  readonly stream: number;
  /** The leadership generation the partition joined the session in. */
  readonly generation: number;
  /** The follower's log end offset, as last acknowledged. */
  fetchOffset: number;
  /** Offset-table version the follower stored; undefined until it acknowledged an answer here. */
  ackedVersion: number | undefined;
  /** Offset-table version last sent; undefined: the next answer sends the whole table. */
  sentVersion: number | undefined;
  /** High watermark last sent (-1: none yet). */
  sentHighWatermark: number;
  /** Log start last sent (-1: none yet): a DeleteRecords or retention moves it, and followers follow. */
  sentLogStart: number;
  /** The follower's log start as it last reported it (undefined: not reported in this session). */
  logStart: number | undefined;
  /** Answered and not acknowledged yet: nothing more is sent until the follower acknowledges. */
  awaitingAck: boolean;
  /** The follower must cut its log here first (divergence, or behind the leader's log start). */
  truncateTo: number | undefined;
}

/** Why a partition leaves a session: the Connect code the follower is told, and a sentence. */
export interface Departure {
  code: Code;
  message: string;
}

export type News =
  | { kind: "none" }
  | { kind: "depart"; departure: Departure }
  | { kind: "truncate"; to: number }
  | { kind: "data" };

export function newEntry(
  init: Pick<
    SessionEntry,
    "key" | "topic" | "partition" | "stream" | "generation" | "fetchOffset" | "logStart"
  > & {
    truncateTo: number | undefined;
  },
): SessionEntry {
  return {
    ...init,
    ackedVersion: undefined,
    sentVersion: undefined,
    sentHighWatermark: -1,
    sentLogStart: -1,
    logStart: init.logStart,
    awaitingAck: false,
  };
}

/**
 * Does the partition have something for the follower? Only asked while no answer is awaiting its
 * acknowledgement. The order matters: a lost leadership beats everything, a pending cut beats records.
 */
export function newsOf(entry: SessionEntry, view: LeaderPartitionView, followerId: string): News {
  if (view.generation !== entry.generation) {
    return {
      kind: "depart",
      departure: { code: Code.Unavailable, message: `leadership of ${entry.key} changed; fetch again` },
    };
  }
  if (!view.hasFollower) {
    return {
      kind: "depart",
      departure: { code: Code.Unavailable, message: `${followerId} is no longer a replica of ${entry.key}` },
    };
  }
  if (entry.truncateTo !== undefined) return { kind: "truncate", to: entry.truncateTo };
  if (
    view.shippableEnd > entry.fetchOffset ||
    entry.sentVersion !== view.offsetsVersion ||
    entry.sentHighWatermark !== view.highWatermark ||
    entry.sentLogStart !== view.logStartOffset
  ) {
    return { kind: "data" };
  }
  return { kind: "none" };
}

/**
 * Does the follower acknowledge this answer (and the leader wait for that before answering the partition
 * again)? Not when it only moves the high watermark: the follower's position and offset table stay as
 * they were, so there is nothing to acknowledge, and a produce costs one acknowledged answer, not two.
 * A moved log start is acknowledged: that is how a DeleteRecords learns the follower deleted too.
 * Both sides decide from the answer alone.
 */
export function needsAcknowledgement(answer: ReplicateResponse): boolean {
  return (
    answer.truncateTo !== undefined ||
    answer.records.length > 0 ||
    answer.frames.length > 0 ||
    answer.offsets.length > 0 ||
    answer.offsetsSnapshot ||
    answer.logStartMoved
  );
}

/**
 * An answer with records or news goes to the follower: records what the follower was sent and returns
 * whether the answer moves the follower's log start — the shell then sets `log_start_moved` on it, so
 * the follower acknowledges it, naming its own.
 */
export function sending(entry: SessionEntry, answer: ReplicateResponse, sentVersion: number): boolean {
  const logStart = Number(answer.logStartOffset);
  const logStartMoved = logStart !== entry.sentLogStart;
  entry.awaitingAck = logStartMoved || needsAcknowledgement(answer);
  entry.sentVersion = sentVersion;
  entry.sentHighWatermark = Number(answer.highWatermark);
  entry.sentLogStart = logStart;
  return logStartMoved;
}

/**
 * The follower acknowledged the last answer for the partition and now fetches from `fetchOffset`,
 * having stored offset-table version `offsetsVersion`, its log starting at `logStart` (undefined: a
 * follower that does not report it). Returns a departure when the position is impossible (past the
 * leader's log end: the replicas disagree on what was written).
 */
export function acknowledge(
  entry: SessionEntry,
  fetchOffset: number,
  offsetsVersion: number,
  logStart: number | undefined,
  view: Pick<LeaderPartitionView, "logStartOffset" | "logEndOffset">,
): Departure | undefined {
  if (fetchOffset > view.logEndOffset) {
    return {
      code: Code.FailedPrecondition,
      message: `fetch offset ${fetchOffset} is past the log end ${view.logEndOffset} of ${entry.key}`,
    };
  }
  entry.awaitingAck = false;
  entry.truncateTo = undefined;
  entry.fetchOffset = fetchOffset;
  entry.logStart = logStart;
  // Versions count only once the follower got an answer in this session (it holds its whole table).
  if (entry.sentVersion !== undefined) entry.ackedVersion = offsetsVersion;
  // Retention moved the leader's log start past the follower: it restarts its log there.
  if (fetchOffset < view.logStartOffset) entry.truncateTo = view.logStartOffset;
  return undefined;
}

/** The answer that takes a partition out of the session. */
export function departure(topic: string, partition: number, why: Departure): SessionPartitionAnswer {
  return create(SessionPartitionAnswerSchema, {
    topic,
    partition,
    errorCode: why.code,
    errorMessage: why.message,
  });
}

/** The answer that tells the follower to cut its log at `to` before fetching on. */
export function truncation(
  entry: SessionEntry,
  to: number,
  highWatermark: number,
  epoch: number,
): SessionPartitionAnswer {
  return create(SessionPartitionAnswerSchema, {
    topic: entry.topic,
    partition: entry.partition,
    data: create(ReplicateResponseSchema, {
      truncateTo: BigInt(to),
      highWatermark: BigInt(highWatermark),
      epoch: BigInt(epoch),
    }),
  });
}

/**
 * The byte budget of one answer: each partition may take up to `perPartition` bytes of what is left,
 * and once `total` is spent no further partition is served (the next answer serves them first). A
 * partition always gets at least one record, so an answer overshoots by at most one record.
 */
export class ResponseBudget {
  #left: number;

  constructor(
    total: number,
    private readonly perPartition: number,
  ) {
    this.#left = total;
  }

  /** Bytes the next partition may take, or undefined when the budget is spent. */
  next(): number | undefined {
    if (this.#left <= 0) return undefined;
    return Math.min(this.perPartition, this.#left);
  }

  spend(bytes: number): void {
    this.#left -= bytes;
  }
}

/**
 * The partitions that may have news, in the order they got it: an answer serves them from the front,
 * and a partition served goes to the back when it has news again (after its acknowledgement), so busy
 * partitions take turns and none starves behind them.
 */
export class NewsQueue {
  readonly #keys = new Set<string>();

  get size(): number {
    return this.#keys.size;
  }

  /** Marks `key` as possibly having news (no-op when already queued: it keeps its place). */
  add(key: string): void {
    this.#keys.add(key);
  }

  delete(key: string): void {
    this.#keys.delete(key);
  }

  /** A snapshot of the queue, front first. */
  snapshot(): string[] {
    return [...this.#keys];
  }
}
