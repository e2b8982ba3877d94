import { NotLeaderError } from "../errors.js";
import type { ClusterState, StateSnapshot } from "../fsm/state.js";
import type { Logger } from "../observability/logger.js";
import type { SentinelMetrics } from "../observability/metrics.js";
import type { OperationLog } from "../oplog/operation-log.js";
import type { WriteLoop } from "./write-loop.js";

export interface SnapshotResult {
  snapshotId: number;
  compacted: number;
  size: number;
}

export interface SnapshotKeeperOptions {
  state: ClusterState;
  log: Pick<OperationLog, "writeSnapshot">;
  writes: Pick<WriteLoop, "barrier">;
  /** The leader's fence; undefined when this sentinel does not lead. */
  fence: () => string | undefined;
  /** A snapshot is taken every this many operations (the leader's, `afterCommit`). */
  every: number;
  metrics: SentinelMetrics;
  logger: Logger;
}

/**
 * The leader's snapshots (raft's FSMSnapshot): the state is captured inside a barrier of the write loop,
 * between two transactions, so it equals the log at its id; it is persisted after the barrier (raft's
 * Persist), so proposals go on while the snapshot is written and the log it covers compacted. Snapshots
 * are persisted one after the other in the order they were captured: an older one never replaces a
 * newer one.
 */
export class SnapshotKeeper {
  readonly #options: SnapshotKeeperOptions;
  #snapshotId = 0;
  #persisting: Promise<unknown> = Promise.resolve();
  #periodicPending = false;

  constructor(options: SnapshotKeeperOptions) {
    this.#options = options;
  }

  /** The id of the newest snapshot known to be in the log. */
  get snapshotId(): number {
    return this.#snapshotId;
  }

  /** After a recovery: the snapshot the log holds now. */
  recovered(snapshotId: number): void {
    this.#snapshotId = snapshotId;
    this.#options.metrics.snapshotId.set(snapshotId);
  }

  /** Captures the state at the next barrier and persists it; leader only (NotLeaderError otherwise). */
  async snapshotNow(): Promise<SnapshotResult> {
    const { persisted } = await this.#options.writes.barrier(() => {
      const fenceKey = this.#options.fence();
      if (!fenceKey) throw new NotLeaderError();
      const captured = this.#options.state.snapshot();
      // Chained at capture, so snapshots are persisted in the order they were taken.
      const persisted = this.#persisting.then(() => this.#persist(captured, fenceKey));
      this.#persisting = persisted.catch(() => undefined);
      return { persisted };
    });
    return persisted;
  }

  /** Takes a snapshot in the background when `every` operations were applied since the last one. */
  afterCommit(): void {
    if (this.#periodicPending) return;
    if (this.#options.state.appliedId - this.#snapshotId < this.#options.every) return;
    this.#periodicPending = true;
    this.snapshotNow()
      .catch((err: unknown) =>
        this.#options.logger.warn(
          { err: err },
          "periodic snapshot failed; will retry after the next operation",
        ),
      )
      .finally(() => (this.#periodicPending = false));
  }

  async #persist(captured: StateSnapshot, fenceKey: string): Promise<SnapshotResult> {
    const { meta, compacted } = await this.#options.log.writeSnapshot(captured, fenceKey, Date.now());
    this.#snapshotId = Math.max(this.#snapshotId, meta.id);
    this.#options.metrics.snapshots.inc();
    this.#options.metrics.snapshotId.set(this.#snapshotId);
    this.#options.logger.info(
      { snapshotId: meta.id, bytes: meta.size, compacted },
      "wrote snapshot and compacted the log",
    );
    return { snapshotId: meta.id, compacted, size: meta.size };
  }
}
