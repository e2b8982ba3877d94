import { createClient } from "@connectrpc/connect";
import { BrokerService, type PartitionProgress, type PartitionRef } from "../gen/goulette/v1/broker_pb.js";
import { TransportPool, type TransportPoolOptions } from "../server/transport-pool.js";

export interface BrokerProberOptions {
  /** How long one Health call may take before the broker counts as unreachable (ms). */
  timeoutMs: number;
  /** TLS (CA, client certificate) and the scheme of broker host:port addresses. */
  transportOptions?: TransportPoolOptions;
}

/**
 * The leader's own check of a broker a client reported unreachable (docs/architecture.md, "Failure detection"): the leader does not
 * take the client's word alone. A broker is reachable when its Health RPC answers in time.
 */
export class BrokerProber {
  readonly #pool: TransportPool;

  constructor(private readonly options: BrokerProberOptions) {
    this.#pool = new TransportPool({ idleConnectionTimeoutMs: 5_000, ...options.transportOptions });
  }

  /** Whether the broker answers Health within `timeoutMs` (default: the prober's --probe-timeout). */
  async isReachable(address: string, timeoutMs = this.options.timeoutMs): Promise<boolean> {
    const client = createClient(BrokerService, this.#pool.get(address));
    try {
      await client.health({}, { timeoutMs });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The broker's log progress for `partitions` (Health with partitions), or undefined when it does not
   * answer in time.
   */
  async progress(
    address: string,
    partitions: ReadonlyArray<Pick<PartitionRef, "topic" | "partition">>,
  ): Promise<PartitionProgress[] | undefined> {
    const client = createClient(BrokerService, this.#pool.get(address));
    try {
      const res = await client.health({ partitions: [...partitions] }, { timeoutMs: this.options.timeoutMs });
      return res.partitions;
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.#pool.close();
  }
}
