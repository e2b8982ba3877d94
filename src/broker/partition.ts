import path from "node:path";
import { mkdir } from "node:fs/promises";
import { monotonicClock } from "../common/clock.js";
import { consumerLag } from "../common/consumer-lag.js";
import type { Logger } from "../observability/logger.js";
import {
  CorruptRecordError,
  openPartitionLog,
  type LogDamage,
  type PartitionLog,
  type PartitionLogOptions,
  type ReplicatedRecord,
  type SegmentDamage,
} from "../storage/index.js";
import { ConsumerOffsets } from "./consumer-offsets.js";
import { NotPartitionLeaderError } from "./errors.js";
import { InSyncReplicaTracker } from "./isr-tracker.js";
import { LeaderEpochHistory } from "./leader-epochs.js";
import { ProducerTable } from "./producer-table.js";
import { Signal } from "./signal.js";

export type Role = "leader" | "follower" | "none";

export interface ReplicaInfo {
  brokerId: string;
  /** host:port; may be empty when the sentinel does not know it. */
  address: string;
}

/** A role from the sentinel (SetTopicRole or a KeepAlive assignment). */
export interface RoleAssignment {
  role: "leader" | "follower";
  epoch: number;
  leader: ReplicaInfo;
  /** Every replica, leader first. */
  replicas: ReplicaInfo[];
}

/** A running follower fetch loop (see replication-follower.ts). */
export interface FetcherHandle {
  stop(): Promise<void>;
}

export interface PartitionOptions {
  topic: string;
  partition: number;
  /** The partition's directory: `log/` (segments), leader epochs, consumer offsets. */
  dir: string;
  /** Consumer groups whose offsets the partition keeps at most (default MAX_GROUPS_PER_PARTITION). */
  maxConsumerGroups?: number;
  /** This broker's id. */
  brokerId: string;
  /** Storage options for the partition log (its `dir` is set here). */
  log: Omit<PartitionLogOptions, "dir">;
  /** A follower not caught up for this long leaves the in-sync replica set (ms). */
  replicaLagMaxMs: number;
  /** acks=all records and offset commits not replicated within this long fail (ms). */
  replicationTimeoutMs: number;
  /**
   * acks=all needs at least this many in-sync replicas, leader included (default 1: the leader alone
   * is enough). Below it acks=all produce is refused, and waiting acks=all records fail.
   */
  minInsyncReplicas?: number;
  /** Message ids remembered per producer for idempotent produce. */
  idempotencyWindow: number;
  /** Producers remembered per partition. */
  maxProducers: number;
  /** Records scanned from the log tail to rebuild the producer table when leadership starts. */
  idempotencyScanRecords: number;
  /**
   * Ship records to followers before the leader's own fsync (fsync "interval"). With fsync "always" only
   * durable records are shipped: a failed fsync rolls the leader's log back, and records a follower
   * already copied would then differ from the ones the leader writes at the same offsets.
   */
  shipUnsynced: boolean;
  /** Starts the follower fetch loop for this partition. */
  startFetcher: (partition: Partition) => FetcherHandle;
  /** The partition gave up a role by itself (leadership set-up failed): the sentinels must list it again. */
  onRoleDropped?: () => void;
  logger: Logger;
  /**
   * The leader's isolation fence: false once this broker may have been declared dead by the sentinels
   * (no KeepAlive answered within the heartbeat TTL). Checked when a write is admitted, and again before
   * the high watermark moves and an acks=all record or an offset commit is acknowledged: a leader cut
   * off after admitting a write must not acknowledge it once the sentinels may have moved leadership.
   * Default: always true (tests of a single partition).
   */
  writable?: () => boolean;
  /** Recovery found the log damaged beyond a torn tail ("detected"); fetching repaired it ("repaired"). */
  onLogRepair?: (event: "detected" | "repaired") => void;
  /** Monotonic milliseconds (default performance.now()): never the wall clock, which can step. */
  now?: () => number;
}

/** Summary for Health and metrics. */
export interface PartitionStats {
  role: Role;
  underReplicated: boolean;
  /** Leader with fewer in-sync replicas (itself included) than --min-insync-replicas: acks=all refused. */
  underMinInsync: boolean;
  /** Size of the in-sync replica set, leader included (leader only; 0 otherwise). */
  inSyncReplicas: number;
  /** Largest follower lag in messages (leader only). */
  replicationLag: number;
  /** Sum over consumer groups of (high watermark - committed offset), leader only. */
  consumerLag: number;
  logBytes: number;
}

/**
 * One topic partition on this broker: its log and metadata, its role, and as leader the in-sync replica
 * set and the high watermark (kept by InSyncReplicaTracker, isr-tracker.ts, which decides what is
 * committed; this class feeds it the log's positions and the clock). Role changes are applied
 * synchronously (a demoted leader refuses produce at once); the slow parts (stopping a fetcher,
 * rebuilding the producer table) run in order behind them. Longer than ~400 lines with its documented
 * options and the role, offset-commit and follower entry points the broker's services call: it is the
 * one place a partition's I/O and wiring meet.
 */
export class Partition {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  readonly producers: ProducerTable;
  /** Fires when the high watermark moves or the role changes (long-polling readers). */
  readonly hwSignal = new Signal();
  /** Fires on appends, offset commits and role changes (replication sessions). */
  readonly dataSignal = new Signal();

  #role: Role = "none";
  #epoch = 0;
  #leader: ReplicaInfo | undefined;
  #replicas: ReplicaInfo[] = [];
  #roleSetAt = 0;
  /** Follower progress, the in-sync replicas, the high watermark and who waits for it. */
  readonly #isr: InSyncReplicaTracker;
  /** Bumped whenever leadership starts or ends: work started under an older value is stale. */
  #generation = 0;
  #leaderReady: Promise<void> = Promise.resolve();
  #inflight = new Set<Promise<unknown>>();
  #fetcher: FetcherHandle | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #now: () => number;
  readonly #writable: () => boolean;
  #damage: LogDamage | undefined;
  /** Damaged ranges of sealed segments found by the scrub, by segment base offset (see log-scrubber.ts). */
  readonly #sealedDamage = new Map<number, SegmentDamage>();
  /** The leader epoch this damaged replica refused: the same role again is not retried (no flapping). */
  #refusedEpoch = -1;
  readonly #unsubscribe: () => void;

  private constructor(
    private readonly options: PartitionOptions,
    readonly log: PartitionLog,
    readonly epochs: LeaderEpochHistory,
    readonly offsets: ConsumerOffsets,
    private readonly logger: Logger,
  ) {
    this.topic = options.topic;
    this.partition = options.partition;
    this.key = `${options.topic}#${options.partition}`;
    this.producers = new ProducerTable({
      windowSize: options.idempotencyWindow,
      maxProducers: options.maxProducers,
    });
    this.#now = options.now ?? monotonicClock.now;
    this.#writable = options.writable ?? (() => true);
    // Nothing is known to be replicated after a restart (the high watermark starts at 0); the leader
    // recomputes it from its followers.
    this.#isr = new InSyncReplicaTracker({
      topic: options.topic,
      partition: options.partition,
      brokerId: options.brokerId,
      replicaLagMaxMs: options.replicaLagMaxMs,
      replicationTimeoutMs: options.replicationTimeoutMs,
      ...(options.minInsyncReplicas !== undefined ? { minInsyncReplicas: options.minInsyncReplicas } : {}),
      writable: this.#writable,
      onHighWatermark: () => this.hwSignal.notify(),
      logger,
    });
    this.#damage = log.damage;
    if (this.#damage) options.onLogRepair?.("detected");
    this.#unsubscribe = log.onAppend(() => {
      this.dataSignal.notify();
      if (this.#damage !== undefined) this.#checkRepaired();
    });
  }

  /**
   * A damaged replica (recovery cut records although valid ones followed: LogDamage) refuses to lead
   * until it fetched the cut range again from a replica: leading, it would hand its followers a log
   * without records they may hold and that may have been acknowledged.
   */
  get damaged(): boolean {
    return this.#damage !== undefined || this.sealedDamage.length > 0;
  }

  /**
   * The damaged sealed-segment ranges not repaired yet. A range whose segment was deleted or cut since
   * (retention, a follower's truncation) is forgotten: those records are gone or fetched again anyway.
   */
  get sealedDamage(): SegmentDamage[] {
    if (this.#sealedDamage.size === 0) return [];
    const sealed = this.log.segments().slice(0, -1);
    for (const [base, damage] of this.#sealedDamage) {
      if (!sealed.some((s) => s.baseOffset === base && s.nextOffset === damage.toOffset)) {
        this.#sealedDamage.delete(base);
      }
    }
    return [...this.#sealedDamage.values()];
  }

  /**
   * The scrub found a sealed segment damaged. A follower fetches the range again from its leader (the
   * scrub drives it). A leader with another replica in sync steps down (refusesLeadership: the broker
   * asks the sentinels to move the leadership, then follows and repairs the range); a leader alone in
   * sync keeps serving what it can, since no replica holds more. Returns false when the damage was known.
   */
  reportSealedDamage(damage: SegmentDamage): boolean {
    const known = this.#sealedDamage.get(damage.baseOffset);
    if (known !== undefined && known.fromOffset <= damage.fromOffset) return false;
    this.#sealedDamage.set(damage.baseOffset, damage);
    this.logger.error(
      { ...damage, role: this.#role },
      "corrupt record in a sealed segment; this replica will fetch the range again from an in-sync replica",
    );
    this.options.onLogRepair?.("detected");
    if (this.#role === "leader" && this.inSyncReplicas().length > 1) {
      this.#refuseLeadership("a corrupt sealed segment found while leading");
    }
    return true;
  }

  /**
   * True while this broker holds the leader role the sentinels gave it and refuses it (a damaged log):
   * the broker asks them to move it (HandOverLeadership) until a new role arrives.
   */
  get refusesLeadership(): boolean {
    return this.#refusedEpoch >= 0 && this.#refusedEpoch === this.#epoch && this.damaged;
  }

  #refuseLeadership(why: string): void {
    this.#refusedEpoch = this.#epoch;
    this.logger.error(
      { epoch: this.#epoch, recovery: this.#damage, sealed: this.sealedDamage, why },
      "refusing to lead: this replica's log is damaged (records cut at recovery although valid ones " +
        "followed, or a corrupt sealed segment); it must fetch them again from another replica first. " +
        "The sentinels are asked to hand the leadership to another replica",
    );
    this.demote("the log is damaged");
  }

  /** Replaces a damaged sealed range with the records fetched from the leader (all of them). */
  async repairSealed(damage: SegmentDamage, records: readonly ReplicatedRecord[]): Promise<void> {
    await this.log.repairSegment(damage, records);
    this.#sealedDamage.delete(damage.baseOffset);
    this.logger.warn(
      { baseOffset: damage.baseOffset, fromOffset: damage.fromOffset, toOffset: damage.toOffset },
      "damaged sealed segment range repaired from a replica",
    );
    this.options.onLogRepair?.("repaired");
  }

  #checkRepaired(): void {
    const damage = this.#damage;
    if (damage === undefined || this.log.logEndOffset < damage.toOffset) return;
    this.#damage = undefined;
    this.logger.warn(
      { fromOffset: damage.fromOffset, toOffset: damage.toOffset, logEndOffset: this.log.logEndOffset },
      "damaged log range repaired from a replica",
    );
    this.options.onLogRepair?.("repaired");
  }

  static async open(options: PartitionOptions): Promise<Partition> {
    await mkdir(options.dir, { recursive: true });
    const log = await openPartitionLog({ ...options.log, dir: path.join(options.dir, "log") });
    try {
      const epochs = await LeaderEpochHistory.open(options.dir, log.logEndOffset);
      const offsets = await ConsumerOffsets.open(options.dir, {
        topic: options.topic,
        partition: options.partition,
        ...(options.maxConsumerGroups !== undefined ? { maxGroups: options.maxConsumerGroups } : {}),
      });
      const logger = options.logger.child({ partition: `${options.topic}#${options.partition}` });
      return new Partition(options, log, epochs, offsets, logger);
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
  }

  get role(): Role {
    return this.#role;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get leader(): ReplicaInfo | undefined {
    return this.#leader;
  }

  get replicas(): readonly ReplicaInfo[] {
    return this.#replicas;
  }

  get highWatermark(): number {
    return this.#isr.highWatermark;
  }

  /** Leader: followers may copy records below this (see PartitionOptions.shipUnsynced). */
  get shippableEnd(): number {
    const end = this.log.logEndOffset;
    return this.options.shipUnsynced ? end : Math.min(end, this.log.durableOffset);
  }

  get generation(): number {
    return this.#generation;
  }

  /** When the current role was set (the partition's monotonic clock, ms). */
  get roleSetAt(): number {
    return this.#roleSetAt;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- roles ---------------------------------------------------------------------------------------

  /**
   * Applies a role from the sentinel. Older epochs are ignored (false); the same epoch and role again is
   * a no-op. Returns true when the role was taken.
   */
  applyRole(assignment: RoleAssignment): boolean {
    if (this.#closed) return false;
    if (assignment.epoch < this.#epoch) {
      this.logger.info(
        { epoch: assignment.epoch, held: this.#epoch, role: assignment.role },
        "ignoring a role older than the one held",
      );
      return false;
    }
    if (
      assignment.epoch === this.#epoch &&
      assignment.role === this.#role &&
      assignment.leader.brokerId === this.#leader?.brokerId &&
      sameReplicas(assignment.replicas, this.#replicas)
    ) {
      return true;
    }
    if (assignment.role === "leader" && assignment.epoch === this.#refusedEpoch && this.damaged) {
      // Refused already (see #startLeading): taking and dropping it again on every KeepAlive would flap.
      return false;
    }
    const previous = this.#role;
    const previousLeader = this.#leader;
    this.#epoch = assignment.epoch;
    this.#leader = assignment.leader;
    this.#replicas = assignment.replicas;
    this.#role = assignment.role;
    this.#roleSetAt = this.#now();
    this.logger.info(
      {
        role: assignment.role,
        epoch: assignment.epoch,
        leader: assignment.leader.brokerId,
        replicas: assignment.replicas.map((r) => r.brokerId),
      },
      "partition role",
    );
    if (assignment.role === "leader") {
      if (previous === "leader") {
        this.#isr.setFollowers(this.#followerIds(), this.#now());
      } else {
        this.#startLeading();
      }
    } else {
      if (previous === "leader") this.#stopLeading("demoted to follower");
      const leaderMoved =
        previous !== "follower" ||
        previousLeader?.brokerId !== assignment.leader.brokerId ||
        previousLeader?.address !== assignment.leader.address;
      if (leaderMoved) this.#enqueue(async () => this.#restartFetcher());
    }
    this.hwSignal.notify();
    this.dataSignal.notify();
    return true;
  }

  /** Stops serving the partition (not a replica any more); the data stays. */
  demote(reason: string): void {
    if (this.#role === "none" || this.#closed) return;
    this.logger.info({ reason, role: this.#role }, "partition no longer served");
    if (this.#role === "leader") this.#stopLeading(reason);
    this.#role = "none";
    this.#roleSetAt = this.#now();
    this.#enqueue(async () => this.#stopFetcher());
    this.hwSignal.notify();
    this.dataSignal.notify();
  }

  /** Throws NotPartitionLeaderError unless this broker leads the partition; returns the generation. */
  requireLeader(): number {
    if (this.#role !== "leader" || this.#closed) {
      throw new NotPartitionLeaderError(
        this.topic,
        this.partition,
        this.#role === "none" ? "" : (this.#leader?.brokerId ?? ""),
        this.#role === "none" ? "" : (this.#leader?.address ?? ""),
      );
    }
    return this.#generation;
  }

  /** Waits until leadership set-up (producer table, epoch entry) is done; throws when not leading. */
  async leaderReady(): Promise<number> {
    const generation = this.requireLeader();
    await this.#leaderReady;
    if (generation !== this.#generation || this.#role !== "leader") throw this.#notLeader();
    return generation;
  }

  #notLeader(): NotPartitionLeaderError {
    return new NotPartitionLeaderError(
      this.topic,
      this.partition,
      this.#leader?.brokerId ?? "",
      this.#leader?.address ?? "",
    );
  }

  #startLeading(): void {
    const generation = ++this.#generation;
    this.#isr.beginLeadership(this.#followerIds(), this.#now());
    this.#leaderReady = this.#enqueue(async () => {
      await this.#stopFetcher();
      if (generation !== this.#generation) return;
      if (this.damaged) {
        this.#refuseLeadership("made leader with a damaged log");
        return;
      }
      try {
        const end = this.log.logEndOffset;
        await this.epochs.begin(this.#epoch, end);
        this.#isr.capHighWatermark(end);
        await this.#rebuildProducers();
        if (generation !== this.#generation) return;
        this.#isr.leaderReady(end);
        this.logger.info(
          {
            epoch: this.#epoch,
            logEndOffset: end,
            highWatermark: this.highWatermark,
            producers: this.producers.size,
          },
          "leading partition",
        );
      } catch (err) {
        // Without its epoch entry the partition must not take writes; the next KeepAlive retries.
        this.logger.error({ err: err }, "cannot start leading the partition");
        if (generation === this.#generation) {
          this.demote("leadership set-up failed");
          this.options.onRoleDropped?.();
        }
      }
    });
  }

  /** Leader: followers = replicas minus self. */
  #followerIds(): string[] {
    return this.#replicas.map((r) => r.brokerId).filter((id) => id !== this.options.brokerId);
  }

  #stopLeading(reason: string): void {
    this.#generation++;
    this.#isr.endLeadership(this.#notLeader());
    this.producers.clear();
    this.logger.info({ reason }, "stopped leading partition");
  }

  /** Runs role work one step at a time, in the order the roles arrived. */
  #enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(work).catch((err: unknown) => {
      this.logger.error({ err: err }, "partition role change failed");
    });
    this.#chain = run;
    return run;
  }

  async #restartFetcher(): Promise<void> {
    await this.#stopFetcher();
    // Appends accepted while leading must land before the fetcher reads the log end.
    await Promise.allSettled([...this.#inflight]);
    if (this.#role !== "follower" || this.#closed) return;
    this.#fetcher = this.options.startFetcher(this);
  }

  async #stopFetcher(): Promise<void> {
    const fetcher = this.#fetcher;
    this.#fetcher = undefined;
    await fetcher?.stop();
  }

  async #rebuildProducers(): Promise<void> {
    this.producers.clear();
    const end = this.log.logEndOffset;
    let offset = Math.max(this.log.logStartOffset, end - this.options.idempotencyScanRecords);
    try {
      while (offset < end) {
        const records = await this.log.read(offset, 1000, 4 * 1024 * 1024, { endOffset: end });
        const last = records[records.length - 1];
        if (last === undefined) break;
        for (const record of records) {
          if (record.producerId !== "")
            this.producers.record(record.producerId, record.messageId, record.offset);
        }
        offset = last.offset + 1;
      }
    } catch (err) {
      // Best effort: a damaged record stops the scan; older duplicates may then be appended again.
      const level = err instanceof CorruptRecordError ? "error" : "warn";
      this.logger[level]({ err: err, offset }, "producer table rebuild stopped early");
    }
  }

  // ---- leader: appends, high watermark, in-sync replicas -------------------------------------------

  /** Keeps track of a produce append so a follower fetch loop starts only after it has landed. */
  trackAppend<T>(append: Promise<T>): Promise<T> {
    this.#inflight.add(append);
    const done = () => this.#inflight.delete(append);
    append.then(done, done);
    return append;
  }

  /** Resolves once every produce append in flight now has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /** Leader: records below `end` are stored locally (the append resolved). */
  onLocalAppend(end: number): void {
    this.#isr.localAppend(end);
    // With fsync "always" this is when the records become shippable to followers.
    this.dataSignal.notify();
  }

  /**
   * Leader, acks=all: throws NotEnoughReplicasError when fewer replicas than --min-insync-replicas are in
   * sync (leader included), so nothing is appended that could only be acknowledged by too few replicas.
   */
  requireMinInSync(): void {
    this.#isr.requireMinInSync();
  }

  /**
   * Leader: resolves once the high watermark reaches `end` (acks=all); rejects on demotion, timeout, or
   * when the in-sync set is below --min-insync-replicas by then (Kafka's rule: checked when satisfied).
   */
  waitForHighWatermark(end: number, generation: number): Promise<void> {
    if (generation !== this.#generation || this.#role !== "leader") return Promise.reject(this.#notLeader());
    return this.#isr.waitForHighWatermark(end, this.#now());
  }

  /**
   * Leader: stores a group's offset and resolves once every in-sync follower stored it too. A non-zero
   * `memberEpoch` below the group's fence is refused (FencedMemberError); a higher one raises it.
   */
  async commitOffset(group: string, offset: number, memberEpoch: number, generation: number): Promise<void> {
    this.#requireGeneration(generation);
    await this.#offsetsReplicated(await this.offsets.commit(group, offset, memberEpoch), generation);
  }

  /**
   * Leader: a group member takes the partition over with `memberEpoch` (> 0). The group's fence is
   * raised to it (refused with FencedMemberError when it is already higher) and this resolves once every
   * in-sync follower stored the fence, so no commit of an older epoch lands after the caller is answered.
   */
  async fenceOffsets(group: string, memberEpoch: number, generation: number): Promise<void> {
    this.#requireGeneration(generation);
    await this.#offsetsReplicated(await this.offsets.raiseFence(group, memberEpoch), generation);
  }

  /** Leader: forgets a group's offset and fence, on every in-sync follower; true when it had an offset. */
  async deleteOffset(group: string, generation: number): Promise<boolean> {
    this.#requireGeneration(generation);
    const { deleted, version } = await this.offsets.delete(group);
    if (version !== undefined) await this.#offsetsReplicated(version, generation);
    return deleted;
  }

  /**
   * Leader: deletes the records below `offset` (at most the high watermark: the caller checked), wakes
   * the replication streams, whose next answer carries the new log start to the followers, and
   * resolves once every in-sync follower reported deleting them too (a follower that becomes leader
   * then never serves them again). Returns the new log start. Rejects with NotEnoughReplicasError when
   * a follower does not confirm in time: the records are gone here, and calling again waits again.
   */
  async deleteRecordsBefore(offset: number, generation: number): Promise<number> {
    this.#requireGeneration(generation);
    const { logStartOffset } = await this.log.deleteRecordsBefore(offset);
    this.dataSignal.notify();
    // Leadership may have moved during the deletion: the in-sync set to wait for is this leadership's.
    this.#requireGeneration(generation);
    await this.#isr.waitForLogStart(offset, this.#now());
    return logStartOffset;
  }

  /** The offset table is changed only by the leader of the generation the request was checked in. */
  #requireGeneration(generation: number): void {
    if (generation !== this.#generation || this.#role !== "leader") throw this.#notLeader();
  }

  /** Leader: resolves once every in-sync follower stored offset-table version `version`. */
  async #offsetsReplicated(version: number, generation: number): Promise<void> {
    this.dataSignal.notify();
    this.#requireGeneration(generation);
    await this.#isr.waitForOffsets(version, this.#now());
  }

  /** Leader: is `followerId` a follower of this partition (in the leader's replica list)? */
  hasFollower(followerId: string): boolean {
    return this.#isr.hasFollower(followerId);
  }

  /** Leader: a new Replicate stream from a follower; returns its stream number. */
  openStream(followerId: string): number {
    return this.#isr.openStream(followerId);
  }

  /**
   * Leader: a follower asked for records from `fetchOffset` (its log end), having stored consumer-offset
   * version `offsetsVersion`, its log starting at `logStartOffset` (when it reports it). Updates the
   * in-sync set, the high watermark and what waits for the followers.
   */
  onFetch(
    followerId: string,
    stream: number,
    fetchOffset: number,
    offsetsVersion: number | undefined,
    logStartOffset?: number,
  ): void {
    this.#isr.onFetch(
      followerId,
      stream,
      fetchOffset,
      offsetsVersion,
      this.shippableEnd,
      this.#now(),
      logStartOffset,
    );
  }

  /** Leader: a response went to the follower while the leader log ended at `logEndOffset`. */
  onResponse(followerId: string, stream: number, logEndOffset: number): void {
    this.#isr.onResponse(followerId, stream, logEndOffset, this.#now());
  }

  /** Ids of the in-sync replicas, leader first (leader only; [] otherwise). */
  inSyncReplicas(): string[] {
    return this.#isr.inSyncReplicas();
  }

  /**
   * Periodic leader housekeeping: followers not caught up within the lag bound leave the in-sync set
   * (which may advance the high watermark), and waiters past their deadline fail.
   */
  tick(): void {
    if (this.#role !== "leader") return;
    this.#isr.tick(this.#now(), this.log.logEndOffset);
  }

  // ---- follower ------------------------------------------------------------------------------------

  /** Follower: the leader's high watermark, capped at what this replica has. */
  setFollowerHighWatermark(hw: number): void {
    if (this.#isr.setFollowerHighWatermark(Math.min(hw, this.log.logEndOffset))) this.hwSignal.notify();
  }

  /** Follower: the log was cut at `offset` (diverged from the leader, or reset behind its start). */
  onTruncated(offset: number): void {
    this.#isr.capHighWatermark(offset);
  }

  // ---- the rest ------------------------------------------------------------------------------------

  stats(): PartitionStats {
    let replicationLag = 0;
    let inSync = 1;
    let lagOfGroups = 0;
    if (this.#role === "leader") {
      ({ inSync, replicationLag } = this.#isr.stats(this.log.logEndOffset));
      const hw = this.highWatermark;
      const start = this.log.logStartOffset;
      for (const [, committed] of this.offsets.committed()) lagOfGroups += consumerLag(committed, start, hw);
    }
    return {
      role: this.#role,
      underReplicated: this.#role === "leader" && inSync < this.#replicas.length,
      underMinInsync: this.#role === "leader" && inSync < (this.options.minInsyncReplicas ?? 1),
      inSyncReplicas: this.#role === "leader" ? inSync : 0,
      replicationLag,
      consumerLag: lagOfGroups,
      logBytes: this.log.sizeBytes,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#role === "leader") this.#stopLeading("closing");
    this.#role = "none";
    this.#closed = true;
    this.hwSignal.notify();
    this.dataSignal.notify();
    await this.#enqueue(async () => this.#stopFetcher());
    await Promise.allSettled([...this.#inflight]);
    this.#unsubscribe();
    await this.log.close();
  }
}

function sameReplicas(a: readonly ReplicaInfo[], b: readonly ReplicaInfo[]): boolean {
  return (
    a.length === b.length && a.every((r, i) => r.brokerId === b[i]?.brokerId && r.address === b[i]?.address)
  );
}
