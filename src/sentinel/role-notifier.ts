import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { TransportPool, toBaseUrl, type TransportPoolOptions } from "../server/transport-pool.js";
import {
  BrokerService,
  PartitionRole,
  ReplicaRefSchema,
  SetTopicRoleRequestSchema,
} from "../gen/goulette/v1/broker_pb.js";
import type { ClusterState, TopicRecord } from "../fsm/state.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../observability/logger.js";

export interface RoleNotifierOptions {
  state: ClusterState;
  logger: Logger;
  /** Deadline of one SetTopicRole/RemoveTopic call (ms). */
  timeoutMs?: number;
  transport?: (baseUrl: string) => Transport;
  /** Extra headers (auth). */
  headers?: Record<string, string>;
  /** TLS (CA, client certificate) and the scheme of broker host:port addresses. */
  transportOptions?: TransportPoolOptions;
}

/**
 * After the leader changes an assignment it tells the brokers involved (DESIGN §6): SetTopicRole to
 * every replica of a changed partition, RemoveTopic (best effort) to brokers that lost one. Failures are
 * logged, not retried here: brokers also reconcile their roles through GetBrokers.
 */
export class RoleNotifier {
  readonly #clients = new Map<string, Client<typeof BrokerService>>();
  readonly #pool: TransportPool;

  constructor(private readonly options: RoleNotifierOptions) {
    this.#pool = new TransportPool(options.transportOptions);
  }

  notify(topic: string, before: TopicRecord | undefined): void {
    const after = this.options.state.topic(topic);
    const calls: Promise<void>[] = [];
    for (const partition of after?.partitions ?? []) {
      const previous = before?.partitions.find((p) => p.partition === partition.partition);
      if (previous && previous.epoch === partition.epoch) continue;
      const replicas = partition.replicas.flatMap((id) => {
        const broker = this.options.state.broker(id);
        return broker ? [create(ReplicaRefSchema, { brokerId: id, address: broker.address })] : [];
      });
      const leader = replicas[0];
      for (const replica of replicas) {
        const request = create(SetTopicRoleRequestSchema, {
          topic,
          partition: partition.partition,
          role: replica === leader ? PartitionRole.LEADER : PartitionRole.FOLLOWER,
          leader,
          replicas,
          epoch: BigInt(partition.epoch),
        });
        calls.push(
          this.#call(replica.address, `SetTopicRole ${topic}#${partition.partition}`, (c, o) =>
            c.setTopicRole(request, o),
          ),
        );
      }
      for (const gone of previous?.replicas.filter((id) => !partition.replicas.includes(id)) ?? []) {
        const address = this.options.state.broker(gone)?.address;
        if (address && this.options.state.broker(gone)?.status === "healthy") {
          calls.push(
            this.#call(address, `RemoveTopic ${topic}#${partition.partition}`, (c, o) =>
              c.removeTopic({ topic, partition: partition.partition, deleteData: false }, o),
            ),
          );
        }
      }
    }
    if (!after && before) {
      for (const id of new Set(before.partitions.flatMap((p) => p.replicas))) {
        const address = this.options.state.broker(id)?.address;
        if (address)
          calls.push(
            this.#call(address, `RemoveTopic ${topic}`, (c, o) =>
              c.removeTopic({ topic, deleteData: true }, o),
            ),
          );
      }
    }
    void Promise.all(calls);
  }

  async #call(
    address: string,
    what: string,
    call: (
      client: Client<typeof BrokerService>,
      options: { timeoutMs: number; headers?: Record<string, string> },
    ) => Promise<unknown>,
  ): Promise<void> {
    try {
      await call(this.#client(address), {
        timeoutMs: this.options.timeoutMs ?? 2_000,
        ...(this.options.headers ? { headers: this.options.headers } : {}),
      });
    } catch (err) {
      this.options.logger.debug(
        { broker: address, err: errorMessage(err) },
        `could not send ${what}; the broker will reconcile`,
      );
    }
  }

  close(): void {
    this.#pool.close();
    this.#clients.clear();
  }

  #client(address: string): Client<typeof BrokerService> {
    let client = this.#clients.get(address);
    if (!client) {
      const url = toBaseUrl(address, this.#pool.scheme);
      client = createClient(BrokerService, this.options.transport?.(url) ?? this.#pool.get(url));
      this.#clients.set(address, client);
    }
    return client;
  }
}
