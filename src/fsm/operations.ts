/**
 * The operation log's entries: a typed envelope around a discriminated union of commands. Operations
 * carry their results (the replica lists the leader chose), so replaying a log gives the same state
 * even if placement code changes between versions.
 */

import { MAX_VIRTUAL_NODES } from "../ring/hash-ring.js";
import { canonicalAclEntry, canonicalAclPrincipal, validateAclResource, type AclEntry } from "./acl.js";
import type { ListenerAddress } from "./listeners.js";

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

/**
 * A broker's addresses: the default one, and its other listeners sorted by name (absent when it has
 * none, so logs written before listeners existed read and digest as before).
 */
export type BrokerAddresses = {
  brokerId: string;
  address: string;
  listeners?: ListenerAddress[];
  /**
   * The broker process's start-up id (absent from brokers that predate it). A new one from a broker the
   * state holds as healthy means it restarted: see BrokerRecord.incarnation.
   */
  incarnation?: string;
};

export type Command =
  /** A broker joins (or re-joins with new addresses): recorded and added to the hash ring. */
  | { type: "registerBroker"; data: BrokerAddresses }
  /** A broker that was down is healthy again: back in the ring for new placements. */
  | { type: "addBrokerToHashRing"; data: BrokerAddresses }
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
  | { type: "deleteTopic"; data: { topic: string } }
  /**
   * The hash ring's shape, recorded once (by the first leader whose log has none) so every sentinel
   * builds the same ring whatever its --virtual-nodes flag says. Changing it later is not supported.
   */
  | { type: "configureRing"; data: { virtualNodes: number } }
  /** An application's (or every application's) permissions on a topic or prefix, replacing earlier ones. */
  | { type: "putAcl"; data: AclEntry }
  | { type: "deleteAcl"; data: { principal: string; resource: string } };

export type CommandType = Command["type"];

export const COMMAND_TYPES: readonly CommandType[] = [
  "registerBroker",
  "addBrokerToHashRing",
  "unregisterBroker",
  "generateTopicReplicas",
  "handleUnreachableBrokers",
  "reassignPartitions",
  "deleteTopic",
  "configureRing",
  "putAcl",
  "deleteAcl",
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
  const problem = shapeProblem(value);
  if (problem) throw new Error(`operation is malformed (${problem}): ${text.slice(0, 200)}`);
  return value as Operation;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string";
const isPlacementList = (v: unknown): boolean =>
  Array.isArray(v) &&
  v.every(
    (p) =>
      isObject(p) && Number.isInteger(p.partition) && Array.isArray(p.replicas) && p.replicas.every(isString),
  );
const isListenerList = (v: unknown): boolean =>
  v === undefined ||
  (Array.isArray(v) && v.every((l) => isObject(l) && isString(l.name) && isString(l.address)));
const isChangeList = (v: unknown): boolean =>
  Array.isArray(v) && v.every((c) => isObject(c) && isString(c.topic) && isPlacementList(c.partitions));

/** Why a parsed value is not an Operation, or undefined when it is one. Apply relies on these shapes. */
function shapeProblem(value: unknown): string | undefined {
  if (!isObject(value)) return "not an object";
  if (!Number.isSafeInteger(value.id) || (value.id as number) < 1) return "id must be a positive integer";
  if (typeof value.timestamp !== "number") return "timestamp must be a number";
  if (!isString(value.leaderId)) return "leaderId must be a string";
  if (!COMMAND_TYPES.includes(value.type as CommandType)) return `unknown type ${JSON.stringify(value.type)}`;
  const d = value.data;
  if (!isObject(d)) return "data must be an object";
  switch (value.type as CommandType) {
    case "registerBroker":
    case "addBrokerToHashRing":
      if (!isString(d.brokerId) || !isString(d.address)) return "data needs brokerId and address";
      if (d.incarnation !== undefined && !isString(d.incarnation)) return "incarnation must be a string";
      return isListenerList(d.listeners) ? undefined : "listeners must be a list of {name, address}";
    case "unregisterBroker":
      return isString(d.brokerId) && isChangeList(d.changes) ? undefined : "data needs brokerId and changes";
    case "generateTopicReplicas":
      return isString(d.topic) && Number.isInteger(d.replicaCount) && isPlacementList(d.partitions)
        ? undefined
        : "data needs topic, replicaCount and partitions";
    case "handleUnreachableBrokers":
      return Array.isArray(d.brokerIds) &&
        d.brokerIds.every(isString) &&
        isString(d.reason) &&
        isChangeList(d.changes)
        ? undefined
        : "data needs brokerIds, reason and changes";
    case "reassignPartitions":
      return isChangeList(d.changes) ? undefined : "data needs changes";
    case "deleteTopic":
      return isString(d.topic) ? undefined : "data needs topic";
    case "configureRing":
      return Number.isInteger(d.virtualNodes) &&
        (d.virtualNodes as number) >= 1 &&
        (d.virtualNodes as number) <= MAX_VIRTUAL_NODES
        ? undefined
        : `data needs virtualNodes, an integer in [1, ${MAX_VIRTUAL_NODES}]`;
    case "putAcl":
      return aclProblem(() => {
        const canonical = canonicalAclEntry({
          principal: String(d.principal),
          resource: String(d.resource),
          permissions: Array.isArray(d.permissions) ? d.permissions.map(String) : [],
        });
        // Apply keeps the entry as logged: it must already be canonical.
        return JSON.stringify(canonical) === JSON.stringify(d) ? undefined : "the entry is not canonical";
      });
    case "deleteAcl":
      return aclProblem(() => {
        if (!isString(d.principal) || !isString(d.resource)) return "data needs principal and resource";
        validateAclResource(d.resource);
        return canonicalAclPrincipal(d.principal) === d.principal ? undefined : "principal is not canonical";
      });
  }
}

function aclProblem(check: () => string | undefined): string | undefined {
  try {
    return check();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
