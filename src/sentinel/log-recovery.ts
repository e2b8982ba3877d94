import { ClusterState } from "../fsm/state.js";
import type { OperationLog } from "../oplog/operation-log.js";

/** A state rebuilt from the log, and where in the log it stands. */
export interface RecoveredLog {
  state: ClusterState;
  head: number;
  /** The revision the replay read at: a watch from the next one misses nothing and repeats nothing. */
  revision: string;
  snapshotId: number;
  /** Timestamp of the last replayed operation (0 when the replay applied none). */
  lastTimestamp: number;
}

/**
 * Rebuilds the state from the log: the newest snapshot, then every operation after it, read in pages
 * at the head's revision. Throws on a gap (the log was compacted underneath the replay) or when the log
 * ends before the head; the caller retries.
 */
export async function recoverFromLog(log: OperationLog): Promise<RecoveredLog> {
  const snapshot = await log.readSnapshot();
  const state = new ClusterState();
  if (snapshot) state.restore(snapshot.state, { owned: true });
  const { head, revision } = await log.readHead();
  let lastTimestamp = 0;
  for await (const page of log.readAfter(state.appliedId, { revision })) {
    for (const op of page) {
      if (op.id !== state.appliedId + 1) {
        throw new Error(
          `operation log gap: expected ${state.appliedId + 1}, found ${op.id} (compacted meanwhile?)`,
        );
      }
      state.apply(op);
      lastTimestamp = op.timestamp;
    }
  }
  if (state.appliedId < head) {
    throw new Error(`operation log ends at ${state.appliedId} but the head says ${head}`);
  }
  return { state, head, revision, snapshotId: snapshot?.meta.id ?? 0, lastTimestamp };
}
