import type { TopicRecord } from "../fsm/state.js";

/** The seed's TopicReplicaInfo as stored under <prefix>/topics/<topic> (snake_case, like the Go system). */
export interface StoredTopicReplicaInfo {
  topic: string;
  brokers: string[];
  partitions: { partition: number; leader: string; replicas: string[]; epoch: number }[];
  version: number;
  timestamp: number;
  replica_count: number;
}

export function toStoredTopicInfo(record: TopicRecord): StoredTopicReplicaInfo {
  return {
    topic: record.topic,
    brokers: topicBrokers(record),
    partitions: record.partitions.map((p) => ({
      partition: p.partition,
      leader: p.replicas[0] ?? "",
      replicas: p.replicas,
      epoch: p.epoch,
    })),
    version: record.version,
    timestamp: record.timestamp,
    replica_count: record.replicaCount,
  };
}

/** Every broker holding a replica of any partition, in first-seen order. */
export function topicBrokers(record: TopicRecord): string[] {
  return [...new Set(record.partitions.flatMap((p) => p.replicas))];
}
