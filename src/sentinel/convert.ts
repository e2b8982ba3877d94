import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  BrokerInfoSchema,
  BrokerStatus,
  PartitionAssignmentSchema,
  TopicReplicaInfoSchema,
  type BrokerInfo,
  type PartitionAssignment,
  type TopicReplicaInfo,
} from "../gen/goulette/v1/common_pb.js";
import { OperationSchema, type Operation as OperationMessage } from "../gen/goulette/v1/sentinel_pb.js";
import type { Operation } from "../fsm/operations.js";
import type { BrokerRecord, ClusterState, TopicRecord } from "../fsm/state.js";
import {
  PartitionRole,
  ReplicaRefSchema,
  SetTopicRoleRequestSchema,
  type SetTopicRoleRequest,
} from "../gen/goulette/v1/broker_pb.js";
import { topicBrokers } from "../oplog/topic-info.js";
import { addressOn } from "../fsm/listeners.js";

/** State records → wire messages. */

export function brokerStatusOf(record: BrokerRecord | undefined): BrokerStatus {
  if (!record) return BrokerStatus.UNSPECIFIED;
  return record.status === "healthy" ? BrokerStatus.HEALTHY : BrokerStatus.DOWN;
}

/**
 * A broker as the wire shows it, with its address on `listener` ("": the default address); throws a
 * FailedPreconditionError when the broker has no such listener (see addressOn).
 */
export function toBrokerInfo(
  record: BrokerRecord,
  topics: string[],
  lastHeartbeat: number | undefined,
  listener = "",
): BrokerInfo {
  return create(BrokerInfoSchema, {
    brokerId: record.brokerId,
    address: addressOn(record, listener),
    status: brokerStatusOf(record),
    topics,
    lastHeartbeat: BigInt(lastHeartbeat ?? 0),
    listeners: record.listeners ?? [],
  });
}

export function toPartitionAssignments(record: TopicRecord): PartitionAssignment[] {
  return record.partitions.map((p) =>
    create(PartitionAssignmentSchema, {
      partition: p.partition,
      leader: p.replicas[0] ?? "",
      replicas: p.replicas,
      epoch: BigInt(p.epoch),
    }),
  );
}

export function toTopicReplicaInfo(record: TopicRecord): TopicReplicaInfo {
  return create(TopicReplicaInfoSchema, {
    topic: record.topic,
    brokers: topicBrokers(record),
    partitions: toPartitionAssignments(record),
    version: BigInt(record.version),
    timestamp: BigInt(record.timestamp),
    replicaCount: record.replicaCount,
  });
}

export function toOperationMessage(op: Operation): OperationMessage {
  return create(OperationSchema, {
    id: BigInt(op.id),
    type: op.type,
    timestamp: BigInt(op.timestamp),
    leaderId: op.leaderId,
    dataJson: JSON.stringify(op.data),
  });
}

interface BrokerRole {
  topic: string;
  partition: number;
  leads: boolean;
  epoch: number;
  /** Replica ids with their default addresses, the leader first. */
  replicas: { brokerId: string; address: string }[];
}

/** Every partition `brokerId` holds a replica of, in a deterministic order (topics sorted). */
function* rolesOf(state: ClusterState, brokerId: string): Generator<BrokerRole> {
  for (const topic of state.topicsOfBroker(brokerId)) {
    const record = state.topic(topic);
    for (const p of record?.partitions ?? []) {
      if (!p.replicas.includes(brokerId)) continue;
      yield {
        topic,
        partition: p.partition,
        leads: p.replicas[0] === brokerId,
        epoch: p.epoch,
        replicas: p.replicas.map((id) => ({ brokerId: id, address: state.broker(id)?.address ?? "" })),
      };
    }
  }
}

/** The roles of one broker: every partition it holds a replica of (what KeepAlive returns). */
export function assignmentsOf(state: ClusterState, brokerId: string): SetTopicRoleRequest[] {
  const out: SetTopicRoleRequest[] = [];
  for (const role of rolesOf(state, brokerId)) {
    const replicas = role.replicas.map((r) => create(ReplicaRefSchema, r));
    out.push(
      create(SetTopicRoleRequestSchema, {
        topic: role.topic,
        partition: role.partition,
        role: role.leads ? PartitionRole.LEADER : PartitionRole.FOLLOWER,
        leader: replicas[0],
        replicas,
        epoch: BigInt(role.epoch),
      }),
    );
  }
  return out;
}

/**
 * A digest of assignmentsOf(state, brokerId), computed without building the list: equal role lists give
 * equal digests on every sentinel, whatever operation ids or snapshots led there, so a broker holding
 * the list of one sentinel leader is answered "unchanged" by the next. The "v1." prefix names the
 * encoding: a sentinel hashing differently never matches, and answers the full list.
 */
export function assignmentsDigest(state: ClusterState, brokerId: string): string {
  const hash = createHash("sha256");
  for (const role of rolesOf(state, brokerId)) {
    const replicas = role.replicas.map((r) => `${r.brokerId}@${r.address}`).join(",");
    // Topic names and broker ids cannot hold tabs or newlines (validation), so the encoding is unambiguous.
    hash.update(`${role.topic}\t${role.partition}\t${role.leads ? "L" : "F"}\t${role.epoch}\t${replicas}\n`);
  }
  return `v1.${hash.digest("base64url").slice(0, 32)}`;
}
