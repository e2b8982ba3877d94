import { UnavailableError } from "../errors.js";
import type { Operation } from "../fsm/operations.js";
import type { StateSnapshot, TopicRecord } from "../fsm/state.js";

/**
 * What the control plane needs of its operation log (raft's LogStore + SnapshotStore in one): the
 * etcd implementation is `OplogStore`; tests use an in-memory twin (test/helpers/memory-control-plane.ts).
 * Revisions are opaque strings: `readHead` and a replay at its revision, then `watch` from the next
 * one, see every operation exactly once.
 */
export interface OperationLog {
  /** The newest operation id (0 when the log is empty) and the revision it was read at. */
  readHead(options?: { timeoutMs?: number }): Promise<{ head: number; revision: string }>;
  /**
   * Appends consecutive operations (ids expectedHead + 1, + 2, …) and the topic records they change in
   * one transaction that only commits while `fenceKey` is held and the head is still `expectedHead`.
   * Throws NotLeaderError when the fence is gone, HeadMovedError when another write moved the head.
   */
  appendBatch(input: AppendBatchInput): Promise<void>;
  /** Operations with id > afterId in pages, all read at `revision` (default: now). */
  readAfter(afterId: number, options?: { pageSize?: number; revision?: string }): AsyncIterable<Operation[]>;
  /** Operations with id > afterId, at most `limit` (for ListOperations). */
  list(afterId: number, limit: number): Promise<Operation[]>;
  /** Calls `onOperation` for every operation appended from `startRevision` on, in order. */
  watch(
    startRevision: string,
    onOperation: (op: Operation) => void,
    onError: (err: Error) => void,
  ): Promise<LogWatch>;
  readSnapshotMeta(): Promise<SnapshotMeta | undefined>;
  /** The newest snapshot, verified; undefined when none was written. */
  readSnapshot(): Promise<{ meta: SnapshotMeta; state: StateSnapshot } | undefined>;
  /**
   * Stores `state` as the newest snapshot and, fenced by `fenceKey`, deletes the operations it covers.
   * Returns how many it deleted.
   */
  writeSnapshot(
    state: StateSnapshot,
    fenceKey: string,
    now: number,
  ): Promise<{ meta: SnapshotMeta; compacted: number }>;
}

export interface LogWatch {
  cancel(): Promise<void>;
}

export interface SnapshotMeta {
  id: number;
  chunks: number;
  sha256: string;
  size: number;
  createdAt: number;
}

export interface AppendBatchInput {
  /** The key whose existence proves this sentinel still leads (its election key). */
  fenceKey: string;
  /** The head this leader believes is current; the append fails if another write moved it. */
  expectedHead: number;
  /** Numbered operations, expectedHead + 1 onwards, without gaps. */
  ops: Operation[];
  /** Final values of the topic keys the operations change, each topic at most once. */
  topics: { put: TopicRecord[]; deleted: string[] };
}

export class HeadMovedError extends UnavailableError {
  constructor(expected: number) {
    super(`operation log head moved past ${expected} while appending; retry after catching up`);
  }
}

/** Checks that a batch's ids follow `expectedHead` without gaps (a bug in the caller otherwise). */
export function checkBatchIds(input: AppendBatchInput): void {
  input.ops.forEach((op, i) => {
    if (op.id !== input.expectedHead + 1 + i) {
      throw new Error(`batch operation ${i} has id ${op.id}, expected ${input.expectedHead + 1 + i}`);
    }
  });
}
