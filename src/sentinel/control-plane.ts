import { setTimeout as sleep } from "node:timers/promises";
import type { Etcd3, Watcher } from "etcd3";
import type { Keyspace } from "../coordination/keyspace.js";
import { LeaderElection } from "../coordination/leader-election.js";
import { NotLeaderError, UnavailableError, errorMessage } from "../errors.js";
import type { Command, Operation, TopicChange } from "../fsm/operations.js";
import type { RingView } from "../fsm/planner.js";
import { DEFAULT_OPERATION_LIMITS, splitCommand, type OperationLimits } from "../fsm/split.js";
import { ClusterState, projectTopics, type AppliedEffect, type TopicRecord } from "../fsm/state.js";
import type { Logger } from "../observability/logger.js";
import type { SentinelMetrics } from "../observability/metrics.js";
import { HeadMovedError, OplogStore } from "../oplog/oplog-store.js";
import { toStoredTopicInfo } from "../oplog/topic-info.js";
import { DEFAULT_TXN_LIMITS, TxnBatch, type TxnLimits } from "../oplog/txn-batch.js";
import { RingCache } from "./ring-cache.js";

export interface ControlPlaneOptions {
  /** This sentinel's id (logged, recorded in the operations it appends). */
  id: string;
  /** This sentinel's advertised RPC URL (in the election value, with the id). */
  url: string;
  etcd: Etcd3;
  /** The client the leader election runs on (its lease renewals must not queue behind bulk calls); default `etcd`. */
  livenessEtcd?: Etcd3;
  keys: Keyspace;
  logger: Logger;
  metrics: SentinelMetrics;
  /**
   * Virtual nodes per broker in the hash ring (--virtual-nodes): used until the log records a value
   * (configureRing, appended by the first leader from its own flag); the logged value wins after that.
   */
  virtualNodes: number;
  /** The leader writes a snapshot and compacts the log every this many operations. */
  snapshotEvery: number;
  /** Election lease TTL in seconds. */
  electionTtlSeconds: number;
  /** Clock for operation timestamps (tests may fix it). */
  now?: () => number;
  /** How many topics (and bytes) one operation may change; bigger commands are split (tests lower it). */
  operationLimits?: OperationLimits;
  /** How much one group-commit transaction may hold (tests lower it). */
  txnLimits?: TxnLimits;
}

interface ProposeJob {
  kind: "propose";
  plan: () => Command | undefined;
  /** The planned command's operations not yet in a batch (undefined until planned). */
  parts: Command[] | undefined;
  /** The newest of its operations put in a batch. */
  last: Operation | undefined;
  resolve: (op: Operation | undefined) => void;
  reject: (err: unknown) => void;
}

type Job =
  | ProposeJob
  | {
      kind: "barrier";
      run: () => Promise<unknown>;
      resolve: (value: unknown) => void;
      reject: (err: unknown) => void;
    };

/** Called on the leader after one of its own operations was applied; `before` holds the changed topics' old records. */
export type AppliedListener = (
  op: Operation,
  effect: AppliedEffect,
  before: Map<string, TopicRecord | undefined>,
) => void;

/**
 * One sentinel's view of the control plane: the state machine fed by the operation log, the leader
 * election, and the leader's write path (propose → fenced append → apply). Recovery = newest snapshot
 * + paged replay + a watch from the next revision, so nothing is missed or applied twice.
 */
export class ControlPlane {
  readonly state = new ClusterState();
  readonly store: OplogStore;
  readonly election: LeaderElection;
  readonly #ring: RingCache;
  #watcher: Watcher | undefined;
  #ready = false;
  #leaderReady = false;
  #stopped = false;
  #head = 0;
  #snapshotId = 0;
  #lastAppliedTimestamp = 0;
  /** The logged virtual-node count last warned about (a flag that disagrees is warned about once). */
  #ringWarnedFor: number | undefined;
  /** Writes waiting for the leader's write loop, in order. */
  #jobs: Job[] = [];
  #pumping = false;
  #resyncing: Promise<void> | undefined;
  /** Settles when the transaction in flight is committed or dropped (undefined: none in flight). */
  #inFlight: Promise<void> | undefined;
  #appliedWaiters: { id: number; resolve: () => void }[] = [];
  #etcdReachable = false;
  #etcdProbe: NodeJS.Timeout | undefined;
  readonly #appliedListeners: AppliedListener[] = [];
  readonly #leadershipListeners: ((leader: boolean) => void)[] = [];

  constructor(private readonly options: ControlPlaneOptions) {
    this.store = new OplogStore(options.etcd, options.keys);
    this.#ring = new RingCache();
    this.election = new LeaderElection({
      etcd: options.livenessEtcd ?? options.etcd,
      keys: options.keys,
      id: options.id,
      url: options.url,
      ttlSeconds: options.electionTtlSeconds,
      logger: options.logger.child({ part: "election" }),
    });
    this.election.on("elected", () => void this.#onElected());
    this.election.on("deposed", (reason) => this.#onDeposed(reason));
  }

  /** Recovered, following the log, and etcd answered the last probe. */
  get ready(): boolean {
    return this.#ready && !this.#stopped && this.#etcdReachable;
  }

  /** True once this sentinel leads and has applied every operation before its term. */
  get isLeader(): boolean {
    return this.election.isLeader && this.#leaderReady;
  }

  get leaderUrl(): string | undefined {
    return this.election.leaderUrl;
  }

  get head(): number {
    return Math.max(this.#head, this.state.appliedId);
  }

  get snapshotId(): number {
    return this.#snapshotId;
  }

  get ring(): RingView & { size: number; virtualNodeCount: number } {
    return this.#ring.get(this.state.ringMembers(), this.ringVirtualNodes);
  }

  /** Virtual nodes per broker the ring is built with: the logged value, else this sentinel's flag. */
  get ringVirtualNodes(): number {
    return this.state.ringConfig?.virtualNodes ?? this.options.virtualNodes;
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
    this.options.metrics.replayDuration.observe(seconds);
    this.options.logger.info(
      {
        appliedId: this.state.appliedId,
        snapshotId: this.#snapshotId,
        topics: this.state.topicCount(),
        seconds,
      },
      "recovered state from etcd",
    );
    this.#ready = true;
    this.#etcdReachable = true;
    this.#startEtcdProbe();
    this.#updateGauges();
    await this.election.start();
  }

  /**
   * Reads the log head every second: keeps the head gauge fresh (replay lag is visible even when the
   * watch stalls) and tells /readyz and goulette_sentinel_etcd_up whether etcd answers.
   */
  #startEtcdProbe(): void {
    let inFlight = false;
    this.#etcdProbe = setInterval(() => {
      if (inFlight || this.#stopped) return;
      inFlight = true;
      this.store
        .readHead({ timeoutMs: 1_500 })
        .then(
          ({ head }) => {
            this.#head = Math.max(this.#head, head);
            if (!this.#etcdReachable) this.options.logger.info("etcd answers again");
            this.#etcdReachable = true;
          },
          (err: unknown) => {
            if (this.#etcdReachable) this.options.logger.warn({ err: err }, "etcd does not answer");
            this.#etcdReachable = false;
          },
        )
        .finally(() => {
          inFlight = false;
          this.#updateGauges();
        });
    }, 1_000);
    this.#etcdProbe.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready = false;
    clearInterval(this.#etcdProbe);
    await this.election.stop();
    await this.#watcher?.cancel().catch(() => undefined);
    for (const waiter of this.#appliedWaiters) waiter.resolve();
    this.#appliedWaiters = [];
    this.#updateGauges();
  }

  /**
   * Appends one command as the leader and applies it; resolves with its operation once the operation
   * is committed (undefined when the plan has nothing to do). Throws NotLeaderError when this sentinel
   * does not (or no longer) lead.
   *
   * Group commit: proposals queue while a transaction is in flight and the next transaction takes them
   * all (within the per-transaction bounds). Each plan runs against the state with every operation before
   * it applied, so the leader applies its operations as it plans them, ahead of etcd by at most the
   * batch in flight; if that transaction fails, the callers get the error and the state is rebuilt from
   * etcd. A command changing more topics than one operation may is split into several operations
   * appended back to back (nothing interleaves); the last one is returned.
   */
  propose(plan: () => Command | undefined): Promise<Operation | undefined> {
    return new Promise((resolve, reject) => {
      this.#jobs.push({ kind: "propose", plan, parts: undefined, last: undefined, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    // A microtask later: proposals made in the same tick go in the same transaction.
    queueMicrotask(() => {
      void this.#pump().finally(() => {
        this.#pumping = false;
        if (this.#jobs.length > 0) this.#kick();
      });
    });
  }

  /** Runs the queued jobs in order: barriers (snapshots) alone, proposals in group-commit batches. */
  async #pump(): Promise<void> {
    for (let job = this.#jobs[0]; job; job = this.#jobs[0]) {
      if (job.kind === "barrier") {
        this.#jobs.shift();
        await job.run().then(job.resolve, job.reject);
        continue;
      }
      await this.#commitBatch();
    }
  }

  /** Plans, applies and commits the proposals at the head of the queue, as many as one txn holds. */
  async #commitBatch(): Promise<void> {
    const fenceKey = this.election.fenceKey;
    const expectedHead = this.state.appliedId;
    const batch = new TxnBatch(this.options.txnLimits ?? DEFAULT_TXN_LIMITS);
    const applied: { op: Operation; effect: AppliedEffect; before: Map<string, TopicRecord | undefined> }[] =
      [];
    const done: { job: ProposeJob; op: Operation | undefined }[] = [];
    const timestamp = (this.options.now ?? Date.now)();
    fill: for (let job = this.#jobs[0]; job?.kind === "propose"; job = this.#jobs[0]) {
      if (job.parts === undefined) {
        let command: Command | undefined;
        try {
          if (!this.isLeader || !fenceKey) throw new NotLeaderError();
          command = job.plan();
        } catch (err) {
          this.#jobs.shift();
          job.reject(err);
          continue;
        }
        // Nothing to do, but the caller answers from state that may include this batch: after the commit.
        job.parts = command ? this.#split(command) : [];
      }
      for (let part = job.parts[0]; part; part = job.parts[0]) {
        const op = {
          ...part,
          id: this.state.appliedId + 1,
          timestamp,
          leaderId: this.options.id,
        } as Operation;
        const topics = projectTopics(this.state, op);
        const cost = batch.cost(op, topics);
        if (!batch.fits(cost)) break fill;
        const before = new Map<string, TopicRecord | undefined>();
        for (const t of [...topics.put.map((r) => r.topic), ...topics.deleted])
          before.set(t, this.state.topic(t));
        const effect = this.state.apply(op) ?? { changedTopics: [], changedBrokers: [] };
        batch.add(op, topics, cost);
        applied.push({ op, effect, before });
        job.parts.shift();
        job.last = op;
      }
      this.#jobs.shift();
      done.push({ job, op: job.last });
    }
    if (batch.size === 0) {
      for (const { job, op } of done) job.resolve(op);
      return;
    }
    // The head of the queue may be a proposal whose first parts are in this batch.
    const straddling = this.#jobs[0]?.kind === "propose" && this.#jobs[0].last ? this.#jobs[0] : undefined;
    const end = this.options.metrics.appendDuration.startTimer();
    let settle = () => {};
    // Reads wait for this (committedState): the state below holds the batch before etcd does.
    this.#inFlight = new Promise<void>((resolve) => (settle = resolve));
    try {
      try {
        await this.store.appendBatch({
          fenceKey: fenceKey as string,
          expectedHead,
          ops: batch.ops,
          topics: batch.topicWrites(),
        });
      } catch (err) {
        end();
        if (straddling) this.#jobs.shift();
        for (const { job } of done) job.reject(err);
        straddling?.reject(err);
        // A proposal planned against this batch's state but left for the next one must plan again.
        const next = this.#jobs[0];
        if (next?.kind === "propose" && !next.last) next.parts = undefined;
        // The state holds the batch's operations, which etcd did not take: rebuild it from etcd.
        const reason = err instanceof HeadMovedError ? "append found the head moved" : "append failed";
        this.options.logger.warn({ err: err, operations: batch.size }, `${reason}; re-synchronising`);
        await this.#resync(`${reason}: ${errorMessage(err)}`).catch(() => undefined);
        return;
      }
      end();
      const last = batch.ops[batch.ops.length - 1] as Operation;
      this.#head = Math.max(this.#head, last.id);
      this.#lastAppliedTimestamp = last.timestamp;
      for (const { op, effect, before } of applied) {
        this.options.metrics.appended.inc({ type: op.type });
        this.options.logger.info({ opId: op.id, type: op.type, data: summarise(op) }, `appended ${op.type}`);
        for (const listener of this.#appliedListeners) listener(op, effect, before);
      }
      for (const { job, op } of done) job.resolve(op);
      this.#notifyWaiters();
      this.#updateGauges();
      this.#maybeSnapshot();
    } finally {
      this.#inFlight = undefined;
      settle();
    }
  }

  #split(command: Command): Command[] {
    const sizeOf = (change: TopicChange) => {
      const record = this.state.topic(change.topic);
      return JSON.stringify(change).length + (record ? JSON.stringify(toStoredTopicInfo(record)).length : 0);
    };
    return splitCommand(command, this.options.operationLimits ?? DEFAULT_OPERATION_LIMITS, sizeOf);
  }

  /**
   * Resolves once every operation in this sentinel's state is committed in etcd. With group commit the
   * leader applies proposals as it plans them, so for one transaction its state runs ahead of etcd;
   * reads that answer outside callers (GetBrokers, KeepAlive role lists, admin views) wait for that
   * transaction, so nobody sees an assignment a failed transaction takes back. Immediate when nothing
   * is in flight (always on followers, which only apply what etcd holds).
   */
  committedState(): Promise<void> {
    return this.#inFlight ?? Promise.resolve();
  }

  /** Resolves once this sentinel has applied operation `id` (or throws after `timeoutMs`). */
  async waitForApplied(id: number, timeoutMs = 5_000): Promise<void> {
    if (this.state.appliedId >= id) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#appliedWaiters = this.#appliedWaiters.filter((w) => w !== waiter);
        reject(
          new UnavailableError(
            `not caught up to operation ${id} after ${timeoutMs} ms (applied ${this.state.appliedId})`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        id,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#appliedWaiters.push(waiter);
    });
  }

  /** Writes a snapshot now (leader only) and compacts the log it covers. */
  snapshotNow(): Promise<{ snapshotId: number; compacted: number; size: number }> {
    const run = async () => {
      const fenceKey = this.election.fenceKey;
      if (!fenceKey || !this.isLeader) throw new NotLeaderError();
      const { meta, compacted } = await this.store.writeSnapshot(this.state.snapshot(), fenceKey, Date.now());
      this.#snapshotId = meta.id;
      this.options.metrics.snapshots.inc();
      this.options.metrics.snapshotId.set(meta.id);
      this.options.logger.info(
        { snapshotId: meta.id, bytes: meta.size, compacted },
        "wrote snapshot and compacted the log",
      );
      return { snapshotId: meta.id, compacted, size: meta.size };
    };
    return new Promise((resolve, reject) => {
      this.#jobs.push({ kind: "barrier", run, resolve: resolve as (value: unknown) => void, reject });
      this.#kick();
    });
  }

  #maybeSnapshot(): void {
    if (this.state.appliedId - this.#snapshotId < this.options.snapshotEvery) return;
    this.snapshotNow().catch((err: unknown) =>
      this.options.logger.warn({ err: err }, "periodic snapshot failed; will retry after the next operation"),
    );
  }

  async #recover(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#recoverOnce();
        return;
      } catch (err) {
        this.#etcdReachable = false;
        this.#updateGauges();
        if (this.#stopped) throw err;
        const delay = Math.min(5_000, 200 * attempt);
        this.options.logger.warn({ err: err, attempt, retryInMs: delay }, "recovery failed; retrying");
        await sleep(delay);
      }
    }
  }

  async #recoverOnce(): Promise<void> {
    const snapshot = await this.store.readSnapshot();
    const fresh = new ClusterState();
    if (snapshot) fresh.restore(snapshot.state, { owned: true });
    const { head, revision } = await this.store.readHead();
    let lastTimestamp = 0;
    for await (const page of this.store.readAfter(fresh.appliedId, { revision })) {
      for (const op of page) {
        if (op.id !== fresh.appliedId + 1) {
          throw new Error(
            `operation log gap: expected ${fresh.appliedId + 1}, found ${op.id} (compacted meanwhile?)`,
          );
        }
        fresh.apply(op);
        lastTimestamp = op.timestamp;
      }
    }
    if (fresh.appliedId < head) {
      throw new Error(`operation log ends at ${fresh.appliedId} but the head says ${head}`);
    }
    await this.#watcher?.cancel().catch(() => undefined);
    this.state.replaceWith(fresh);
    this.#head = head;
    this.#snapshotId = snapshot?.meta.id ?? 0;
    this.#lastAppliedTimestamp = lastTimestamp;
    this.options.metrics.snapshotId.set(this.#snapshotId);
    this.#watcher = await this.store.watch(
      String(BigInt(revision) + 1n),
      (op) => this.#onWatchedOperation(op),
      (err) => void this.#resync(`operation watch failed: ${err.message}`),
    );
    this.#notifyWaiters();
  }

  #onWatchedOperation(op: Operation): void {
    this.#head = Math.max(this.#head, op.id);
    if (op.id <= this.state.appliedId) return;
    if (op.id !== this.state.appliedId + 1) {
      void this.#resync(`gap in the watched log: applied ${this.state.appliedId}, received ${op.id}`);
      return;
    }
    this.#apply(op);
  }

  #apply(op: Operation): AppliedEffect | undefined {
    const effect = this.state.apply(op);
    this.#head = Math.max(this.#head, op.id);
    this.#lastAppliedTimestamp = op.timestamp;
    this.#notifyWaiters();
    this.#updateGauges();
    return effect;
  }

  /** Re-runs recovery (gap, watch failure, compaction race); concurrent calls share one run. */
  #resync(reason: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#resyncing ??= (async () => {
      this.options.logger.warn({ reason }, "re-synchronising state from etcd");
      await this.#recover();
    })().finally(() => {
      this.#resyncing = undefined;
      this.#updateGauges();
    });
    return this.#resyncing;
  }

  async #onElected(): Promise<void> {
    this.options.metrics.leaderChanges.inc();
    try {
      // A new leader must hold every operation of the previous term before it appends. etcd may be slow
      // to answer (or the bulk client's circuit breaker open) for a few seconds: retried within 10 s
      // rather than resigning at once, which under load only hands the same trouble to another sentinel.
      const { head } = await this.#readHeadWithin(10_000);
      this.#head = Math.max(this.#head, head);
      await this.waitForApplied(head, 10_000);
      if (!this.election.isLeader) return;
      await this.#recordRingConfig();
      if (!this.election.isLeader) return;
      this.#leaderReady = true;
      this.#updateGauges();
      this.options.logger.info({ appliedId: this.state.appliedId }, "leading: caught up with the log");
      for (const listener of this.#leadershipListeners) listener(true);
    } catch (err) {
      this.options.logger.error(
        { err: err },
        "elected but could not catch up with the log (or record the ring configuration); resigning",
      );
      await this.election.stop().catch(() => undefined);
      if (!this.#stopped) await this.election.start().catch(() => undefined);
    }
  }

  async #readHeadWithin(deadlineMs: number): Promise<{ head: number; revision: string }> {
    const deadline = Date.now() + deadlineMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.readHead();
      } catch (err) {
        if (Date.now() >= deadline || !this.election.isLeader || this.#stopped) throw err;
        await sleep(Math.min(2_000, 250 * attempt));
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
    const fenceKey = this.election.fenceKey;
    if (this.state.ringConfig || !fenceKey) return;
    const op: Operation = {
      type: "configureRing",
      data: { virtualNodes: this.options.virtualNodes },
      id: this.state.appliedId + 1,
      timestamp: (this.options.now ?? Date.now)(),
      leaderId: this.options.id,
    };
    await this.store.appendBatch({
      fenceKey,
      expectedHead: this.state.appliedId,
      ops: [op],
      topics: { put: [], deleted: [] },
    });
    this.options.metrics.appended.inc({ type: op.type });
    this.options.logger.info(
      { opId: op.id, virtualNodes: op.data.virtualNodes },
      "recorded the ring configuration",
    );
    await this.waitForApplied(op.id, 10_000);
  }

  /** Warns (once per value) when the logged ring configuration overrides this sentinel's flag. */
  #checkRingConfig(): void {
    const logged = this.state.ringConfig?.virtualNodes;
    if (logged === undefined || logged === this.options.virtualNodes || logged === this.#ringWarnedFor)
      return;
    this.#ringWarnedFor = logged;
    this.options.logger.warn(
      { flag: this.options.virtualNodes, logged },
      `--virtual-nodes ${this.options.virtualNodes} differs from the value recorded in the operation log; ` +
        `building the hash ring with the logged ${logged} virtual nodes per broker so every sentinel agrees`,
    );
  }

  #onDeposed(reason: string): void {
    const wasLeader = this.#leaderReady;
    this.#leaderReady = false;
    this.options.metrics.leaderChanges.inc();
    this.#updateGauges();
    this.options.logger.warn({ reason }, "no longer leader");
    if (wasLeader) for (const listener of this.#leadershipListeners) listener(false);
  }

  #notifyWaiters(): void {
    if (this.#appliedWaiters.length === 0) return;
    const applied = this.state.appliedId;
    const due = this.#appliedWaiters.filter((w) => w.id <= applied);
    this.#appliedWaiters = this.#appliedWaiters.filter((w) => w.id > applied);
    for (const waiter of due) waiter.resolve();
  }

  #updateGauges(): void {
    this.#checkRingConfig();
    const m = this.options.metrics;
    const ring = this.ring;
    m.isLeader.set(this.isLeader ? 1 : 0);
    m.etcdUp.set(this.#etcdReachable ? 1 : 0);
    m.ready.set(this.ready ? 1 : 0);
    m.ringBrokers.set(ring.size);
    m.ringVirtualNodes.set(ring.virtualNodeCount);
    m.topics.set(this.state.topicCount());
    const brokers = this.state.brokers();
    m.brokers.set({ status: "healthy" }, brokers.filter((b) => b.status === "healthy").length);
    m.brokers.set({ status: "down" }, brokers.filter((b) => b.status === "down").length);
    m.oplogHeadId.set(this.head);
    m.oplogAppliedId.set(this.state.appliedId);
    const lag = this.head - this.state.appliedId;
    m.replayLagOps.set(lag);
    m.replayLagSeconds.set(
      lag > 0 && this.#lastAppliedTimestamp > 0
        ? Math.max(0, (Date.now() - this.#lastAppliedTimestamp) / 1000)
        : 0,
    );
  }
}

/** A short, log-friendly view of an operation's parameters. */
function summarise(op: Operation): Record<string, unknown> {
  switch (op.type) {
    case "generateTopicReplicas":
      return {
        topic: op.data.topic,
        partitions: op.data.partitions.length,
        replicaCount: op.data.replicaCount,
      };
    case "handleUnreachableBrokers":
      return { brokers: op.data.brokerIds, reason: op.data.reason, topicsMoved: op.data.changes.length };
    case "unregisterBroker":
      return { broker: op.data.brokerId, topicsMoved: op.data.changes.length };
    case "reassignPartitions":
      return { topicsMoved: op.data.changes.length };
    default:
      return op.data;
  }
}
