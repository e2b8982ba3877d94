import type { Heartbeat, HeartbeatStore } from "../coordination/heartbeats.js";
import { NotFoundError } from "../errors.js";
import type { AclEntry } from "../fsm/acl.js";
import type { ListenerAddress } from "../fsm/listeners.js";
import { sameListeners } from "../fsm/listeners.js";
import { planRestartHandover, withUpToDateLeaders } from "../fsm/leader-choice.js";
import type { Operation, UnreachableReason } from "../fsm/operations.js";
import { planNewTopic, planTopUp, planUnreachable, planUnregister } from "../fsm/planner.js";
import { replicaCountOrDefault, validateTopicShape } from "../fsm/validation.js";
import type { Logger } from "../observability/logger.js";
import type { BrokerProber } from "./broker-prober.js";
import type { ControlPlane } from "./control-plane.js";
import type { BrokerPodEvent } from "./pod-tracker.js";
import type { BrokerUnavailableReason } from "./pod-readiness.js";
import { readReplicaProgress } from "./replica-progress.js";

const POD_REASONS: Record<BrokerUnavailableReason, UnreachableReason> = {
  "not-ready": "pod-not-ready",
  deleted: "pod-deleted",
  evicted: "pod-evicted",
  failed: "pod-failed",
};

export interface LeaderActionsOptions {
  plane: Pick<ControlPlane, "state" | "ring" | "propose" | "isLeader">;
  prober: Pick<BrokerProber, "isReachable" | "progress">;
  heartbeats: Pick<HeartbeatStore, "record">;
  logger: Logger;
}

/**
 * The leader's use-cases, each a plan proposed to the control plane (so it re-checks the state when it
 * runs and is idempotent): the failure detector, the pod watcher and the RPC service all act through
 * these, never by proposing plans of their own. Each runs on the leader (proposals elsewhere fail with
 * NotLeaderError; the RPC service forwards writes to the leader first).
 */
export class LeaderActions {
  readonly #options: LeaderActionsOptions;

  constructor(options: LeaderActionsOptions) {
    this.#options = options;
  }

  /**
   * Marks brokers down and moves their replicas, in one operation. The surviving replicas are asked how
   * far their logs go first: the most up-to-date one leads each partition the brokers led.
   */
  async markDown(brokerIds: readonly string[], reason: UnreachableReason): Promise<Operation | undefined> {
    const { plane, prober, logger } = this.#options;
    const state = plane.state;
    const progressOf = await readReplicaProgress(prober, state, brokerIds, logger);
    return plane.propose(() => {
      const still = brokerIds.filter((id) => state.broker(id)?.status === "healthy");
      return still.length > 0
        ? withUpToDateLeaders(state, planUnreachable(state, plane.ring, still, reason), progressOf)
        : undefined;
    });
  }

  /**
   * Brokers a client could not reach: each is probed (Health) and only those that do not answer are
   * marked down; the others are logged and kept.
   */
  async verifyUnreachable(reported: readonly string[], context: Record<string, unknown>): Promise<void> {
    const state = this.#options.plane.state;
    const healthy = [...new Set(reported)].filter((id) => state.broker(id)?.status === "healthy");
    if (healthy.length === 0) return;
    const verdicts = await Promise.all(
      healthy.map(async (id) => ({
        id,
        reachable: await this.#options.prober.isReachable(state.broker(id)?.address ?? ""),
      })),
    );
    const down = verdicts.filter((v) => !v.reachable).map((v) => v.id);
    const alive = verdicts.filter((v) => v.reachable).map((v) => v.id);
    if (alive.length > 0) {
      this.#options.logger.info(
        { brokers: alive, ...context },
        "client reported brokers unreachable but they answer Health; not moving them",
      );
    }
    if (down.length > 0) await this.markDown(down, "client-report");
  }

  /** A broker pod that cannot serve (Kubernetes): its replicas move now rather than after its heartbeat expires. */
  async markPodDown(event: BrokerPodEvent): Promise<void> {
    const { plane, logger } = this.#options;
    if (!plane.isLeader || plane.state.broker(event.brokerId)?.status !== "healthy") return;
    logger.warn(
      { broker: event.brokerId, pod: event.podName, reason: event.reason, detail: event.detail },
      "broker pod cannot serve; moving its replicas",
    );
    await this.markDown([event.brokerId], POD_REASONS[event.reason]).catch((err: unknown) =>
      logger.warn({ broker: event.brokerId, err: err }, "could not act on the pod event; heartbeats will"),
    );
  }

  /** A down broker beats again: back in the ring (with the addresses it beats with), then top-ups. */
  async markUp(beat: Pick<Heartbeat, "brokerId" | "address" | "listeners">): Promise<void> {
    const { plane } = this.#options;
    await plane.propose(() => {
      const broker = plane.state.broker(beat.brokerId);
      if (!broker || broker.status !== "down") return undefined;
      // The beat's addresses, which KeepAlive checked against the registered ones.
      const addresses = beat.address ? beat : broker;
      return {
        type: "addBrokerToHashRing",
        data: {
          brokerId: broker.brokerId,
          address: addresses.address,
          ...(addresses.listeners?.length ? { listeners: addresses.listeners } : {}),
        },
      };
    });
    await this.topUp();
  }

  /**
   * Registers a broker (or brings it back, or records its new addresses), with a heartbeat so the
   * failure detector counts it alive from now, then tops up partitions left under-replicated by earlier
   * failures. Resolves with the registration's operation (undefined when nothing changed).
   */
  async register(broker: {
    brokerId: string;
    address: string;
    listeners: ListenerAddress[];
    /** The broker process's start-up id (absent or "" from older brokers): a new one means it restarted. */
    incarnation?: string;
  }): Promise<Operation | undefined> {
    const { plane } = this.#options;
    const incarnation = broker.incarnation ?? "";
    const withListeners = broker.listeners.length > 0 ? { listeners: broker.listeners } : {};
    const withIncarnation = incarnation !== "" ? { incarnation } : {};
    await this.#options.heartbeats.record({
      brokerId: broker.brokerId,
      address: broker.address,
      ...withListeners,
      status: "HEALTHY",
      lastHeartbeat: Date.now(),
    });
    await this.#handOverIfRestarted(broker.brokerId, incarnation);
    const op = await plane.propose(() => {
      const known = plane.state.broker(broker.brokerId);
      const same =
        known !== undefined &&
        known.address === broker.address &&
        sameListeners(known.listeners, broker.listeners);
      const sameProcess = incarnation === "" || known?.incarnation === incarnation;
      if (same && sameProcess && known.status === "healthy") return undefined;
      return {
        type: same && known.status !== "healthy" ? "addBrokerToHashRing" : "registerBroker",
        data: { brokerId: broker.brokerId, address: broker.address, ...withListeners, ...withIncarnation },
      };
    });
    await this.topUp();
    return op;
  }

  /**
   * A healthy broker registering with a new incarnation restarted within its heartbeat TTL: the
   * partitions it led go to their most up-to-date other replica under a new epoch before it takes any
   * role (see planRestartHandover), so its possibly shorter log never truncates followers holding
   * acknowledged records. Runs before the registration is recorded, so a sentinel failing in between
   * sees the old incarnation again when the broker retries, and hands over then.
   */
  async #handOverIfRestarted(brokerId: string, incarnation: string): Promise<void> {
    const { plane, prober, logger } = this.#options;
    const state = plane.state;
    const known = state.broker(brokerId);
    if (incarnation === "" || known?.status !== "healthy" || known.incarnation === incarnation) return;
    const progressOf = await readReplicaProgress(prober, state, [brokerId], logger);
    const op = await plane.propose(() => {
      const changes = planRestartHandover(state, brokerId, progressOf);
      return changes.length > 0 ? { type: "reassignPartitions", data: { changes } } : undefined;
    });
    if (op)
      logger.info(
        { brokerId, operationId: op.id },
        "broker restarted while leading: its partitions moved to up-to-date replicas under new epochs",
      );
  }

  /**
   * A broker that cannot lead some of the partitions it leads (its log is damaged) asks for their
   * leadership to move: each goes to its most up-to-date other healthy replica under a new epoch, the
   * broker following right behind it (it fetches the damaged range again as a follower). Returns the
   * operation and how many partitions moved; a partition with no such replica stays where it is.
   */
  async handOverLeadership(
    brokerId: string,
    partitions: ReadonlyArray<{ topic: string; partition: number }>,
  ): Promise<{ operation: Operation | undefined; moved: number }> {
    const { plane, prober, logger } = this.#options;
    const state = plane.state;
    if (!state.broker(brokerId)) throw new NotFoundError(`broker '${brokerId}' is not registered`);
    const asked = new Set(partitions.map((p) => `${p.topic}\0${p.partition}`));
    const progressOf = await readReplicaProgress(prober, state, [brokerId], logger);
    let moved = 0;
    const operation = await plane.propose(() => {
      const changes = planRestartHandover(state, brokerId, progressOf, (topic, partition) =>
        asked.has(`${topic}\0${partition}`),
      );
      moved = changes.reduce((sum, change) => sum + change.partitions.length, 0);
      return changes.length > 0 ? { type: "reassignPartitions", data: { changes } } : undefined;
    });
    if (operation) {
      logger.warn(
        { brokerId, partitions: moved, operationId: operation.id },
        "moved the leadership of partitions whose leader found its log damaged",
      );
    }
    return { operation, moved };
  }

  /** Removes a broker for good; its replicas move, the most up-to-date survivors leading. */
  async unregister(brokerId: string): Promise<Operation | undefined> {
    const { plane, prober, logger } = this.#options;
    const state = plane.state;
    const progressOf = await readReplicaProgress(prober, state, [brokerId], logger);
    return plane.propose(() =>
      state.broker(brokerId)
        ? withUpToDateLeaders(state, planUnregister(state, plane.ring, brokerId), progressOf)
        : undefined,
    );
  }

  /** Creates the topic unless it exists (a concurrent request may have created it meanwhile). */
  async ensureTopic(request: { topic: string; partitions: number; replicaCount: number }): Promise<void> {
    const { plane } = this.#options;
    const state = plane.state;
    await plane.propose(() => {
      if (state.topic(request.topic)) return undefined;
      const healthy = state.healthyBrokerIds().length;
      const replicaCount = replicaCountOrDefault(request.replicaCount, healthy);
      validateTopicShape(request.topic, request.partitions, replicaCount, healthy);
      return planNewTopic(state, plane.ring, { ...request, replicaCount });
    });
  }

  /** Records an ACL entry (canonical), replacing the entry for its principal and resource; none if equal. */
  putAcl(entry: AclEntry): Promise<Operation | undefined> {
    const { plane } = this.#options;
    return plane.propose(() => {
      const known = plane.state.acls.get(entry.principal, entry.resource);
      if (known && known.permissions.join() === entry.permissions.join()) return undefined;
      return { type: "putAcl", data: entry };
    });
  }

  /** Deletes an ACL entry; NotFoundError when there is none for this principal and resource. */
  deleteAcl(principal: string, resource: string): Promise<Operation | undefined> {
    const { plane } = this.#options;
    return plane.propose(() => {
      if (!plane.state.acls.get(principal, resource))
        throw new NotFoundError(`no ACL entry for ${principal} on '${resource}'`);
      return { type: "deleteAcl", data: { principal, resource } };
    });
  }

  /** Gives under-replicated partitions replicas on brokers that can take them. */
  topUp(): Promise<Operation | undefined> {
    const { plane } = this.#options;
    return plane.propose(() => {
      const changes = planTopUp(plane.state, plane.ring);
      return changes.length > 0 ? { type: "reassignPartitions", data: { changes } } : undefined;
    });
  }
}
