import type { Client } from "@connectrpc/connect";
import type { TopicReplicaInfo } from "../gen/goulette/v1/common_pb.js";
import type {
  CreateSnapshotResponse,
  GetBrokersResponse,
  GetClusterStatusResponse,
  ListOperationsResponse,
  ListTopicsResponse,
  SentinelService,
} from "../gen/goulette/v1/sentinel_pb.js";
import { InvalidArgumentError } from "../errors.js";
import { ClientClosedError } from "./errors.js";
import { emitter, sentinelList, type CommonClientOptions } from "./events.js";
import { SentinelPool, type SentinelCallOptions } from "./sentinel-pool.js";
import type { ClientTransport } from "./transport.js";

export interface AdminOptions extends CommonClientOptions {
  /** How to reach the sentinels (the Node and web entry points supply one). */
  transport: ClientTransport;
  /** Close `transport` when the admin client closes (default false: the caller owns it). */
  ownsTransport?: boolean;
}

/** Cluster administration through the SentinelService (any sentinel; writes reach the leader). */
export class Admin {
  readonly #options: AdminOptions;
  readonly #sentinels: SentinelPool;
  #closed = false;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#sentinels = new SentinelPool({
      urls: sentinelList(options.sentinels),
      transport: options.transport,
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      timeoutMs: options.sentinelTimeoutMs ?? 5_000,
      emit: emitter(options.onEvent),
    });
  }

  /** Leader, sentinels, ring, operation log and brokers, as the answering sentinel sees them. */
  clusterStatus(options: { signal?: AbortSignal } = {}): Promise<GetClusterStatusResponse> {
    return this.#call((c, o) => c.getClusterStatus({}, o), options.signal);
  }

  /** One page of topic assignments (name order); pass `nextAfter` as `after` for the next page. */
  listTopics(
    options: { prefix?: string; limit?: number; after?: string; signal?: AbortSignal } = {},
  ): Promise<ListTopicsResponse> {
    return this.#call(
      (c, o) =>
        c.listTopics(
          { prefix: options.prefix ?? "", limit: options.limit ?? 0, after: options.after ?? "" },
          o,
        ),
      options.signal,
    );
  }

  /** Every topic (all pages). */
  async allTopics(options: { prefix?: string; signal?: AbortSignal } = {}): Promise<TopicReplicaInfo[]> {
    const topics: TopicReplicaInfo[] = [];
    let after = "";
    do {
      const page = await this.listTopics({ ...options, after, limit: 1000 });
      topics.push(...page.topics);
      after = page.nextAfter;
    } while (after !== "");
    return topics;
  }

  /** A topic's assignment, or undefined when it does not exist (never creates it). */
  async describeTopic(
    topic: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<TopicReplicaInfo | undefined> {
    const page = await this.listTopics({ prefix: topic, limit: 1, signal: options.signal });
    const first = page.topics[0];
    return first?.topic === topic ? first : undefined;
  }

  /**
   * Creates a topic with this shape (GetBrokers on a new topic), or returns the existing assignment
   * unchanged (the shape only applies on creation).
   */
  createTopic(
    topic: string,
    shape: { partitions?: number; replicas?: number; signal?: AbortSignal } = {},
  ): Promise<GetBrokersResponse> {
    if (!topic) return Promise.reject(new InvalidArgumentError("topic name is empty"));
    return this.#call(
      (c, o) =>
        c.getBrokers({ topic, partitions: shape.partitions ?? 0, replicaCount: shape.replicas ?? 0 }, o),
      shape.signal,
    );
  }

  /** One page of the operation log after `afterId`; pass `nextAfterId` on for the next page. */
  listOperations(
    options: { afterId?: number | bigint; limit?: number; signal?: AbortSignal } = {},
  ): Promise<ListOperationsResponse> {
    return this.#call(
      (c, o) => c.listOperations({ afterId: BigInt(options.afterId ?? 0), limit: options.limit ?? 0 }, o),
      options.signal,
    );
  }

  /** Makes the leader write a snapshot now and compact the operations it covers. */
  createSnapshot(options: { signal?: AbortSignal } = {}): Promise<CreateSnapshotResponse> {
    return this.#call((c, o) => c.createSnapshot({}, o), options.signal);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#options.ownsTransport) this.#options.transport.close();
    }
    return Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #call<T>(
    fn: (client: Client<typeof SentinelService>, options: SentinelCallOptions) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new ClientClosedError("the admin client"));
    return this.#sentinels.call(fn, signal ?? this.#options.signal);
  }
}
