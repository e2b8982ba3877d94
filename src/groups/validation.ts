import { InvalidArgumentError } from "../errors.js";
import { MAX_PARTITIONS, validateTopicName } from "../fsm/validation.js";

export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
export const MIN_SESSION_TIMEOUT_MS = 2_000;
export const MAX_SESSION_TIMEOUT_MS = 300_000;
export const MAX_GROUP_NAME_LENGTH = 255;
export const MAX_TOPICS_PER_MEMBER = 100;
export const MAX_OWNED_PARTITIONS = 10_000;
const NAME = /^[A-Za-z0-9._-]+$/;

/** Group names and instance ids become etcd keys: letters, digits, '.', '_', '-'. */
function validateName(what: string, value: string): void {
  if (value === "") throw new InvalidArgumentError(`${what} is empty`);
  if (value.length > MAX_GROUP_NAME_LENGTH) {
    throw new InvalidArgumentError(
      `${what} is ${value.length} characters long; the limit is ${MAX_GROUP_NAME_LENGTH}`,
    );
  }
  if (value === "." || value === "..") throw new InvalidArgumentError(`${what} '${value}' is reserved`);
  if (!NAME.test(value)) {
    const bad = [...value].find((ch) => !/[A-Za-z0-9._-]/.test(ch)) ?? "";
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(value.slice(0, 80))} contains ${JSON.stringify(bad)}; ` +
        "use only letters, digits, '.', '_' and '-'",
    );
  }
}

export function validateGroupName(group: string): void {
  validateName("group name", group);
}

export function validateInstanceId(instanceId: string): void {
  validateName("instance_id", instanceId);
}

export function validateMemberId(memberId: string): void {
  validateName("member_id", memberId);
}

/** 0 = the default; otherwise within [2 s, 300 s]. */
export function sessionTimeoutOf(requested: number): number {
  if (requested === 0) return DEFAULT_SESSION_TIMEOUT_MS;
  if (requested < MIN_SESSION_TIMEOUT_MS || requested > MAX_SESSION_TIMEOUT_MS) {
    throw new InvalidArgumentError(
      `session_timeout_ms must be between ${MIN_SESSION_TIMEOUT_MS} and ${MAX_SESSION_TIMEOUT_MS}, got ${requested}`,
    );
  }
  return requested;
}

/** The subscription: valid topic names, sorted, without duplicates. */
export function subscriptionOf(topics: readonly string[]): string[] {
  if (topics.length === 0) throw new InvalidArgumentError("a member must subscribe to at least one topic");
  const unique = [...new Set(topics)].sort();
  if (unique.length > MAX_TOPICS_PER_MEMBER) {
    throw new InvalidArgumentError(
      `a member subscribes to at most ${MAX_TOPICS_PER_MEMBER} topics, got ${unique.length}`,
    );
  }
  for (const topic of unique) validateTopicName(topic);
  return unique;
}

export function validateOwned(owned: readonly { topic: string; partition: number }[]): void {
  if (owned.length > MAX_OWNED_PARTITIONS) {
    throw new InvalidArgumentError(
      `owned lists ${owned.length} partitions; the limit is ${MAX_OWNED_PARTITIONS}`,
    );
  }
  for (const { topic, partition } of owned) {
    validateTopicName(topic);
    if (partition >= MAX_PARTITIONS) {
      throw new InvalidArgumentError(
        `partition ${partition} of ${topic} is out of range (< ${MAX_PARTITIONS})`,
      );
    }
  }
}

export function validateClientId(clientId: string): void {
  const control = [...clientId].some((ch) => ch.charCodeAt(0) < 0x20);
  if (clientId.length > MAX_GROUP_NAME_LENGTH || control) {
    throw new InvalidArgumentError(`client_id must be at most ${MAX_GROUP_NAME_LENGTH} printable characters`);
  }
}
