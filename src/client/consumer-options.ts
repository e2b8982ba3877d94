import { InvalidArgumentError } from "../errors.js";
import type { CommonClientOptions } from "./events.js";
import type { StartAt, StartPosition } from "./partition-fetcher.js";
import type { AssignedPartition, TopicPartition } from "./topic-partition.js";
import type { TopicShape } from "./topic-metadata.js";
import type { ClientTransport } from "./transport.js";

/**
 * The consumer's options and figures, and the pure decisions made from them: which mode it runs in,
 * which partitions a static consumer reads, where a partition's fetch starts.
 */

/**
 * Where reading starts: the oldest message kept, the end (what is produced from now on), an offset, or
 * `{ last: n }`: the last n messages of each partition (fewer when it holds fewer).
 */
export type StartFrom = StartPosition;

export interface ConsumerOptions extends CommonClientOptions {
  /** How to reach sentinels and brokers (the Node and web entry points supply one). */
  transport: ClientTransport;
  /** Close `transport` when the consumer closes (default false: the caller owns it). */
  ownsTransport?: boolean;
  /** The topic to consume (or `topics`). */
  topic?: string;
  /** Several topics (or `topic`). */
  topics?: readonly string[];
  /**
   * The consumer group. The consumer joins it (unless `partitions` or `member` are given): the group's
   * live members share the partitions of their topics, and its committed offsets say where reading
   * resumes. Without a group the consumer reads from `from` and commits nothing.
   */
  group?: string;
  /**
   * Where a partition starts when the group has no committed offset for it (without a group: always):
   * "earliest" (the oldest message kept), "latest" (default: only messages produced from now on), or an
   * offset.
   */
  from?: StartFrom;
  /**
   * Static assignment: read these partitions of every topic, without joining the group (its offsets are
   * still committed, unfenced). Consumers of one group must then be given disjoint partitions.
   */
  partitions?: readonly number[];
  /** Static assignment: read the partitions p with p % count === index, without joining the group. */
  member?: { index: number; count: number };
  /** The shape of a topic if this consumer's GetBrokers creates it (ignored for existing topics). */
  createTopic?: TopicShape;
  /**
   * Static membership: a stable name (a StatefulSet pod name). A consumer that rejoins with the same
   * instance id within its session timeout takes its previous member's place and partitions, without a
   * rebalance; a second live process with the same id replaces the first (MemberReplacedError there).
   */
  instanceId?: string;
  /**
   * close() leaves the group, so the partitions move at once (default: true, but false with an
   * instanceId — a static member that restarts within its session timeout gets them back without a
   * rebalance; one that does not come back is removed when its session expires).
   */
  leaveOnClose?: boolean;
  /** The group session: without a heartbeat this long the member leaves the group (ms, 2000–300000, default 10000). */
  sessionTimeoutMs?: number;
  /** A label for admin listings (default: host/pid in Node, "browser" in browsers). */
  clientId?: string;
  /**
   * How long a revocation waits for the application to finish the messages of the revoked partitions it
   * was handed (ms, default 10000); then their processed offsets are committed and they are released.
   */
  revokeTimeoutMs?: number;
  /** Called (and awaited) before the consumer starts reading partitions the group gave it; seek() works here. */
  onAssigned?: (partitions: AssignedPartition[]) => Promise<void> | void;
  /**
   * Called (and awaited) when partitions are taken away (a rebalance, close()): after the application
   * finished their messages (or revokeTimeoutMs passed) and before their processed offsets are committed
   * and they are released. Flush what you keep per partition here.
   */
  onRevoked?: (partitions: TopicPartition[]) => Promise<void> | void;
  /** Called when partitions were lost without a release (session expired, commit fenced): too late to commit. */
  onLost?: (partitions: TopicPartition[]) => Promise<void> | void;
  /** Commit processed offsets every autoCommitIntervalMs and at close (default true; needs a group). */
  autoCommit?: boolean;
  /** Default 1000 ms. */
  autoCommitIntervalMs?: number;
  /** Messages received and not yet handed to the application, at most (back-pressure, default 1000). */
  maxBufferedMessages?: number;
  /** Messages per fetch batch, at most (default DEFAULT_PULL_BATCH_SIZE; each batch is also ≤ 1 MiB). */
  pullBatchSize?: number;
  /** First retry delay after a failed fetch or join (ms, default 100). */
  retryBackoffMs?: number;
  /** Longest retry delay (ms, default 2000). */
  maxRetryBackoffMs?: number;
}

/**
 * Records per fetched batch by default. Large enough that a batch of small records is bound by its
 * bytes (1 MiB), as Kafka's fetches are: 500 records of 100 B made 50 KB responses, and 2,000 read small
 * records 1.2–1.8 times as fast through this consumer (docs/benchmarks.md, 64 KiB produce: the page
 * cache). A partition's fetcher holds at most one batch beside the buffer (maxBufferedMessages).
 */
export const DEFAULT_PULL_BATCH_SIZE = 2_000;

export interface RunOptions {
  signal?: AbortSignal;
  /**
   * Handlers running at once, at most (default 1). Never two of one partition: each partition's
   * messages are handled one after the other, in offset order.
   */
  partitionsConcurrently?: number;
}

/** The group side of ConsumerStats. */
export interface ConsumerGroupStats {
  group: string;
  /** "" while joining. */
  memberId: string;
  /** The generation of the last assignment applied. */
  generation: number;
  /** False when the sentinels do not coordinate groups (the consumer then reads every partition). */
  coordinated: boolean;
  /** No heartbeat was answered for a session timeout: nothing is handed out until one is. */
  suspended: boolean;
  /** Partitions owned and read. */
  partitions: AssignedPartition[];
  /** Partitions being released. */
  revoking: TopicPartition[];
  /** Partitions the group will give this member once their previous owner released them. */
  pending: TopicPartition[];
  /** Assignments applied that started or revoked partitions. */
  rebalances: number;
  /** Joins, rejoins included. */
  joins: number;
  /** Partitions lost without a release (fenced commits, expired sessions). */
  lostPartitions: number;
  heartbeats: number;
  heartbeatFailures: number;
  /** Milliseconds since the last answered heartbeat was sent (-1 before the first). */
  lastHeartbeatAgoMs: number;
}

export interface ConsumerStats {
  /** Messages handed to the application. */
  delivered: number;
  /** Messages waiting in the buffer. */
  buffered: number;
  commits: number;
  /** "topic/partition" → next offset to receive, for every partition read. */
  positions: Record<string, number>;
  /** "topic/partition" → one past the last message processed. */
  processed: Record<string, number>;
  /** "topic/partition" → offset this consumer last committed (the next offset to consume). */
  committed: Record<string, number>;
  /** Paused partitions ("topic/partition"). */
  paused: string[];
  unreachableReports: number;
  unreachableBrokers: string[];
  sentinelFailovers: number;
  /** Present for a consumer that joins a group. */
  group: ConsumerGroupStats | undefined;
}

const MIN_SESSION_TIMEOUT_MS = 2_000;
const MAX_SESSION_TIMEOUT_MS = 300_000;

/** How the consumer finds its partitions: a group's assignment, a static list, or a peek without a group. */
export type Mode = "group" | "static" | "peek";

/** The mode `options` ask for. */
export function consumerMode(options: Pick<ConsumerOptions, "group" | "partitions" | "member">): Mode {
  if ((options.group ?? "") === "") return "peek";
  return options.partitions || options.member ? "static" : "group";
}

/**
 * Static and peek modes (and a group the sentinels do not coordinate): the chosen partitions of every
 * topic, given each topic's partition count. A listed partition a topic does not have is refused.
 */
export function staticPartitions(
  counts: ReadonlyMap<string, number>,
  options: Pick<ConsumerOptions, "partitions" | "member">,
): TopicPartition[] {
  const member = options.member;
  const chosen: TopicPartition[] = [];
  for (const [topic, count] of counts) {
    let partitions = options.partitions ? [...options.partitions] : [...Array(count).keys()];
    if (member) partitions = partitions.filter((p) => p % member.count === member.index);
    for (const partition of partitions) {
      if (partition >= count) {
        throw new InvalidArgumentError(`topic ${topic} has ${count} partitions; there is no ${partition}`);
      }
      chosen.push({ topic, partition });
    }
  }
  return chosen;
}

/**
 * Where a partition's fetch starts. "initial": from the group's committed offset (else `from`), or
 * `from` without a group; "seek": at `seekStart`; "resume": at `position`, the next offset to hand out.
 */
export function fetchStart(
  why: "initial" | "resume" | "seek",
  position: number | undefined,
  group: string,
  from: StartFrom,
  seekStart?: StartAt,
): StartAt {
  if (why === "seek" && seekStart) return seekStart;
  if (why === "resume" && position !== undefined) return { kind: "offset", offset: position };
  if (group !== "") return { kind: "committed", otherwise: from };
  if (typeof from === "number") return { kind: "offset", offset: from };
  if (typeof from === "object") return { kind: "last", count: from.last };
  return { kind: from };
}

export function validateTopics(options: ConsumerOptions): string[] {
  if (options.topic !== undefined && options.topics !== undefined) {
    throw new InvalidArgumentError("give a consumer `topic` or `topics`, not both");
  }
  const topics = options.topics ? [...options.topics] : options.topic ? [options.topic] : [];
  if (topics.length === 0 || topics.some((t) => typeof t !== "string" || t === "")) {
    throw new InvalidArgumentError("a consumer needs a topic (`topic`, or a non-empty `topics` list)");
  }
  if (new Set(topics).size !== topics.length) {
    throw new InvalidArgumentError(`topics lists a topic twice: ${topics.join(", ")}`);
  }
  return topics;
}

export function validateOptions(options: ConsumerOptions, mode: Mode): void {
  if (options.member) {
    const { index, count } = options.member;
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new InvalidArgumentError(`member must satisfy 0 ≤ index < count, got ${index} of ${count}`);
    }
  }
  for (const p of options.partitions ?? []) {
    if (!Number.isInteger(p) || p < 0) throw new InvalidArgumentError(`partitions: ${p} is not a partition`);
  }
  const from = options.from;
  if (
    from !== undefined &&
    from !== "earliest" &&
    from !== "latest" &&
    !(typeof from === "number" && Number.isSafeInteger(from) && from >= 0) &&
    !(typeof from === "object" && Number.isSafeInteger(from.last) && from.last >= 0)
  ) {
    throw new InvalidArgumentError(
      `from must be "earliest", "latest", an offset ≥ 0 or { last: n ≥ 0 }, got ${JSON.stringify(from)}`,
    );
  }
  const timeout = options.sessionTimeoutMs;
  if (
    timeout !== undefined &&
    (!Number.isInteger(timeout) || timeout < MIN_SESSION_TIMEOUT_MS || timeout > MAX_SESSION_TIMEOUT_MS)
  ) {
    throw new InvalidArgumentError(
      `sessionTimeoutMs must be ${MIN_SESSION_TIMEOUT_MS}–${MAX_SESSION_TIMEOUT_MS}, got ${timeout}`,
    );
  }
  for (const name of ["revokeTimeoutMs", "autoCommitIntervalMs"] as const) {
    const value = options[name];
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
      throw new InvalidArgumentError(`${name} must be a positive number of milliseconds, got ${value}`);
    }
  }
  if (mode !== "group") {
    const why = mode === "peek" ? "a consumer without a group" : "a consumer with static partitions/member";
    for (const name of [
      "instanceId",
      "leaveOnClose",
      "sessionTimeoutMs",
      "onAssigned",
      "onRevoked",
      "onLost",
    ] as const) {
      if (options[name] !== undefined)
        throw new InvalidArgumentError(`${name} needs group membership; ${why} does not join`);
    }
  }
}
