import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  PartitionRole,
  ReplicaRefSchema,
  SetTopicRoleRequestSchema,
  type BrokerService,
  type SetTopicRoleRequest,
} from "../gen/goulette/v1/broker_pb.js";
import type { ClusterState, TopicRecord } from "../fsm/state.js";

export type BrokerClient = Client<typeof BrokerService>;
export type CallOptions = { timeoutMs: number; headers?: Record<string, string> };

/** One pending call to one broker; a newer message with the same key replaces it. */
export interface Message {
  /** `topic#partition` (role or removal of one partition) or `topic` (the whole topic removed). */
  key: string;
  topic: string;
  what: string;
  /** Set for a role: it may join the broker's next SetTopicRoles call. */
  role?: SetTopicRoleRequest;
  /** The call on its own (a role's SetTopicRole, for brokers without SetTopicRoles). */
  send: (client: BrokerClient, options: CallOptions) => Promise<unknown>;
}

/** A message for the broker at `address`; `dropsTopic`: it removes the whole topic, so its pending per-partition messages are moot. */
export interface AddressedMessage {
  address: string;
  message: Message;
  dropsTopic?: boolean;
}

/**
 * What the brokers must be told after `topic` changed from `before` to its current record: its role to
 * every replica of a partition whose epoch moved, RemoveTopic (keeping data) to healthy brokers that
 * lost a partition, and RemoveTopic (deleting data) to every replica of a deleted topic. Pure.
 */
export function roleMessages(
  state: ClusterState,
  topic: string,
  before: TopicRecord | undefined,
): AddressedMessage[] {
  const out: AddressedMessage[] = [];
  const after = state.topic(topic);
  for (const partition of after?.partitions ?? []) {
    const previous = before?.partitions.find((p) => p.partition === partition.partition);
    if (previous && previous.epoch === partition.epoch) continue;
    const replicas = partition.replicas.flatMap((id) => {
      const broker = state.broker(id);
      return broker ? [create(ReplicaRefSchema, { brokerId: id, address: broker.address })] : [];
    });
    const leader = replicas[0];
    const key = `${topic}#${partition.partition}`;
    for (const replica of replicas) {
      const request = create(SetTopicRoleRequestSchema, {
        topic,
        partition: partition.partition,
        role: replica === leader ? PartitionRole.LEADER : PartitionRole.FOLLOWER,
        leader,
        replicas,
        epoch: BigInt(partition.epoch),
      });
      out.push({
        address: replica.address,
        message: {
          key,
          topic,
          what: `role ${key}`,
          role: request,
          send: (c, o) => c.setTopicRole(request, o),
        },
      });
    }
    for (const gone of previous?.replicas.filter((id) => !partition.replicas.includes(id)) ?? []) {
      const broker = state.broker(gone);
      if (broker?.status !== "healthy") continue;
      out.push({
        address: broker.address,
        message: {
          key,
          topic,
          what: `RemoveTopic ${key}`,
          send: (c, o) => c.removeTopic({ topic, partition: partition.partition, deleteData: false }, o),
        },
      });
    }
  }
  if (!after && before) {
    for (const id of new Set(before.partitions.flatMap((p) => p.replicas))) {
      const address = state.broker(id)?.address;
      if (!address) continue;
      out.push({
        address,
        dropsTopic: true,
        message: {
          key: topic,
          topic,
          what: `RemoveTopic ${topic}`,
          send: (c, o) => c.removeTopic({ topic, deleteData: true }, o),
        },
      });
    }
  }
  return out;
}
