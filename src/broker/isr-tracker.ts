import type { Logger } from "../observability/logger.js";
import { LostContactError, NotEnoughReplicasError } from "./errors.js";

/**
 * What a partition leader knows about its followers and what is committed: follower progress, the
 * in-sync replica set (ISR), the high watermark, --min-insync-replicas decisions, and the callers
 * waiting for records (acks=all), consumer-offset versions or deletions to be replicated. No files, no
 * timers: the time is passed into every call, and the partition feeds it the log's positions. A little
 * over ~450 lines, most of them the rules' comments: who is in sync and what is committed are one
 * invariant.
 */

/** What the leader knows about one follower. */
interface FollowerState {
  brokerId: string;
  /** Its log end offset as last reported; undefined until it fetches in this leadership. */
  fetchOffset: number | undefined;
  inSync: boolean;
  /** Last time it was known to have every record the leader had. */
  lastCaughtUpAt: number;
  /** Leader log end and time when the last response went to it (Kafka's caught-up rule). */
  leoAtLastResponse: number;
  lastResponseAt: number;
  /** Consumer-offset version it has stored, on its current stream. */
  offsetsVersion: number | undefined;
  /** Its log start as it last reported it on its current stream (undefined: not reported). */
  logStartOffset: number | undefined;
  /** Numbers its streams; updates from a superseded stream are ignored. */
  stream: number;
}

interface AckWaiter {
  /** Resolved once the high watermark reaches this (last offset + 1). */
  end: number;
  deadline: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Waits until every in-sync follower has stored something: an offset-table version, a log start. */
interface CommitWaiter {
  stored: (follower: FollowerState) => boolean;
  /** The error's message when the deadline passes first: what did not reach the replicas. */
  timeoutMessage: string;
  deadline: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface IsrTrackerOptions {
  topic: string;
  partition: number;
  /** This broker (the leader while leading). */
  brokerId: string;
  /** A follower not caught up for this long leaves the in-sync replica set (ms). */
  replicaLagMaxMs: number;
  /** acks=all records and offset commits not replicated within this long fail (ms). */
  replicationTimeoutMs: number;
  /** acks=all needs at least this many in-sync replicas, leader included (default 1). */
  minInsyncReplicas?: number;
  /** The leader's isolation fence (see PartitionOptions.writable). */
  writable: () => boolean;
  /** The high watermark moved. */
  onHighWatermark: () => void;
  logger: Logger;
}

/** Replication figures for Health and metrics (leader only). */
export interface IsrStats {
  /** In-sync replicas, leader included. */
  inSync: number;
  /** Largest follower lag in messages. */
  replicationLag: number;
}

export class InSyncReplicaTracker {
  readonly #options: IsrTrackerOptions;
  readonly #key: string;
  #leading = false;
  #hw = 0;
  /** Leader: offsets below this are stored locally per the fsync policy. */
  #localEnd = 0;
  #followers = new Map<string, FollowerState>();
  #ackWaiters: AckWaiter[] = [];
  #commitWaiters: CommitWaiter[] = [];
  /**
   * Leader: tick() has nothing to do before this (ms): no in-sync follower can have lagged out and no
   * waiter expired. Reset whenever a waiter or an in-sync follower appears; idle leaders then cost a
   * comparison per tick instead of a walk of their followers and waiters.
   */
  #nextTickAt = 0;

  constructor(options: IsrTrackerOptions) {
    this.#options = options;
    this.#key = `${options.topic}#${options.partition}`;
  }

  get highWatermark(): number {
    return this.#hw;
  }

  get #minInsync(): number {
    return this.#options.minInsyncReplicas ?? 1;
  }

  // ---- leadership ----------------------------------------------------------------------------------

  /**
   * Leadership starts with these followers, each trusted in sync for one lag period. Records count as
   * stored locally only once `leaderReady` says so.
   */
  beginLeadership(followerIds: readonly string[], now: number): void {
    this.#leading = true;
    this.#localEnd = 0;
    this.#followers.clear();
    this.setFollowers(followerIds, now, true);
  }

  /** Leadership set-up is done: records below `logEndOffset` are stored locally. */
  leaderReady(logEndOffset: number): void {
    this.#localEnd = logEndOffset;
    this.#advanceHw();
  }

  /** Leadership ended: every waiter fails with `error`, the followers are forgotten. */
  endLeadership(error: unknown): void {
    this.#leading = false;
    this.#localEnd = 0;
    for (const waiter of this.#ackWaiters.splice(0)) waiter.reject(error);
    for (const waiter of this.#commitWaiters.splice(0)) waiter.reject(error);
    this.#followers.clear();
  }

  /** The leader's followers are now these (the replica list changed); new ones start out of sync. */
  setFollowers(followerIds: readonly string[], now: number, initialInSync = false): void {
    this.#nextTickAt = 0;
    const wanted = new Set(followerIds);
    for (const id of this.#followers.keys()) if (!wanted.has(id)) this.#followers.delete(id);
    for (const id of wanted) {
      if (this.#followers.has(id)) continue;
      this.#followers.set(id, {
        brokerId: id,
        fetchOffset: undefined,
        inSync: initialInSync,
        lastCaughtUpAt: now,
        leoAtLastResponse: 0,
        lastResponseAt: 0,
        offsetsVersion: undefined,
        logStartOffset: undefined,
        stream: 0,
      });
    }
    this.#advanceHw();
    this.#checkCommits();
  }

  /** Leader: records below `end` are stored locally. */
  localAppend(end: number): void {
    if (end > this.#localEnd) this.#localEnd = end;
    this.#advanceHw();
  }

  /** The high watermark never passes `offset` (a new leader's log end, a follower's cut log). */
  capHighWatermark(offset: number): void {
    if (this.#hw > offset) this.#hw = offset;
  }

  /** Follower: the leader's high watermark, already capped at this replica's log end; true if it moved. */
  setFollowerHighWatermark(hw: number): boolean {
    if (hw === this.#hw) return false;
    this.#hw = hw;
    return true;
  }

  // ---- in-sync set ---------------------------------------------------------------------------------

  hasFollower(followerId: string): boolean {
    return this.#followers.has(followerId);
  }

  /** A new replication stream from a follower; returns its stream number (0: not a follower). */
  openStream(followerId: string): number {
    const follower = this.#followers.get(followerId);
    if (follower === undefined) return 0;
    follower.stream++;
    follower.offsetsVersion = undefined;
    follower.logStartOffset = undefined;
    return follower.stream;
  }

  /**
   * A follower asked for records from `fetchOffset` (its log end), having stored consumer-offset
   * version `offsetsVersion`, its log starting at `logStartOffset` (when it reports it), while
   * followers may copy records below `shippableEnd`. Updates the in-sync set and the high watermark.
   */
  onFetch(
    followerId: string,
    stream: number,
    fetchOffset: number,
    offsetsVersion: number | undefined,
    shippableEnd: number,
    now: number,
    logStartOffset?: number,
  ): void {
    const follower = this.#followers.get(followerId);
    if (follower === undefined || follower.stream !== stream) return;
    // The common idle case (a session's periodic refresh of thousands of partitions): an in-sync follower
    // fetching again where it was, with the high watermark already there. Nothing the high watermark or
    // the commits depend on changed, so only its caught-up time moves. (A high watermark held back, e.g.
    // while the isolation fence was closed, is recomputed.)
    if (
      follower.inSync &&
      follower.fetchOffset === fetchOffset &&
      (offsetsVersion === undefined || offsetsVersion === follower.offsetsVersion) &&
      (logStartOffset === undefined || logStartOffset === follower.logStartOffset) &&
      fetchOffset >= shippableEnd &&
      this.#hw >= fetchOffset
    ) {
      follower.lastCaughtUpAt = now;
      return;
    }
    follower.fetchOffset = fetchOffset;
    if (offsetsVersion !== undefined) follower.offsetsVersion = offsetsVersion;
    if (logStartOffset !== undefined) follower.logStartOffset = logStartOffset;
    if (fetchOffset >= shippableEnd) {
      follower.lastCaughtUpAt = now;
    } else if (follower.lastResponseAt > 0 && fetchOffset >= follower.leoAtLastResponse) {
      follower.lastCaughtUpAt = Math.max(follower.lastCaughtUpAt, follower.lastResponseAt);
    }
    if (
      !follower.inSync &&
      fetchOffset >= this.#hw &&
      now - follower.lastCaughtUpAt <= this.#options.replicaLagMaxMs
    ) {
      follower.inSync = true;
      this.#nextTickAt = 0;
      this.#options.logger.info(
        { follower: followerId, fetchOffset },
        "follower joined the in-sync replicas",
      );
    }
    this.#advanceHw();
    this.#checkCommits();
  }

  /** A response went to the follower while the leader log ended at `logEndOffset`. */
  onResponse(followerId: string, stream: number, logEndOffset: number, now: number): void {
    const follower = this.#followers.get(followerId);
    if (follower === undefined || follower.stream !== stream) return;
    follower.leoAtLastResponse = logEndOffset;
    follower.lastResponseAt = now;
  }

  /** Ids of the in-sync replicas, leader first ([] unless leading). */
  inSyncReplicas(): string[] {
    if (!this.#leading) return [];
    return [
      this.#options.brokerId,
      ...[...this.#followers.values()].filter((f) => f.inSync).map((f) => f.brokerId),
    ];
  }

  inSyncCount(): number {
    let count = 1;
    for (const follower of this.#followers.values()) if (follower.inSync) count++;
    return count;
  }

  /**
   * acks=all: throws NotEnoughReplicasError when fewer replicas than --min-insync-replicas are in sync
   * (leader included), so nothing is appended that could only be acknowledged by too few replicas.
   */
  requireMinInSync(): void {
    const inSync = this.inSyncCount();
    if (inSync < this.#minInsync) throw this.#notEnoughInSync(inSync, this.#minInsync);
  }

  #notEnoughInSync(inSync: number, required: number): NotEnoughReplicasError {
    return new NotEnoughReplicasError(
      `${this.#key} has ${inSync} in-sync replica${inSync === 1 ? "" : "s"} (leader included); ` +
        `acks=all requires ${required} (--min-insync-replicas)`,
    );
  }

  stats(logEndOffset: number): IsrStats {
    let replicationLag = 0;
    let inSync = 1;
    for (const follower of this.#followers.values()) {
      replicationLag = Math.max(replicationLag, logEndOffset - (follower.fetchOffset ?? 0));
      if (follower.inSync) inSync++;
    }
    return { inSync, replicationLag };
  }

  // ---- what is committed ---------------------------------------------------------------------------

  /**
   * acks=all: resolves once the high watermark reaches `end`; rejects on the end of leadership, on
   * timeout, or when the in-sync set is below --min-insync-replicas by then (Kafka's rule: checked when
   * satisfied).
   */
  waitForHighWatermark(end: number, now: number): Promise<void> {
    if (!this.#options.writable()) {
      return Promise.reject(new LostContactError(this.#options.topic, this.#options.partition));
    }
    if (this.#hw >= end) {
      try {
        this.requireMinInSync();
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve();
    }
    this.#nextTickAt = 0;
    return new Promise<void>((resolve, reject) => {
      this.#ackWaiters.push({ end, deadline: now + this.#options.replicationTimeoutMs, resolve, reject });
    });
  }

  /** Resolves once every in-sync follower stored consumer-offset version `version`. */
  waitForOffsets(version: number, now: number): Promise<void> {
    return this.#waitForFollowers(
      (f) => (f.offsetsVersion ?? 0) >= version,
      `an offset commit (or fence, or deletion) on ${this.#key} did not reach every in-sync replica in time`,
      now,
    );
  }

  /**
   * Resolves once every in-sync follower reported a log start at `offset` or later (DeleteRecords: the
   * records below it are gone from each replica that may lead next). A follower that does not report
   * its log start (a broker older than the report) holds the waiter until it times out.
   */
  waitForLogStart(offset: number, now: number): Promise<void> {
    return this.#waitForFollowers(
      (f) => (f.logStartOffset ?? -1) >= offset,
      `the deletion of the records below offset ${offset} of ${this.#key} (done on the leader) did not reach ` +
        `every in-sync replica in time; repeating the call waits for them again`,
      now,
    );
  }

  async #waitForFollowers(
    stored: (f: FollowerState) => boolean,
    timeoutMessage: string,
    now: number,
  ): Promise<void> {
    if (!this.#options.writable()) throw new LostContactError(this.#options.topic, this.#options.partition);
    if (this.#everyInSync(stored)) return;
    this.#nextTickAt = 0;
    await new Promise<void>((resolve, reject) => {
      this.#commitWaiters.push({
        stored,
        timeoutMessage,
        deadline: now + this.#options.replicationTimeoutMs,
        resolve,
        reject,
      });
    });
  }

  /**
   * Periodic housekeeping: followers not caught up within the lag bound leave the in-sync set (which
   * may advance the high watermark), and waiters past their deadline fail. `logEndOffset` is logged.
   */
  tick(now: number, logEndOffset: number): void {
    if (!this.#leading) return;
    if (now < this.#nextTickAt) return;
    this.#nextTickAt = this.#dueAt();
    let shrunk = false;
    for (const follower of this.#followers.values()) {
      if (follower.inSync && now - follower.lastCaughtUpAt > this.#options.replicaLagMaxMs) {
        follower.inSync = false;
        shrunk = true;
        this.#options.logger.warn(
          {
            follower: follower.brokerId,
            fetchOffset: follower.fetchOffset,
            logEndOffset,
            lagMs: now - follower.lastCaughtUpAt,
          },
          "follower left the in-sync replicas",
        );
      }
    }
    if (shrunk) {
      this.#advanceHw();
      this.#checkCommits();
    }
    if (!this.#options.writable()) this.#failWaitersFenced();
    while (this.#ackWaiters.length > 0 && (this.#ackWaiters[0] as AckWaiter).deadline < now) {
      const waiter = this.#ackWaiters.shift() as AckWaiter;
      waiter.reject(
        new NotEnoughReplicasError(
          `records up to offset ${waiter.end - 1} of ${this.#key} did not reach every in-sync replica in time`,
        ),
      );
    }
    if (this.#commitWaiters.length === 0) return;
    this.#commitWaiters = this.#commitWaiters.filter((waiter) => {
      if (waiter.deadline >= now) return true;
      waiter.reject(new NotEnoughReplicasError(waiter.timeoutMessage));
      return false;
    });
  }

  /**
   * The earliest time tick() may have something to do, computed before it acts: an in-sync follower's
   * lag bound, the oldest waiter's deadline. A lower bound: caught-up times only move later. While
   * anything waits for an acknowledgement, every tick counts: the isolation fence can close at any
   * moment, and the waiters must then fail at once rather than at their deadline.
   */
  #dueAt(): number {
    if (this.#ackWaiters.length > 0 || this.#commitWaiters.length > 0) return 0;
    let due = Number.POSITIVE_INFINITY;
    for (const follower of this.#followers.values()) {
      if (follower.inSync) due = Math.min(due, follower.lastCaughtUpAt + this.#options.replicaLagMaxMs + 1);
    }
    return due;
  }

  /**
   * The fence expired: nothing waiting is acknowledged any more (the sentinels may have given the
   * partition to another replica). The records stay in the log; a retry is deduplicated.
   */
  #failWaitersFenced(): void {
    if (this.#ackWaiters.length === 0 && this.#commitWaiters.length === 0) return;
    const error = new LostContactError(this.#options.topic, this.#options.partition);
    for (const waiter of this.#ackWaiters.splice(0)) waiter.reject(error);
    for (const waiter of this.#commitWaiters.splice(0)) waiter.reject(error);
  }

  /** The high watermark: the smallest log end over the in-sync replicas, the leader's own included. */
  #advanceHw(): void {
    if (!this.#leading) return;
    // A fenced leader neither exposes nor acknowledges records: another replica may lead already.
    if (!this.#options.writable()) {
      this.#failWaitersFenced();
      return;
    }
    this.#failAckWaitersBelowMinInSync();
    let hw = this.#localEnd;
    for (const follower of this.#followers.values()) {
      if (follower.inSync) hw = Math.min(hw, follower.fetchOffset ?? this.#hw);
    }
    if (hw <= this.#hw) return;
    this.#hw = hw;
    let done = 0;
    while (done < this.#ackWaiters.length && (this.#ackWaiters[done] as AckWaiter).end <= hw) done++;
    for (const waiter of this.#ackWaiters.splice(0, done)) waiter.resolve();
    this.#options.onHighWatermark();
  }

  /**
   * The in-sync set shrank below --min-insync-replicas: acks=all records still waiting fail now rather
   * than being acknowledged by fewer replicas once the high watermark moves without the lost followers.
   * Those records stay in the log; a retry with the same producer id and message ids is deduplicated.
   */
  #failAckWaitersBelowMinInSync(): void {
    if (this.#ackWaiters.length === 0) return;
    const required = this.#minInsync;
    if (required <= 1) return;
    const inSync = this.inSyncCount();
    if (inSync >= required) return;
    const error = this.#notEnoughInSync(inSync, required);
    for (const waiter of this.#ackWaiters.splice(0)) waiter.reject(error);
  }

  #everyInSync(stored: (f: FollowerState) => boolean): boolean {
    for (const follower of this.#followers.values()) {
      if (follower.inSync && !stored(follower)) return false;
    }
    return true;
  }

  #checkCommits(): void {
    if (this.#commitWaiters.length === 0) return;
    if (!this.#options.writable()) {
      this.#failWaitersFenced();
      return;
    }
    this.#commitWaiters = this.#commitWaiters.filter((waiter) => {
      if (!this.#everyInSync(waiter.stored)) return true;
      waiter.resolve();
      return false;
    });
  }
}
