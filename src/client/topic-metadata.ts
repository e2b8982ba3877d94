import type { GetBrokersResponse } from "../gen/goulette/v1/sentinel_pb.js";
import type { DefaultReplicaCount } from "./default-replicas.js";
import type { ClientEvent } from "./events.js";
import type { SentinelPool } from "./sentinel-pool.js";

/** Where one partition lives now. */
export interface PartitionLocation {
  partition: number;
  /** Leader broker id ("" when the partition has none). */
  leaderId: string;
  /** The leader's host:port ("" when unknown). */
  address: string;
  replicas: readonly string[];
  epoch: bigint;
}

/** The shape a client asks for when its GetBrokers creates a topic (ignored for existing topics). */
export interface TopicShape {
  /** Partitions (default: the sentinel's default, --default-partitions). */
  partitions?: number;
  /** Replicas per partition (default: 3, or the number of healthy brokers when fewer). */
  replicas?: number;
}

/** A topic's assignment, as one GetBrokers answer gave it. */
export interface TopicAssignment {
  topic: string;
  /** Id of the operation that last changed the assignment. */
  version: bigint;
  /** Indexed by partition number. */
  partitions: readonly PartitionLocation[];
}

export interface TopicMetadataOptions {
  topic: string;
  sentinels: SentinelPool;
  /** The shape of the topic if a GetBrokers of this client creates it. */
  shape: TopicShape | undefined;
  /** replica_count when the shape names none, shared by the client's topics. */
  defaultReplicas: DefaultReplicaCount;
  emit: (event: ClientEvent) => void;
}

/**
 * The client's view of one topic's assignment, from GetBrokers. `refresh(unreachable)` is the seed's
 * failure flow: the brokers the client could not reach go in `unreachable_brokers`, the sentinel leader
 * verifies them and answers with the new assignment. Concurrent refreshes share one request; a refresh
 * asked for while one runs (with brokers the running one does not report) follows it.
 */
export class TopicMetadata {
  readonly topic: string;
  #current: TopicAssignment | undefined;
  #running: { reported: Set<string>; promise: Promise<TopicAssignment> } | undefined;
  #queued: { reported: Set<string>; promise: Promise<TopicAssignment> } | undefined;
  #reports = 0;
  #replicas: number | undefined;

  constructor(private readonly options: TopicMetadataOptions) {
    this.topic = options.topic;
  }

  /** The newest assignment known, if any. */
  get current(): TopicAssignment | undefined {
    return this.#current;
  }

  /** True while a GetBrokers request for this topic is on its way. */
  get refreshing(): boolean {
    return this.#running !== undefined;
  }

  /** How many GetBrokers requests reported brokers unreachable. */
  get unreachableReports(): number {
    return this.#reports;
  }

  /** The known assignment, or the first one (creating the topic if it is new). */
  async get(signal?: AbortSignal): Promise<TopicAssignment> {
    return this.#current ?? this.refresh([], signal);
  }

  /** Asks the sentinels again, reporting `unreachable` broker ids. */
  refresh(unreachable: readonly string[] = [], signal?: AbortSignal): Promise<TopicAssignment> {
    const running = this.#running;
    if (running === undefined) return this.#start(new Set(unreachable), signal);
    if (unreachable.every((id) => running.reported.has(id))) return running.promise;
    if (this.#queued) {
      for (const id of unreachable) this.#queued.reported.add(id);
      return this.#queued.promise;
    }
    const reported = new Set(unreachable);
    const queued = {
      reported,
      promise: running.promise
        .catch(() => undefined)
        .then(() => {
          this.#queued = undefined;
          return this.#start(reported, signal);
        }),
    };
    this.#queued = queued;
    return queued.promise;
  }

  #start(reported: Set<string>, signal: AbortSignal | undefined): Promise<TopicAssignment> {
    const entry = {
      reported,
      promise: this.#request([...reported], signal).finally(() => {
        if (this.#running === entry) this.#running = undefined;
      }),
    };
    this.#running = entry;
    return entry.promise;
  }

  async #request(unreachable: string[], signal: AbortSignal | undefined): Promise<TopicAssignment> {
    if (unreachable.length > 0) this.#reports++;
    const replicaCount = await this.#replicaCount(signal);
    const res = await this.options.sentinels.call(
      (client, callOptions) =>
        client.getBrokers(
          {
            topic: this.topic,
            partitions: this.options.shape?.partitions ?? 0,
            replicaCount,
            unreachableBrokers: unreachable,
            listener: this.options.sentinels.listener,
          },
          callOptions,
        ),
      signal,
    );
    const assignment = toAssignment(this.topic, res);
    const previous = this.#current;
    // An answer older than the one held (a lagging sentinel) does not replace it.
    if (previous === undefined || assignment.version >= previous.version) this.#current = assignment;
    const current = this.#current as TopicAssignment;
    if (previous === undefined || current.version !== previous.version || unreachable.length > 0) {
      this.options.emit({
        type: "assignment",
        topic: this.topic,
        version: current.version,
        leaders: current.partitions.map((p) => p.leaderId),
        reported: unreachable,
      });
    }
    return current;
  }
  /**
   * replica_count for GetBrokers: the configured one, else the client's default (3, or fewer when fewer
   * brokers are healthy). Only matters when the topic is new, so it is settled before the first assignment.
   */
  async #replicaCount(signal: AbortSignal | undefined): Promise<number> {
    const configured = this.options.shape?.replicas;
    if (configured !== undefined) return configured;
    if (this.#replicas !== undefined || this.#current !== undefined) return this.#replicas ?? 0;
    this.#replicas = await this.options.defaultReplicas.get(signal);
    return this.#replicas;
  }
}

function toAssignment(topic: string, res: GetBrokersResponse): TopicAssignment {
  const addresses = new Map(res.brokers.map((b) => [b.brokerId, b.address]));
  const partitions: PartitionLocation[] = [];
  for (const p of res.partitions) {
    partitions[p.partition] = {
      partition: p.partition,
      leaderId: p.leader,
      address: addresses.get(p.leader) ?? "",
      replicas: [...p.replicas],
      epoch: p.epoch,
    };
  }
  // Fill holes so `partitions.length` is the partition count and every index is defined.
  for (let i = 0; i < partitions.length; i++) {
    partitions[i] ??= { partition: i, leaderId: "", address: "", replicas: [], epoch: 0n };
  }
  return { topic, version: res.version, partitions };
}
