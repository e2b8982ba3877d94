import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelay } from "../common/backoff.js";
import type { Leadership } from "../coordination/leadership.js";
import { errorMessage } from "../errors.js";
import type { Command, Operation } from "../fsm/operations.js";
import type { RingView } from "../fsm/planner.js";
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from "../fsm/split.js";
import { ClusterState, type AppliedEffect, type TopicRecord } from "../fsm/state.js";
import type { Logger } from "../observability/logger.js";
import type { SentinelMetrics } from "../observability/metrics.js";
import { HeadMovedError, type LogWatch, type OperationLog } from "../oplog/operation-log.js";
import { DEFAULT_TXN_LIMITS, type TxnLimits } from "../oplog/txn-batch.js";
import { AppliedWaiters } from "./applied-waiters.js";
import { recoverFromLog } from "./log-recovery.js";
import { summariseOperation, updatePlaneGauges } from "./plane-gauges.js";
import { LogProbe } from "./log-probe.js";
import { RingCache } from "./ring-cache.js";
import { SnapshotKeeper, type SnapshotResult } from "./snapshot-keeper.js";
import { WriteLoop, type AppliedOperation } from "./write-loop.js";

export interface ControlPlaneOptions {
  /** This sentinel's id (logged, recorded in the operations it appends). */
  id: string;
  /** The operation log and its snapshots (etcd: OplogStore). */
  log: OperationLog;
  /** Whether this sentinel leads, and the fence of its appends (etcd: LeaderElection). */
  leadership: Leadership;
  logger: Logger;
  metrics: SentinelMetrics;
  /**
   * Virtual nodes per broker in the hash ring (--virtual-nodes): used until the log records a value
   * (configureRing, appended by the first leader from its own flag); the logged value wins after that.
   */
  virtualNodes: number;
  /** The leader writes a snapshot and compacts the log every this many operations. */
  snapshotEvery: number;
  /** Clock for operation timestamps (tests may fix it). */
  now?: () => number;
  /** How many topics (and bytes) one operation may change; bigger commands are split (tests lower it). */
  operationLimits?: OperationLimits;
  /** How much one group-commit transaction may hold (tests lower it). */
  txnLimits?: TxnLimits;
}

/** Called on the leader after one of its own operations was applied; `before` holds the changed topics' old records. */
export type AppliedListener = (
  op: Operation,
  effect: AppliedEffect,
  before: Map<string, TopicRecord | undefined>,
) => void;

/**
 * One sentinel's view of the control plane: the state machine fed by the operation log, leadership, and
 * the leader's write path (write-loop.ts: propose → fenced group append → apply). Recovery = newest
 * snapshot + paged replay + a watch from the next revision, so nothing is missed or applied twice. The
 * log and the leadership are passed in (etcd-control-plane.ts builds them on etcd), so everything here
 * also runs over the in-memory twins of the unit tests.
 */
export class ControlPlane {
  readonly state = new ClusterState();
  readonly log: OperationLog;
  readonly leadership: Leadership;
  readonly #options: ControlPlaneOptions;
  readonly #ring = new RingCache();
  readonly #writes: WriteLoop;
  readonly #appliedWaiters = new AppliedWaiters();
  #watch: LogWatch | undefined;
  #ready = false;
  #leaderReady = false;
  #stopped = false;
  #head = 0;
  #lastAppliedTimestamp = 0;
  /** The logged virtual-node count last warned about (a flag that disagrees is warned about once). */
  #ringWarnedFor: number | undefined;
  #resyncing: Promise<void> | undefined;
  readonly #snapshots: SnapshotKeeper;
  readonly #probe: LogProbe;
  readonly #appliedListeners: AppliedListener[] = [];
  readonly #leadershipListeners: ((leader: boolean) => void)[] = [];

  constructor(options: ControlPlaneOptions) {
    this.#options = options;
    this.log = options.log;
    this.leadership = options.leadership;
    this.#writes = new WriteLoop({
      state: this.state,
      log: this.log,
      fence: () => (this.isLeader ? this.leadership.fenceKey : undefined),
      leaderId: options.id,
      now: options.now ?? Date.now,
      txnLimits: options.txnLimits ?? DEFAULT_TXN_LIMITS,
      operationLimits: options.operationLimits ?? DEFAULT_OPERATION_LIMITS,
      timeAppend: () => options.metrics.appendDuration.startTimer(),
      onCommitted: (applied) => this.#onCommitted(applied),
      onAppendFailed: (err, operations) => {
        // The state holds the batch's operations, which the log did not take: rebuild it from the log.
        const reason = err instanceof HeadMovedError ? "append found the head moved" : "append failed";
        options.logger.warn({ err: err, operations }, `${reason}; re-synchronising`);
        return this.#resync(`${reason}: ${errorMessage(err)}`);
      },
    });
    this.#snapshots = new SnapshotKeeper({
      state: this.state,
      log: this.log,
      writes: this.#writes,
      fence: () => (this.isLeader ? this.leadership.fenceKey : undefined),
      every: options.snapshotEvery,
      metrics: options.metrics,
      logger: options.logger,
    });
    this.#probe = new LogProbe(this.log, options.logger, (head) => {
      if (head !== undefined) this.#head = Math.max(this.#head, head);
      this.#updateGauges();
    });
    this.leadership.on("elected", () => void this.#onElected());
    this.leadership.on("deposed", (reason) => this.#onDeposed(reason));
  }

  /** Recovered, following the log, and etcd answered the last probe. */
  get ready(): boolean {
    return this.#ready && !this.#stopped && this.#probe.reachable;
  }

  /** True once this sentinel leads and has applied every operation before its term. */
  get isLeader(): boolean {
    return this.leadership.isLeader && this.#leaderReady;
  }

  get leaderUrl(): string | undefined {
    return this.leadership.leaderUrl;
  }

  get head(): number {
    return Math.max(this.#head, this.state.appliedId);
  }

  get snapshotId(): number {
    return this.#snapshots.snapshotId;
  }

  get ring(): RingView & { size: number; virtualNodeCount: number } {
    return this.#ring.get(this.state.ringMembers(), this.ringVirtualNodes);
  }

  /** Virtual nodes per broker the ring is built with: the logged value, else this sentinel's flag. */
  get ringVirtualNodes(): number {
    return this.state.ringConfig?.virtualNodes ?? this.#options.virtualNodes;
  }

  onApplied(listener: AppliedListener): void {
    this.#appliedListeners.push(listener);
  }

  onLeadership(listener: (leader: boolean) => void): void {
    this.#leadershipListeners.push(listener);
  }

  /** Recovers the state, starts following the log, then campaigns for leadership. */
  async start(): Promise<void> {
    const started = Date.now();
    await this.#recover();
    const seconds = (Date.now() - started) / 1000;
    this.#options.metrics.replayDuration.observe(seconds);
    this.#options.logger.info(
      {
        appliedId: this.state.appliedId,
        snapshotId: this.snapshotId,
        topics: this.state.topicCount(),
        seconds,
      },
      "recovered state from etcd",
    );
    this.#ready = true;
    this.#probe.reachable = true;
    this.#probe.start();
    this.#updateGauges();
    await this.leadership.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready = false;
    this.#probe.stop();
    await this.leadership.stop();
    await this.#watch?.cancel().catch(() => undefined);
    this.#appliedWaiters.releaseAll();
    this.#updateGauges();
  }

  /**
   * Appends one command as the leader and applies it; resolves with its operation once the operation
   * is committed (undefined when the plan has nothing to do). Throws NotLeaderError when this sentinel
   * does not (or no longer) lead. Proposals are group-committed (write-loop.ts); a command changing more
   * topics than one operation may is split, and the last operation is returned.
   */
  propose(plan: () => Command | undefined): Promise<Operation | undefined> {
    return this.#writes.propose(plan);
  }

  /**
   * Resolves once every operation in this sentinel's state is committed in the log. With group commit the
   * leader applies proposals as it plans them, so for one transaction its state runs ahead of the log;
   * reads that answer outside callers (GetBrokers, KeepAlive role lists, admin views) wait for that
   * transaction, so nobody sees an assignment a failed transaction takes back. Immediate when nothing
   * is in flight (always on followers, which only apply what the log holds).
   */
  committedState(): Promise<void> {
    return this.#writes.committed();
  }

  /** Resolves once this sentinel has applied operation `id` (or throws after `timeoutMs`). */
  async waitForApplied(id: number, timeoutMs = 5_000): Promise<void> {
    if (this.state.appliedId >= id) return;
    await this.#appliedWaiters.wait(id, timeoutMs, () => this.state.appliedId);
  }

  /**
   * Writes a snapshot now (leader only) and compacts the log it covers: captured between two
   * transactions, persisted while proposals go on (snapshot-keeper.ts).
   */
  snapshotNow(): Promise<SnapshotResult> {
    return this.#snapshots.snapshotNow();
  }

  #onCommitted(applied: AppliedOperation[]): void {
    const last = applied[applied.length - 1]?.op;
    if (!last) return;
    this.#head = Math.max(this.#head, last.id);
    this.#lastAppliedTimestamp = last.timestamp;
    for (const { op, effect, before } of applied) {
      this.#options.metrics.appended.inc({ type: op.type });
      this.#options.logger.info(
        { opId: op.id, type: op.type, data: summariseOperation(op) },
        `appended ${op.type}`,
      );
      for (const listener of this.#appliedListeners) listener(op, effect, before);
    }
    this.#appliedWaiters.notify(this.state.appliedId);
    this.#updateGauges();
    this.#snapshots.afterCommit();
  }

  async #recover(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#recoverOnce();
        return;
      } catch (err) {
        this.#probe.reachable = false;
        this.#updateGauges();
        if (this.#stopped) throw err;
        const delay = backoffDelay(attempt, 200, 5_000);
        this.#options.logger.warn({ err: err, attempt, retryInMs: delay }, "recovery failed; retrying");
        await sleep(delay);
      }
    }
  }

  async #recoverOnce(): Promise<void> {
    const recovered = await recoverFromLog(this.log);
    await this.#watch?.cancel().catch(() => undefined);
    this.state.replaceWith(recovered.state);
    this.#head = recovered.head;
    this.#snapshots.recovered(recovered.snapshotId);
    this.#lastAppliedTimestamp = recovered.lastTimestamp;
    this.#watch = await this.log.watch(
      String(BigInt(recovered.revision) + 1n),
      (op) => this.#onWatchedOperation(op),
      (err) => void this.#resync(`operation watch failed: ${err.message}`),
    );
    this.#appliedWaiters.notify(this.state.appliedId);
  }

  #onWatchedOperation(op: Operation): void {
    this.#head = Math.max(this.#head, op.id);
    if (op.id <= this.state.appliedId) return;
    if (op.id !== this.state.appliedId + 1) {
      void this.#resync(`gap in the watched log: applied ${this.state.appliedId}, received ${op.id}`);
      return;
    }
    this.state.apply(op);
    this.#lastAppliedTimestamp = op.timestamp;
    this.#appliedWaiters.notify(this.state.appliedId);
    this.#updateGauges();
  }

  /** Re-runs recovery (gap, watch failure, compaction race); concurrent calls share one run. */
  #resync(reason: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#resyncing ??= (async () => {
      this.#options.logger.warn({ reason }, "re-synchronising state from etcd");
      await this.#recover();
    })().finally(() => {
      this.#resyncing = undefined;
      this.#updateGauges();
    });
    return this.#resyncing;
  }

  async #onElected(): Promise<void> {
    this.#options.metrics.leaderChanges.inc();
    try {
      // A new leader must hold every operation of the previous term before it appends. etcd may be slow
      // to answer (or the bulk client's circuit breaker open) for a few seconds: retried within 10 s
      // rather than resigning at once, which under load only hands the same trouble to another sentinel.
      const { head } = await this.#readHeadWithin(10_000);
      this.#head = Math.max(this.#head, head);
      await this.waitForApplied(head, 10_000);
      if (!this.leadership.isLeader) return;
      await this.#recordRingConfig();
      if (!this.leadership.isLeader) return;
      this.#leaderReady = true;
      this.#updateGauges();
      this.#options.logger.info({ appliedId: this.state.appliedId }, "leading: caught up with the log");
      for (const listener of this.#leadershipListeners) listener(true);
    } catch (err) {
      this.#options.logger.error(
        { err: err },
        "elected but could not catch up with the log (or record the ring configuration); resigning",
      );
      await this.leadership.stop().catch(() => undefined);
      if (!this.#stopped) await this.leadership.start().catch(() => undefined);
    }
  }

  async #readHeadWithin(deadlineMs: number): Promise<{ head: number; revision: string }> {
    const deadline = Date.now() + deadlineMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.log.readHead();
      } catch (err) {
        if (Date.now() >= deadline || !this.leadership.isLeader || this.#stopped) throw err;
        await sleep(backoffDelay(attempt, 250, 2_000));
      }
    }
  }

  /**
   * Records this sentinel's --virtual-nodes in the log when the log holds no ring configuration yet, so
   * every sentinel builds the same ring from then on. Runs before the new leader takes any proposal (it
   * is not leader-ready yet, so the write loop is idle) and waits until the watch applied it, so nothing
   * is ever planned on a ring that is not the logged one. A failure makes #onElected resign and retry.
   */
  async #recordRingConfig(): Promise<void> {
    const fenceKey = this.leadership.fenceKey;
    if (this.state.ringConfig || !fenceKey) return;
    const op: Operation = {
      type: "configureRing",
      data: { virtualNodes: this.#options.virtualNodes },
      id: this.state.appliedId + 1,
      timestamp: (this.#options.now ?? Date.now)(),
      leaderId: this.#options.id,
    };
    await this.log.appendBatch({
      fenceKey,
      expectedHead: this.state.appliedId,
      ops: [op],
      topics: { put: [], deleted: [] },
    });
    this.#options.metrics.appended.inc({ type: op.type });
    this.#options.logger.info(
      { opId: op.id, virtualNodes: op.data.virtualNodes },
      "recorded the ring configuration",
    );
    await this.waitForApplied(op.id, 10_000);
  }

  /** Warns (once per value) when the logged ring configuration overrides this sentinel's flag. */
  #checkRingConfig(): void {
    const logged = this.state.ringConfig?.virtualNodes;
    const flag = this.#options.virtualNodes;
    if (logged === undefined || logged === flag || logged === this.#ringWarnedFor) return;
    this.#ringWarnedFor = logged;
    this.#options.logger.warn(
      { flag, logged },
      `--virtual-nodes ${flag} differs from the value recorded in the operation log; ` +
        `building the hash ring with the logged ${logged} virtual nodes per broker so every sentinel agrees`,
    );
  }

  #onDeposed(reason: string): void {
    const wasLeader = this.#leaderReady;
    this.#leaderReady = false;
    this.#options.metrics.leaderChanges.inc();
    this.#updateGauges();
    this.#options.logger.warn({ reason }, "no longer leader");
    if (wasLeader) for (const listener of this.#leadershipListeners) listener(false);
  }

  #updateGauges(): void {
    this.#checkRingConfig();
    updatePlaneGauges(this.#options.metrics, {
      state: this.state,
      isLeader: this.isLeader,
      ready: this.ready,
      etcdReachable: this.#probe.reachable,
      ring: this.ring,
      head: this.head,
      lastAppliedTimestamp: this.#lastAppliedTimestamp,
    });
  }
}
