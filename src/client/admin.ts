import type { Client } from "@connectrpc/connect";
import type { TopicReplicaInfo } from "../gen/goulette/v1/common_pb.js";
import type { GroupSummary } from "../gen/goulette/v1/group_pb.js";
import type {
  AclEntry,
  CreateSnapshotResponse,
  DeleteAclResponse,
  GetBrokersResponse,
  GetClusterStatusResponse,
  ListAclsResponse,
  ListOperationsResponse,
  ListTopicsResponse,
  PutAclResponse,
  SentinelService,
  UnregisterBrokerResponse,
} from "../gen/goulette/v1/sentinel_pb.js";
import { bearerHeaders } from "../common/bearer.js";
import { InvalidArgumentError } from "../errors.js";
import { ClientClosedError } from "./errors.js";
import { emitter, sentinelList, type CommonClientOptions } from "./events.js";
import {
  GroupAdmin,
  type DeleteOffsetsOptions,
  type GroupDescription,
  type OffsetDeletion,
  type OffsetReset,
  type ResetOffsetsOptions,
} from "./group-admin.js";
import { PartitionLeaders, type PartitionLeadersOptions } from "./partition-leaders.js";
import { deleteRecords, type DeleteRecordsOptions, type RecordsDeletion } from "./records-admin.js";
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
  readonly #groups: GroupAdmin;
  readonly #leaders: PartitionLeaders;
  #closed = false;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#sentinels = new SentinelPool({
      urls: sentinelList(options.sentinels),
      transport: options.transport,
      headers: bearerHeaders(options.token),
      timeoutMs: options.sentinelTimeoutMs ?? 5_000,
      listener: options.listener,
      emit: emitter(options.onEvent),
    });
    const leaders: PartitionLeadersOptions = {
      sentinels: (fn, signal) => this.#call(fn, signal),
      transport: options.transport,
      headers: bearerHeaders(options.token),
      listener: this.#sentinels.listener,
    };
    this.#groups = new GroupAdmin(leaders);
    this.#leaders = new PartitionLeaders(leaders);
  }

  /**
   * Leader, sentinels, ring, operation log and brokers, as the answering sentinel sees them (the
   * brokers' addresses on the client's listener).
   */
  clusterStatus(options: { signal?: AbortSignal } = {}): Promise<GetClusterStatusResponse> {
    return this.#call(
      (c, o) => c.getClusterStatus({ listener: this.#sentinels.listener }, o),
      options.signal,
    );
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

  /**
   * Removes a broker for good (after a scale-down): the leader moves its replicas elsewhere. Resolves
   * with the operation that did it.
   */
  unregisterBroker(
    brokerId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<UnregisterBrokerResponse> {
    if (!brokerId) return Promise.reject(new InvalidArgumentError("broker id is empty"));
    return this.#call((c, o) => c.unregisterBroker({ brokerId }, o), options.signal);
  }

  /** Makes the leader write a snapshot now and compact the operations it covers. */
  createSnapshot(options: { signal?: AbortSignal } = {}): Promise<CreateSnapshotResponse> {
    return this.#call((c, o) => c.createSnapshot({}, o), options.signal);
  }

  /**
   * Grants an application (`app:<name>`) or every application (`*`) `read` and/or `write` on a topic or
   * a prefix (`orders.*`), replacing what the same principal and topic had; brokers apply it within a
   * KeepAlive interval. Bad names or permissions are InvalidArgumentError; nothing is recorded then.
   */
  putAcl(
    acl: { principal: string; resource: string; permissions: readonly string[] },
    options: { signal?: AbortSignal } = {},
  ): Promise<PutAclResponse> {
    return this.#call(
      (c, o) => c.putAcl({ acl: { ...acl, permissions: [...acl.permissions] } }, o),
      options.signal,
    );
  }

  /** Deletes the entry of this principal and topic (NotFoundError when there is none). */
  deleteAcl(
    principal: string,
    resource: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<DeleteAclResponse> {
    return this.#call((c, o) => c.deleteAcl({ principal, resource }, o), options.signal);
  }

  /** The cluster's ACL entries (of one principal when given), sorted by principal and topic. */
  async listAcls(options: { principal?: string; signal?: AbortSignal } = {}): Promise<AclEntry[]> {
    const res: ListAclsResponse = await this.#call(
      (c, o) => c.listAcls({ principal: options.principal ?? "" }, o),
      options.signal,
    );
    return res.acls;
  }

  /** Consumer groups (name order): state, members, generation, topics, partitions. */
  listGroups(options: { prefix?: string; signal?: AbortSignal } = {}): Promise<GroupSummary[]> {
    return this.#guard(() => this.#groups.listGroups(this.#withSignal(options)));
  }

  /**
   * A group's members and, per partition of its topics, the committed offset, log range and lag (each
   * partition leader is asked; a leader that fails gives that partition an `error`). The topics are
   * the members' subscriptions, or `topics` (needed for a group without live members). An unknown
   * group is an empty description, not an error.
   */
  describeGroup(
    group: string,
    options: { topics?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<GroupDescription> {
    return this.#guard(() => this.#groups.describeGroup(group, this.#withSignal(options)));
  }

  /**
   * Commits new offsets for a group on a topic's partitions (member epoch 0) and returns them with the
   * previous ones. Refused (FailedPreconditionError) while the group has live members; an offset
   * outside a partition's [log start, high watermark] is an InvalidArgumentError and nothing is set.
   */
  resetOffsets(options: ResetOffsetsOptions): Promise<OffsetReset[]> {
    return this.#guard(() => this.#groups.resetOffsets(this.#withSignal(options)));
  }

  /** Forgets a group's committed offsets on a topic's partitions; refused while it has live members. */
  deleteOffsets(options: DeleteOffsetsOptions): Promise<OffsetDeletion[]> {
    return this.#guard(() => this.#groups.deleteOffsets(this.#withSignal(options)));
  }

  /**
   * Deletes a topic's records below `before` (default: each partition's high watermark, i.e. every
   * acknowledged record) on each partition's leader, and returns each partition's new log start.
   * Reads below it fail from then on; followers delete the same records from their next replication
   * answer. A partition that fails is named in the error, with how many others were done anyway.
   */
  deleteRecords(options: DeleteRecordsOptions): Promise<RecordsDeletion[]> {
    return this.#guard(() => deleteRecords(this.#leaders, this.#withSignal(options)));
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

  #guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ClientClosedError("the admin client"));
    return fn();
  }

  /** The call's signal, else the client's. */
  #withSignal<O extends { signal?: AbortSignal }>(options: O): O {
    const signal = options.signal ?? this.#options.signal;
    return signal ? { ...options, signal } : options;
  }

  #call<T>(
    fn: (client: Client<typeof SentinelService>, options: SentinelCallOptions) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new ClientClosedError("the admin client"));
    return this.#sentinels.call(fn, signal ?? this.#options.signal);
  }
}
