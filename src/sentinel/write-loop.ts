import { NotLeaderError } from "../errors.js";
import type { Command, Operation, TopicChange } from "../fsm/operations.js";
import { splitCommand, type OperationLimits } from "../fsm/split.js";
import { projectTopics, type AppliedEffect, type ClusterState, type TopicRecord } from "../fsm/state.js";
import type { OperationLog } from "../oplog/operation-log.js";
import { toStoredTopicInfo } from "../oplog/topic-info.js";
import { TxnBatch, type TxnLimits } from "../oplog/txn-batch.js";

/** One of the leader's operations, applied, with what it changed and the changed topics' old records. */
export interface AppliedOperation {
  op: Operation;
  effect: AppliedEffect;
  before: Map<string, TopicRecord | undefined>;
}

export interface WriteLoopOptions {
  /** The leader's state: proposals are planned against it and applied to it as they are batched. */
  state: ClusterState;
  log: Pick<OperationLog, "appendBatch">;
  /** The fence of this leader's appends; undefined when it does not lead (or is not caught up yet). */
  fence: () => string | undefined;
  /** Recorded in every operation. */
  leaderId: string;
  now: () => number;
  txnLimits: TxnLimits;
  operationLimits: OperationLimits;
  /** Starts timing one append; the returned function stops the timer. */
  timeAppend: () => () => void;
  /** A transaction committed: its operations, in order. */
  onCommitted: (applied: AppliedOperation[]) => void;
  /**
   * A transaction failed: its callers got the error, and the state holds operations the log did not
   * take, so it must be rebuilt from the log. The loop waits for this before it plans anything else.
   */
  onAppendFailed: (err: unknown, operations: number) => Promise<void>;
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

interface BarrierJob {
  kind: "barrier";
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * The leader's write path (group commit): proposals queue while a transaction is in flight and the next
 * transaction takes them all, within the per-transaction bounds. Each plan runs against the state with
 * every operation before it applied, so the leader applies its operations as it plans them, ahead of the
 * log by at most the batch in flight. A command changing more topics than one operation may is split
 * into operations appended back to back (nothing interleaves). Barriers run alone, between batches, on
 * a state that equals the log's.
 */
export class WriteLoop {
  readonly #options: WriteLoopOptions;
  /** Writes waiting, in order. */
  #jobs: (ProposeJob | BarrierJob)[] = [];
  #pumping = false;
  /** Settles when the transaction in flight is committed or dropped (undefined: none in flight). */
  #inFlight: Promise<void> | undefined;

  constructor(options: WriteLoopOptions) {
    this.#options = options;
  }

  /** Resolves with the command's (last) operation once committed; undefined when the plan had nothing to do. */
  propose(plan: () => Command | undefined): Promise<Operation | undefined> {
    return new Promise((resolve, reject) => {
      this.#jobs.push({ kind: "propose", plan, parts: undefined, last: undefined, resolve, reject });
      this.#kick();
    });
  }

  /** Runs `run` once every earlier proposal is committed and before any later one is planned. */
  barrier<T>(run: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push({ kind: "barrier", run, resolve: resolve as (value: unknown) => void, reject });
      this.#kick();
    });
  }

  /** Resolves once the transaction in flight (if any) is committed or dropped. */
  committed(): Promise<void> {
    return this.#inFlight ?? Promise.resolve();
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

  async #pump(): Promise<void> {
    for (let job = this.#jobs[0]; job; job = this.#jobs[0]) {
      if (job.kind === "barrier") {
        this.#jobs.shift();
        await Promise.resolve().then(job.run).then(job.resolve, job.reject);
        continue;
      }
      await this.#commitBatch();
    }
  }

  /** Plans, applies and commits the proposals at the head of the queue, as many as one transaction holds. */
  async #commitBatch(): Promise<void> {
    const { state } = this.#options;
    const fenceKey = this.#options.fence();
    const expectedHead = state.appliedId;
    const batch = new TxnBatch(this.#options.txnLimits);
    const applied: AppliedOperation[] = [];
    const done: { job: ProposeJob; op: Operation | undefined }[] = [];
    const timestamp = this.#options.now();
    fill: for (let job = this.#jobs[0]; job?.kind === "propose"; job = this.#jobs[0]) {
      if (job.parts === undefined) {
        let command: Command | undefined;
        try {
          if (!fenceKey) throw new NotLeaderError();
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
          id: state.appliedId + 1,
          timestamp,
          leaderId: this.#options.leaderId,
        } as Operation;
        const topics = projectTopics(state, op);
        const cost = batch.cost(op, topics);
        if (!batch.fits(cost)) break fill;
        const before = new Map<string, TopicRecord | undefined>();
        for (const t of [...topics.put.map((r) => r.topic), ...topics.deleted]) before.set(t, state.topic(t));
        const effect = state.apply(op) ?? { changedTopics: [], changedBrokers: [] };
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
    const end = this.#options.timeAppend();
    let settle = () => {};
    // Reads wait for this (committed()): the state holds the batch before the log does.
    this.#inFlight = new Promise<void>((resolve) => (settle = resolve));
    try {
      try {
        await this.#options.log.appendBatch({
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
        await this.#options.onAppendFailed(err, batch.size).catch(() => undefined);
        return;
      }
      end();
      this.#options.onCommitted(applied);
      for (const { job, op } of done) job.resolve(op);
    } finally {
      this.#inFlight = undefined;
      settle();
    }
  }

  #split(command: Command): Command[] {
    const { state } = this.#options;
    const sizeOf = (change: TopicChange) => {
      const record = state.topic(change.topic);
      return JSON.stringify(change).length + (record ? JSON.stringify(toStoredTopicInfo(record)).length : 0);
    };
    return splitCommand(command, this.#options.operationLimits, sizeOf);
  }
}
