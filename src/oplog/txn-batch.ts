import { encodeOperation, type Operation } from "../fsm/operations.js";
import type { TopicRecord } from "../fsm/state.js";
import { toStoredTopicInfo } from "./topic-info.js";

/** What one etcd transaction may hold (etcd's defaults: 128 operations, 1.5 MiB per request). */
export interface TxnLimits {
  /** Puts and deletes in one transaction, the head included. */
  maxOps: number;
  /** Estimated bytes of the values written. */
  maxBytes: number;
}

export const DEFAULT_TXN_LIMITS: TxnLimits = { maxOps: 120, maxBytes: 1024 * 1024 };

export interface TopicWrites {
  put: TopicRecord[];
  deleted: string[];
}

/** What adding one operation to a batch costs. */
export interface OperationCost {
  /** Writes it adds: its own key plus topic keys not yet in the batch. */
  writes: number;
  bytes: number;
}

/**
 * The operations of one group-commit transaction: each is its own key, and every topic key is
 * written once, with the value after the last operation that changes it.
 */
export class TxnBatch {
  readonly ops: Operation[] = [];
  readonly #topics = new Map<string, TopicRecord | undefined>();
  #writes = 1; // the head
  #bytes = 0;

  constructor(private readonly limits: TxnLimits) {}

  get size(): number {
    return this.ops.length;
  }

  cost(op: Operation, topics: TopicWrites): OperationCost {
    let writes = 1;
    let bytes = encodeOperation(op).length;
    for (const record of topics.put) {
      if (!this.#topics.has(record.topic)) writes++;
      bytes += JSON.stringify(toStoredTopicInfo(record)).length;
    }
    for (const topic of topics.deleted) if (!this.#topics.has(topic)) writes++;
    return { writes, bytes };
  }

  /** Whether an operation of this cost still fits; an empty batch takes anything (etcd judges it alone). */
  fits(cost: OperationCost): boolean {
    if (this.ops.length === 0) return true;
    return (
      this.#writes + cost.writes <= this.limits.maxOps && this.#bytes + cost.bytes <= this.limits.maxBytes
    );
  }

  add(op: Operation, topics: TopicWrites, cost: OperationCost): void {
    this.ops.push(op);
    this.#writes += cost.writes;
    this.#bytes += cost.bytes;
    for (const record of topics.put) this.#topics.set(record.topic, record);
    for (const topic of topics.deleted) this.#topics.set(topic, undefined);
  }

  /** The final value of every topic key the batch changes. */
  topicWrites(): TopicWrites {
    const put: TopicRecord[] = [];
    const deleted: string[] = [];
    for (const [topic, record] of this.#topics) {
      if (record) put.push(record);
      else deleted.push(topic);
    }
    return { put, deleted };
  }
}
