import { createHash } from "node:crypto";
import { AclSet, type AclEntry } from "./acl.js";
import type { ListenerAddress } from "./listeners.js";
import type { Operation, PartitionPlacement, TopicChange } from "./operations.js";

export type BrokerHealth = "healthy" | "down";

export interface BrokerRecord {
  brokerId: string;
  /** The default (internal) address: sentinels and other brokers dial it. */
  address: string;
  /** Its other listeners, sorted by name; absent when it has none (older snapshots and digests unchanged). */
  listeners?: ListenerAddress[];
  /**
   * The process start-up id it last registered with (absent for brokers that predate it, so older
   * snapshots and digests are unchanged). A registration with another one is a restart.
   */
  incarnation?: string;
  status: BrokerHealth;
  /** Id of the operation that last changed this broker. */
  version: number;
}

export interface PartitionRecord {
  partition: number;
  /** replicas[0] leads; empty when no broker can host the partition. */
  replicas: string[];
  /** Bumped whenever the replica list changes; brokers ignore roles with an older epoch. */
  epoch: number;
}

export interface TopicRecord {
  topic: string;
  replicaCount: number;
  partitions: PartitionRecord[];
  /** Id of the operation that last changed this topic. */
  version: number;
  /** Timestamp of that operation (Unix ms). */
  timestamp: number;
}

/** The serialisable state at one operation id (what a snapshot holds). */
export interface StateSnapshot {
  format: 1;
  appliedId: number;
  brokers: BrokerRecord[];
  topics: TopicRecord[];
  /**
   * The recorded hash-ring configuration (configureRing). Absent until one is recorded, so snapshots and
   * digests of older logs are unchanged and older sentinels can still read the snapshot.
   */
  ring?: RingConfig;
  /** The topic ACLs, sorted; absent when there are none (older snapshots and digests unchanged). */
  acls?: AclEntry[];
}

/** The hash ring's shape as recorded in the log. */
export interface RingConfig {
  virtualNodes: number;
}

/** What one applied operation changed: the sentinel uses it to tell brokers their roles. */
export interface AppliedEffect {
  changedTopics: string[];
  changedBrokers: string[];
}

/**
 * The control plane's state machine: brokers, ring membership and topic assignments. It changes only
 * through apply(), which is deterministic (no clock, no randomness, no I/O), so every sentinel that
 * applied the same operations holds the same state.
 */
export class ClusterState {
  #appliedId = 0;
  readonly #brokers = new Map<string, BrokerRecord>();
  readonly #topics = new Map<string, TopicRecord>();
  /** Derived index: broker id → topics it holds a replica of. */
  readonly #topicsByBroker = new Map<string, Set<string>>();
  #ring: RingConfig | undefined;
  #acls: AclSet = AclSet.EMPTY;
  /**
   * digest() of the state as it is now, until the next change: it hashes the whole snapshot (milliseconds
   * at a thousand topics), and GetClusterStatus, which every client may call, reports it.
   */
  #digest: string | undefined;

  get appliedId(): number {
    return this.#appliedId;
  }

  /** The recorded ring configuration, or undefined when the log has none yet (each sentinel uses its flag). */
  get ringConfig(): RingConfig | undefined {
    return this.#ring;
  }

  /** The topic ACLs (putAcl, deleteAcl): an immutable set, replaced on each change. */
  get acls(): AclSet {
    return this.#acls;
  }

  broker(brokerId: string): BrokerRecord | undefined {
    return this.#brokers.get(brokerId);
  }

  brokers(): BrokerRecord[] {
    return [...this.#brokers.values()].sort((a, b) => compare(a.brokerId, b.brokerId));
  }

  /** Brokers in the hash ring: every registered broker, healthy or down (down ones are skipped by placement). */
  ringMembers(): string[] {
    return [...this.#brokers.keys()].sort(compare);
  }

  healthyBrokerIds(): string[] {
    return this.brokers()
      .filter((b) => b.status === "healthy")
      .map((b) => b.brokerId);
  }

  topic(name: string): TopicRecord | undefined {
    return this.#topics.get(name);
  }

  topicCount(): number {
    return this.#topics.size;
  }

  /** Topic names, sorted. */
  topicNames(): string[] {
    return [...this.#topics.keys()].sort(compare);
  }

  topicsOfBroker(brokerId: string): string[] {
    return [...(this.#topicsByBroker.get(brokerId) ?? [])].sort(compare);
  }

  /**
   * Applies one committed operation. Operations at or below the applied id are skipped (replay and
   * watch may overlap); the caller guarantees there is no gap. Invalid references (an unknown broker)
   * are ignored deterministically rather than thrown, so one bad entry cannot wedge every sentinel.
   */
  apply(op: Operation): AppliedEffect | undefined {
    if (op.id <= this.#appliedId) return undefined;
    this.#digest = undefined;
    const effect: AppliedEffect = { changedTopics: [], changedBrokers: [] };
    switch (op.type) {
      case "registerBroker":
      case "addBrokerToHashRing": {
        const { brokerId, address, listeners } = op.data;
        // An operation without one (a heartbeat bringing the broker back) keeps the one recorded.
        const incarnation = op.data.incarnation ?? this.#brokers.get(brokerId)?.incarnation;
        this.#brokers.set(brokerId, {
          brokerId,
          address,
          ...(listeners && listeners.length > 0
            ? { listeners: listeners.map((l) => ({ name: l.name, address: l.address })) }
            : {}),
          ...(incarnation !== undefined ? { incarnation } : {}),
          status: "healthy",
          version: op.id,
        });
        effect.changedBrokers.push(brokerId);
        break;
      }
      case "unregisterBroker": {
        this.#applyChanges(op, op.data.changes, effect);
        // The index entry stays: if the changes left the broker on a partition, the index must say so
        // exactly as an index rebuilt from a snapshot would.
        this.#brokers.delete(op.data.brokerId);
        effect.changedBrokers.push(op.data.brokerId);
        break;
      }
      case "generateTopicReplicas": {
        const { topic } = op.data;
        if (!this.#topics.has(topic)) {
          const record = newTopicRecord(op);
          this.#topics.set(topic, record);
          this.#index(record, +1);
          effect.changedTopics.push(topic);
        }
        break;
      }
      case "handleUnreachableBrokers": {
        for (const brokerId of op.data.brokerIds) {
          const broker = this.#brokers.get(brokerId);
          if (broker) {
            this.#brokers.set(brokerId, { ...broker, status: "down", version: op.id });
            effect.changedBrokers.push(brokerId);
          }
        }
        this.#applyChanges(op, op.data.changes, effect);
        break;
      }
      case "reassignPartitions":
        this.#applyChanges(op, op.data.changes, effect);
        break;
      case "deleteTopic": {
        const record = this.#topics.get(op.data.topic);
        if (record) {
          this.#index(record, -1);
          this.#topics.delete(op.data.topic);
          effect.changedTopics.push(op.data.topic);
        }
        break;
      }
      case "configureRing":
        // Placements already made stay as recorded; only later planning sees the new ring.
        this.#ring = { virtualNodes: op.data.virtualNodes };
        break;
      case "putAcl":
        this.#acls = this.#acls.with({ ...op.data, permissions: [...op.data.permissions] });
        break;
      case "deleteAcl":
        // Deleting a missing entry is refused before it is logged; replayed, it changes nothing.
        this.#acls = this.#acls.without(op.data.principal, op.data.resource);
        break;
    }
    this.#appliedId = op.id;
    return effect;
  }

  #applyChanges(op: Operation, changes: TopicChange[], effect: AppliedEffect): void {
    for (const change of changes) {
      const record = this.#topics.get(change.topic);
      if (!record) continue;
      this.#index(record, -1);
      const updated = withPlacements(record, change.partitions, op);
      this.#topics.set(change.topic, updated);
      this.#index(updated, +1);
      effect.changedTopics.push(change.topic);
    }
  }

  #index(record: TopicRecord, direction: 1 | -1): void {
    const brokers = new Set(record.partitions.flatMap((p) => p.replicas));
    for (const brokerId of brokers) {
      let topics = this.#topicsByBroker.get(brokerId);
      if (direction > 0) {
        if (!topics) this.#topicsByBroker.set(brokerId, (topics = new Set()));
        topics.add(record.topic);
      } else {
        topics?.delete(record.topic);
      }
    }
  }

  /** The whole state, canonical (sorted) so equal states serialise identically. */
  snapshot(): StateSnapshot {
    return {
      format: 1,
      appliedId: this.#appliedId,
      brokers: this.brokers().map(copyBroker),
      topics: this.topicNames().map((name) => structuredClone(this.#topics.get(name) as TopicRecord)),
      ...(this.#ring ? { ring: { ...this.#ring } } : {}),
      ...(this.#acls.size > 0 ? { acls: this.#acls.entries().map((e) => structuredClone(e)) } : {}),
    };
  }

  /**
   * Replaces the whole state in one step. `owned` says the caller hands the snapshot over (e.g. freshly
   * parsed JSON) so it is adopted without a copy.
   */
  restore(snapshot: StateSnapshot, options: { owned?: boolean } = {}): void {
    if (snapshot.format !== 1) throw new Error(`unsupported snapshot format ${String(snapshot.format)}`);
    this.#digest = undefined;
    this.#brokers.clear();
    this.#topics.clear();
    this.#topicsByBroker.clear();
    for (const broker of snapshot.brokers)
      this.#brokers.set(broker.brokerId, options.owned ? broker : copyBroker(broker));
    for (const topic of snapshot.topics) {
      const record = options.owned ? topic : structuredClone(topic);
      this.#topics.set(topic.topic, record);
      this.#index(record, +1);
    }
    this.#ring = snapshot.ring ? { virtualNodes: snapshot.ring.virtualNodes } : undefined;
    this.#acls = snapshot.acls ? new AclSet(snapshot.acls.map((e) => structuredClone(e))) : AclSet.EMPTY;
    this.#appliedId = snapshot.appliedId;
  }

  /** Takes over another state's contents (recovery builds a fresh state, then swaps it in at once). */
  replaceWith(other: ClusterState): void {
    this.#digest = undefined;
    this.#brokers.clear();
    this.#topics.clear();
    this.#topicsByBroker.clear();
    for (const [k, v] of other.#brokers) this.#brokers.set(k, v);
    for (const [k, v] of other.#topics) this.#topics.set(k, v);
    for (const [k, v] of other.#topicsByBroker) this.#topicsByBroker.set(k, v);
    this.#ring = other.#ring;
    this.#acls = other.#acls;
    this.#appliedId = other.#appliedId;
  }

  /** Hex SHA-256 of the canonical snapshot: equal on sentinels holding the same state. */
  digest(): string {
    this.#digest ??= createHash("sha256").update(JSON.stringify(this.snapshot())).digest("hex");
    return this.#digest;
  }
}

/** A topic record with some partitions' replica lists replaced; epochs bump where the list changed. */
export function withPlacements(
  record: TopicRecord,
  placements: PartitionPlacement[],
  op: Operation,
): TopicRecord {
  const partitions = record.partitions.map((p) => {
    const placement = placements.find((c) => c.partition === p.partition);
    if (!placement || sameList(placement.replicas, p.replicas)) return p;
    return { partition: p.partition, replicas: [...placement.replicas], epoch: p.epoch + 1 };
  });
  return { ...record, partitions, version: op.id, timestamp: op.timestamp };
}

/** The record a generateTopicReplicas operation creates: every partition at epoch 1, as the leader placed it. */
export function newTopicRecord(op: Extract<Operation, { type: "generateTopicReplicas" }>): TopicRecord {
  return {
    topic: op.data.topic,
    replicaCount: op.data.replicaCount,
    partitions: op.data.partitions.map((p) => ({
      partition: p.partition,
      replicas: [...p.replicas],
      epoch: 1,
    })),
    version: op.id,
    timestamp: op.timestamp,
  };
}

/** The topic records an operation creates or changes, computed without applying it (for etcd's materialised view). */
export function projectTopics(state: ClusterState, op: Operation): { put: TopicRecord[]; deleted: string[] } {
  switch (op.type) {
    case "generateTopicReplicas":
      if (state.topic(op.data.topic)) return { put: [], deleted: [] }; // apply keeps the existing topic
      return { put: [newTopicRecord(op)], deleted: [] };
    case "unregisterBroker":
    case "handleUnreachableBrokers":
    case "reassignPartitions":
      return {
        put: op.data.changes.flatMap((change) => {
          const record = state.topic(change.topic);
          return record ? [withPlacements(record, change.partitions, op)] : [];
        }),
        deleted: [],
      };
    case "deleteTopic":
      return { put: [], deleted: [op.data.topic] };
    default:
      return { put: [], deleted: [] };
  }
}

/** A copy of a broker record that shares nothing with it (its key order kept: digests hash the JSON). */
function copyBroker(b: BrokerRecord): BrokerRecord {
  return b.listeners ? { ...b, listeners: b.listeners.map((l) => ({ ...l })) } : { ...b };
}

export function leaderOf(partition: PartitionRecord | PartitionPlacement): string | undefined {
  return partition.replicas[0];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

/** Locale-independent string order (sorting must not depend on the machine). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
