import type { Command, TopicChange } from "./operations.js";

/**
 * How much one operation may change. The fenced append writes the operation and every topic key it
 * changes in one etcd transaction, and etcd refuses transactions over 128 operations or 1.5 MiB by
 * default: a broker holding replicas of hundreds of topics would make one reassignment too big to record.
 */
export interface OperationLimits {
  /** Topics one operation may change (each is one more put in the append's transaction). */
  maxTopics: number;
  /** Estimated bytes one operation may write (its encoding plus its topic keys). */
  maxBytes: number;
}

/** Leaves room in etcd's 128 operations per transaction for the head, the operation keys and a batch. */
export const DEFAULT_OPERATION_LIMITS: OperationLimits = { maxTopics: 100, maxBytes: 512 * 1024 };

/**
 * Splits a command that changes many topics into several, applied in order, each within `limits`.
 * The leading parts are plain `reassignPartitions`; the last part keeps the original type (and its
 * broker ids), so the brokers are marked down or removed only once every partition has moved off them.
 * Every prefix of the sequence is a valid state: partitions already moved, the others still on their
 * old replicas; if the leader dies midway, the brokers are still listed healthy and the next leader's
 * failure detection (or the client's retry) plans the rest again.
 *
 * `sizeOf` estimates the bytes a change writes (its part of the operation plus its topic key). A single
 * change larger than the limit still goes alone in its own operation.
 */
export function splitCommand(
  command: Command,
  limits: OperationLimits,
  sizeOf: (change: TopicChange) => number,
): Command[] {
  const changes = changesOf(command);
  if (!changes) return [command];
  const chunks = chunkChanges(changes, limits, sizeOf);
  if (chunks.length <= 1) return [command];
  const last = chunks.pop() as TopicChange[];
  const leading: Command[] = chunks.map((chunk) => ({
    type: "reassignPartitions",
    data: { changes: chunk },
  }));
  return [...leading, withChanges(command, last)];
}

/** Consecutive groups of changes, each within the limits (a too-big single change forms its own group). */
export function chunkChanges(
  changes: readonly TopicChange[],
  limits: OperationLimits,
  sizeOf: (change: TopicChange) => number,
): TopicChange[][] {
  const chunks: TopicChange[][] = [];
  let current: TopicChange[] = [];
  let bytes = 0;
  for (const change of changes) {
    const size = sizeOf(change);
    if (current.length > 0 && (current.length >= limits.maxTopics || bytes + size > limits.maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(change);
    bytes += size;
  }
  if (current.length > 0 || chunks.length === 0) chunks.push(current);
  return chunks;
}

function changesOf(command: Command): TopicChange[] | undefined {
  switch (command.type) {
    case "unregisterBroker":
    case "handleUnreachableBrokers":
    case "reassignPartitions":
      return command.data.changes;
    default:
      return undefined;
  }
}

function withChanges(command: Command, changes: TopicChange[]): Command {
  switch (command.type) {
    case "unregisterBroker":
      return { type: command.type, data: { ...command.data, changes } };
    case "handleUnreachableBrokers":
      return { type: command.type, data: { ...command.data, changes } };
    case "reassignPartitions":
      return { type: command.type, data: { changes } };
    default:
      return command;
  }
}
