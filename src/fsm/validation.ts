import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";

/** Longest topic name accepted (keeps etcd keys and broker directory names reasonable). */
export const MAX_TOPIC_NAME_LENGTH = 200;
export const MAX_PARTITIONS = 1024;
export const MAX_REPLICA_COUNT = 16;
const TOPIC_NAME = /^[A-Za-z0-9._-]+$/;
const BROKER_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Topic names become etcd keys and directory names: letters, digits, '.', '_', '-' only. */
export function validateTopicName(topic: string): void {
  if (topic === "") throw new InvalidArgumentError("topic name is empty");
  if (topic.length > MAX_TOPIC_NAME_LENGTH) {
    throw new InvalidArgumentError(
      `topic name is ${topic.length} characters long; the limit is ${MAX_TOPIC_NAME_LENGTH}`,
    );
  }
  if (topic === "." || topic === "..") throw new InvalidArgumentError(`topic name '${topic}' is reserved`);
  if (!TOPIC_NAME.test(topic)) {
    const bad = [...topic].find((ch) => !/[A-Za-z0-9._-]/.test(ch)) ?? "";
    throw new InvalidArgumentError(
      `topic name ${JSON.stringify(topic.slice(0, 80))} contains ${JSON.stringify(bad)}; ` +
        "use only letters, digits, '.', '_' and '-'",
    );
  }
}

export function validateBrokerId(brokerId: string): void {
  if (brokerId === "") throw new InvalidArgumentError("broker_id is empty");
  if (!BROKER_ID.test(brokerId)) {
    throw new InvalidArgumentError(
      `broker_id ${JSON.stringify(brokerId.slice(0, 80))} is invalid: use 1-128 letters, digits, '.', '_' or '-'`,
    );
  }
}

/** host:port with a port in range; the host may be a name, IPv4 or [IPv6]. */
export function validateAddress(address: string): void {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`address ${JSON.stringify(address.slice(0, 100))} is not host:port`);
  }
}

/** Replicas of a new topic whose request leaves replica_count 0: 3, or fewer healthy brokers (at least 1). */
export const DEFAULT_REPLICA_COUNT = 3;

/** replica_count as requested, or the default for 0 (what the proto promises). */
export function replicaCountOrDefault(requested: number, healthyBrokers: number): number {
  return requested === 0 ? Math.max(1, Math.min(DEFAULT_REPLICA_COUNT, healthyBrokers)) : requested;
}

/** Checks a new topic's shape against the brokers that can host it. */
export function validateTopicShape(
  topic: string,
  partitions: number,
  replicaCount: number,
  healthyBrokers: number,
): void {
  if (replicaCount < 1) {
    throw new InvalidArgumentError(
      `replica_count must be at least 1 to create topic '${topic}', got ${replicaCount}`,
    );
  }
  if (replicaCount > MAX_REPLICA_COUNT) {
    throw new InvalidArgumentError(`replica_count must be at most ${MAX_REPLICA_COUNT}, got ${replicaCount}`);
  }
  if (partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new InvalidArgumentError(`partitions must be between 1 and ${MAX_PARTITIONS}, got ${partitions}`);
  }
  if (replicaCount > healthyBrokers) {
    throw new FailedPreconditionError(
      `replica_count ${replicaCount} for topic '${topic}' exceeds the ${healthyBrokers} healthy broker(s) in the cluster`,
    );
  }
}
