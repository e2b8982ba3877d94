import type { ClusterState } from "../fsm/state.js";
import type { Command } from "../fsm/operations.js";
import { planLeaderBalance } from "../fsm/planner.js";
import type { Logger } from "../observability/logger.js";
import type { BrokerProber } from "./broker-prober.js";

export interface LeaderBalancerOptions {
  state: ClusterState;
  prober: BrokerProber;
  /** Proposes a command built against the state at proposal time (the control plane's propose). */
  propose: (build: () => Command | undefined) => Promise<unknown>;
  isLeader: () => boolean;
  /** How often the leader checks the spread; 0 turns the periodic check off. */
  intervalMs: number;
  logger: Logger;
  /** Counts each leadership hand-over proposed. */
  onMoved?: (partitions: number) => void;
}

/**
 * Keeps partition leadership evenly spread within every topic (as Kafka's preferred-leader election
 * does): failovers make survivors lead more than their share, and once they and the others are in sync
 * again the leader hands leadership back, reordering replica lists only. The plan is pure (the
 * planner); this shell asks each leading broker for its in-sync replicas — a broker takes over only a
 * partition it is in sync on, so it holds every acknowledged record — and proposes the reordering.
 */
export class LeaderBalancer {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(private readonly options: LeaderBalancerOptions) {}

  start(): void {
    if (this.options.intervalMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.balance().catch(() => undefined), this.options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check (coalesced with a running one): the number of partitions whose leadership moved. */
  balance(): Promise<number> {
    this.#running ??= this.#balanceOnce().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #balanceOnce(): Promise<number> {
    const { state, logger } = this.options;
    if (!this.options.isLeader()) return 0;
    // Cheap first: with everybody allowed, would anything move? Most checks end here, asking no broker.
    const wanted = planLeaderBalance(state, () => true);
    if (wanted.length === 0) return 0;

    const inSync = await this.#readInSyncReplicas(wanted.map((change) => change.topic));
    let moved = 0;
    await this.options.propose(() => {
      if (!this.options.isLeader()) return undefined;
      const changes = planLeaderBalance(state, (topic, partition, brokerId) =>
        (inSync.get(`${topic}\0${partition}`) ?? []).includes(brokerId),
      );
      moved = changes.reduce((sum, change) => sum + change.partitions.length, 0);
      return changes.length > 0 ? { type: "reassignPartitions", data: { changes } } : undefined;
    });
    if (moved > 0) {
      logger.info({ partitions: moved }, "moved partition leadership to even out leaders within topics");
      this.options.onMoved?.(moved);
    }
    return moved;
  }

  /** topic\0partition → the in-sync replicas its leader reports (one Health call per leading broker). */
  async #readInSyncReplicas(topics: readonly string[]): Promise<Map<string, string[]>> {
    const { state, prober } = this.options;
    const asks = new Map<string, Array<{ topic: string; partition: number }>>();
    for (const name of topics) {
      for (const p of state.topic(name)?.partitions ?? []) {
        const leader = p.replicas[0];
        if (leader === undefined || state.broker(leader)?.status !== "healthy") continue;
        asks.set(leader, [...(asks.get(leader) ?? []), { topic: name, partition: p.partition }]);
      }
    }
    const inSync = new Map<string, string[]>();
    await Promise.all(
      [...asks].map(async ([brokerId, partitions]) => {
        const address = state.broker(brokerId)?.address;
        const answers = address ? await prober.progress(address, partitions) : undefined;
        for (const a of answers ?? []) inSync.set(`${a.topic}\0${a.partition}`, a.inSyncReplicas);
      }),
    );
    return inSync;
  }
}
