/**
 * The operation log's entries: a typed envelope around a discriminated union of commands. Operations
 * carry their results (the replica lists the leader chose), so replaying a log gives the same state
 * even if placement code changes between versions.
 */

/** One partition's replica list as decided by the leader; replicas[0] leads. */
export interface PartitionPlacement {
  partition: number;
  replicas: string[];
}

/** New replica lists for some partitions of one topic. */
export interface TopicChange {
  topic: string;
  partitions: PartitionPlacement[];
}

/** Why brokers were taken out of placement. */
export type UnreachableReason =
  "client-report" | "heartbeat-expired" | "pod-not-ready" | "pod-deleted" | "pod-evicted" | "pod-failed";

export type Command =
  /** A broker joins (or re-joins with a new address): recorded and added to the hash ring. */
  | { type: "registerBroker"; data: { brokerId: string; address: string } }
  /** A broker that was down is healthy again: back in the ring for new placements. */
  | { type: "addBrokerToHashRing"; data: { brokerId: string; address: string } }
  /** A broker leaves for good: removed from the ring; its replicas move (changes). */
  | { type: "unregisterBroker"; data: { brokerId: string; changes: TopicChange[] } }
  /** A topic is assigned for the first time. */
  | {
      type: "generateTopicReplicas";
      data: { topic: string; replicaCount: number; partitions: PartitionPlacement[] };
    }
  /** Brokers confirmed down: marked down, their replicas moved (changes). */
  | {
      type: "handleUnreachableBrokers";
      data: { brokerIds: string[]; reason: UnreachableReason; changes: TopicChange[] };
    }
  /** Under-replicated partitions get replicas again (e.g. after a broker came back). */
  | { type: "reassignPartitions"; data: { changes: TopicChange[] } }
  | { type: "deleteTopic"; data: { topic: string } };

export type CommandType = Command["type"];

export const COMMAND_TYPES: readonly CommandType[] = [
  "registerBroker",
  "addBrokerToHashRing",
  "unregisterBroker",
  "generateTopicReplicas",
  "handleUnreachableBrokers",
  "reassignPartitions",
  "deleteTopic",
];

/** A committed log entry. The timestamp travels inside the entry so apply never reads a clock. */
export type Operation = Command & {
  /** Position in the log: 1, 2, 3… without gaps. */
  id: number;
  /** Unix milliseconds when the leader appended it. */
  timestamp: number;
  /** The sentinel that appended it. */
  leaderId: string;
};

export function encodeOperation(op: Operation): string {
  return JSON.stringify({
    id: op.id,
    type: op.type,
    timestamp: op.timestamp,
    leaderId: op.leaderId,
    data: op.data,
  });
}

/** Parses a stored operation; throws with the offending text on anything malformed. */
export function decodeOperation(text: string): Operation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`operation is not JSON: ${text.slice(0, 200)}`);
  }
  if (
    typeof value !== "object" ||
    value === null ||
    typeof (value as { id?: unknown }).id !== "number" ||
    !COMMAND_TYPES.includes((value as { type?: unknown }).type as CommandType) ||
    typeof (value as { data?: unknown }).data !== "object"
  ) {
    throw new Error(`operation has an unknown shape: ${text.slice(0, 200)}`);
  }
  return value as Operation;
}
