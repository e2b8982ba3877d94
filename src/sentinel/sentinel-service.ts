import { create } from "@bufbuild/protobuf";
import { reportsUnreachable } from "../server/authorization.js";
import { principalOf } from "../server/identity.js";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import type { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import {
  CreateSnapshotResponseSchema,
  GetBrokersResponseSchema,
  HandOverLeadershipResponseSchema,
  RegisterBrokerResponseSchema,
  UnregisterBrokerResponseSchema,
  type GetBrokersRequest,
  type GetBrokersResponse,
} from "../gen/goulette/v1/sentinel_pb.js";
import type { HeartbeatStore } from "../coordination/heartbeats.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import {
  validateAddress,
  validateBrokerId,
  validateTopicName,
  replicaCountOrDefault,
  validateTopicShape,
} from "../fsm/validation.js";
import type { Logger } from "../observability/logger.js";
import type { LeaderActions } from "./leader-actions.js";
import type { ControlPlane } from "./control-plane.js";
import {
  assignmentsDigest,
  assignmentsOf,
  toBrokerInfo,
  toOperationMessage,
  toPartitionAssignments,
  toTopicReplicaInfo,
} from "./convert.js";
import type { BrokerRecord } from "../fsm/state.js";
import { addressOn, canonicalListeners, sameListeners, validateListenerName } from "../fsm/listeners.js";
import { AnswerCache } from "./answer-cache.js";
import { RingCache } from "./ring-cache.js";
import { ringView } from "./ring-view.js";
import type { CreationAdmission } from "./admission.js";
import type { FailureDetector } from "./failure-detector.js";
import { FORWARDED_HEADER, type WriteRouter } from "./forwarder.js";
import type { createGroupService } from "./group-service.js";
import { aclsForBroker, createAclService } from "./acl-service.js";

export interface SentinelServiceOptions {
  id: string;
  url: string;
  plane: ControlPlane;
  router: WriteRouter;
  heartbeats: HeartbeatStore;
  detector: FailureDetector;
  /** The leader's use-cases (register, unregister, mark down, create a topic) the write RPCs run. */
  actions: LeaderActions;
  heartbeatTtlSeconds: number;
  /** Partitions of a new topic when the request says 0. */
  defaultPartitions: number;
  /** Admission of topic creations on the leader (bounded; the excess is refused with ResourceExhausted). */
  admission: CreationAdmission;
  /** Counts a creation refused by `admission`. */
  onCreationRefused?: () => void;
  /** The consumer-group RPCs. */
  groups: ReturnType<typeof createGroupService>;
  /**
   * The listener a request names implicitly by the URL it was sent to (--listener-hosts): undefined
   * when that host belongs to none (the default addresses).
   */
  listenerOfUrl?: (url: string) => string | undefined;
  logger: Logger;
}

/** Partitions one HandOverLeadership names at most (a bounded request). */
const MAX_HAND_OVER_PARTITIONS = 10_000;
/** Topics whose GetBrokers answer is kept (≈ 1 KiB each); beyond that the oldest is rebuilt when read. */
const ANSWER_CACHE_TOPICS = 10_000;

interface CachedAnswer {
  response: GetBrokersResponse;
  brokerIds: string[];
  /** The brokers' last heartbeats the response carries, in brokerIds order. */
  heartbeats: (number | undefined)[];
}

/** The SentinelService RPCs. Reads answer from the applied state; writes go through the WriteRouter. */
export function createSentinelService(options: SentinelServiceOptions): ServiceImpl<typeof SentinelService> {
  const { plane, router, actions } = options;
  const state = plane.state;
  const forwardedBy = (ctx: HandlerContext) => ctx.requestHeader.get(FORWARDED_HEADER);
  /** The listener whose addresses an answer carries: the request's own, else the host it came in by. */
  const listenerOf = (requested: string, ctx: HandlerContext): string => {
    if (requested === "") return options.listenerOfUrl?.(ctx.url) ?? "";
    validateListenerName(requested);
    return requested;
  };

  // Reads vastly outnumber state changes: an answer is built once per topic and state version, and
  // rebuilt when a broker in it has sent a newer heartbeat (the answer carries the last one).
  const answers = new AnswerCache<CachedAnswer>(ANSWER_CACHE_TOPICS);
  // GetRing lists the ring's points, which the planner's RingView does not expose.
  const rings = new RingCache();
  const heartbeatsUnchanged = (cached: CachedAnswer) =>
    cached.heartbeats.every(
      (beat, i) => options.detector.lastHeartbeat(cached.brokerIds[i] as string) === beat,
    );

  /** The topic's answer with the brokers' addresses on `listener` ("" = default). */
  function answer(topic: string, listener: string): GetBrokersResponse {
    // '@' cannot occur in a topic name: one entry per topic and listener.
    const key = listener === "" ? topic : `${topic}@${listener}`;
    const cached = answers.get(key, state.appliedId, heartbeatsUnchanged);
    if (cached) return cached.response;
    const record = state.topic(topic);
    if (!record) throw new NotFoundError(`topic '${topic}' has no assignment`);
    const brokerIds = [...new Set(record.partitions.flatMap((p) => p.replicas))].filter(
      (id) => state.broker(id) !== undefined,
    );
    const heartbeats = brokerIds.map((id) => options.detector.lastHeartbeat(id));
    const response = create(GetBrokersResponseSchema, {
      brokers: brokerIds.map((id, i) =>
        toBrokerInfo(state.broker(id) as BrokerRecord, [topic], heartbeats[i], listener),
      ),
      partitions: toPartitionAssignments(record),
      version: BigInt(record.version),
    });
    answers.set(key, state.appliedId, { response, brokerIds, heartbeats });
    return response;
  }

  /** Leader side of GetBrokers: verify reported brokers, move what is confirmed down, create the topic if new. */
  async function getBrokersAsLeader(req: GetBrokersRequest): Promise<GetBrokersResponse> {
    await actions.verifyUnreachable(req.unreachableBrokers, { topic: req.topic });
    if (!state.topic(req.topic)) {
      const partitions = req.partitions === 0 ? options.defaultPartitions : req.partitions;
      let release: () => void;
      try {
        release = options.admission.admit(`topic '${req.topic}'`);
      } catch (err) {
        options.onCreationRefused?.();
        throw err;
      }
      try {
        await actions.ensureTopic({ topic: req.topic, partitions, replicaCount: req.replicaCount });
      } finally {
        release();
      }
    }
    return answer(req.topic, req.listener);
  }

  return {
    async keepAlive(req) {
      validateBrokerId(req.brokerId);
      validateAddress(req.address);
      const listeners = canonicalListeners(req.listeners);
      await options.heartbeats.record({
        brokerId: req.brokerId,
        address: req.address,
        ...(listeners.length > 0 ? { listeners } : {}),
        status: BrokerStatus[req.status] ?? "UNSPECIFIED",
        lastHeartbeat: Date.now(),
      });
      await plane.committedState(); // roles from an uncommitted transaction must not reach a broker
      const known = state.broker(req.brokerId);
      const registered = known !== undefined && known.address === req.address;
      const digest = registered ? assignmentsDigest(state, req.brokerId) : "";
      // Incremental: a broker that holds this very list is not sent its thousands of roles again.
      const unchanged = registered && req.assignmentsDigest === digest;
      return {
        ttlSeconds: options.heartbeatTtlSeconds,
        registered,
        // Other listeners only: the broker registers them again without losing its registration (an
        // older leader that drops them would otherwise make the broker flap between the two states).
        listenersChanged: registered && !sameListeners(known.listeners, listeners),
        appliedId: BigInt(state.appliedId),
        assignments: registered && !unchanged ? assignmentsOf(state, req.brokerId) : [],
        assignmentsDigest: digest,
        assignmentsUnchanged: unchanged,
        // Every broker enforces the topic ACLs: the set rides on the beat, only when it changed.
        ...aclsForBroker(state.acls, req.aclsDigest),
      };
    },

    async registerBroker(req, ctx) {
      validateBrokerId(req.brokerId);
      validateAddress(req.address);
      const listeners = canonicalListeners(req.listeners);
      return router.route(
        "RegisterBroker",
        async () => {
          const op = await actions.register({
            brokerId: req.brokerId,
            address: req.address,
            listeners,
            incarnation: req.incarnation,
          });
          const broker = state.broker(req.brokerId);
          if (!broker)
            throw new FailedPreconditionError(`broker '${req.brokerId}' vanished while registering`);
          return create(RegisterBrokerResponseSchema, {
            broker: toBrokerInfo(
              broker,
              state.topicsOfBroker(req.brokerId),
              options.detector.lastHeartbeat(req.brokerId),
            ),
            operationId: BigInt(op?.id ?? 0),
          });
        },
        (client, headers) => client.registerBroker(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async unregisterBroker(req, ctx) {
      validateBrokerId(req.brokerId);
      if (!state.broker(req.brokerId)) throw new NotFoundError(`broker '${req.brokerId}' is not registered`);
      return router.route(
        "UnregisterBroker",
        async () => {
          const op = await actions.unregister(req.brokerId);
          return create(UnregisterBrokerResponseSchema, { operationId: BigInt(op?.id ?? 0) });
        },
        (client, headers) => client.unregisterBroker(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async handOverLeadership(req, ctx) {
      validateBrokerId(req.brokerId);
      if (!state.broker(req.brokerId)) throw new NotFoundError(`broker '${req.brokerId}' is not registered`);
      if (req.partitions.length === 0)
        throw new InvalidArgumentError("name at least one partition to hand over");
      if (req.partitions.length > MAX_HAND_OVER_PARTITIONS) {
        throw new InvalidArgumentError(
          `at most ${MAX_HAND_OVER_PARTITIONS} partitions per hand-over, got ${req.partitions.length}`,
        );
      }
      for (const p of req.partitions) validateTopicName(p.topic);
      return router.route(
        "HandOverLeadership",
        async () => {
          const { operation, moved } = await actions.handOverLeadership(req.brokerId, req.partitions);
          return create(HandOverLeadershipResponseSchema, {
            moved,
            operationId: BigInt(operation?.id ?? 0),
          });
        },
        (client, headers) => client.handOverLeadership(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async getBrokers(req, ctx) {
      validateTopicName(req.topic);
      // Resolved here, so a request forwarded to the leader names the listener its client came in by.
      req.listener = listenerOf(req.listener, ctx);
      // A failover starts from this list: an unauthenticated caller's report is not evidence.
      if (req.unreachableBrokers.length > 0 && !reportsUnreachable(principalOf(ctx.values))) {
        options.logger.debug({ topic: req.topic }, "ignoring unreachable_brokers from an anonymous caller");
        req.unreachableBrokers = [];
      }
      await plane.committedState();
      for (const id of req.unreachableBrokers) {
        validateBrokerId(id);
        if (!state.broker(id)) throw new NotFoundError(`unreachable_brokers names unknown broker '${id}'`);
      }
      const actionable = req.unreachableBrokers.some((id) => state.broker(id)?.status === "healthy");
      if (state.topic(req.topic) && !actionable) return answer(req.topic, req.listener);
      if (!state.topic(req.topic)) {
        // Validate here too, so bad input fails fast on any sentinel without a round trip to the leader.
        const partitions = req.partitions === 0 ? options.defaultPartitions : req.partitions;
        const healthy = state.healthyBrokerIds().length;
        validateTopicShape(req.topic, partitions, replicaCountOrDefault(req.replicaCount, healthy), healthy);
        // The answer needs every chosen broker's address on this listener: refuse before the topic
        // exists rather than create it and then fail to answer.
        if (req.listener !== "") {
          validateListenerName(req.listener);
          for (const id of state.healthyBrokerIds())
            addressOn(state.broker(id) as BrokerRecord, req.listener);
        }
      }
      return router.route(
        "GetBrokers",
        () => getBrokersAsLeader(req),
        (client, headers) => client.getBrokers(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async getClusterStatus(req, ctx) {
      const listener = listenerOf(req.listener, ctx);
      await plane.committedState();
      const candidates = await plane.leadership.candidates().catch(() => []);
      const leaderUrl = plane.leaderUrl ?? "";
      const brokers = state.brokers();
      const sentinels = candidates.map((c, i) => ({
        // A sentinel of an older version campaigns with its bare URL: only its own id is known then.
        id: c.id || (c.url === options.url ? options.id : ""),
        url: c.url,
        isLeader: i === 0,
      }));
      return {
        sentinelId: options.id,
        // A follower names the leader too: the first candidate, as `sentinels` says.
        leaderId: plane.isLeader ? options.id : (sentinels.find((s) => s.isLeader)?.id ?? ""),
        leaderUrl,
        sentinels,
        ringBrokers: plane.ring.size,
        ringVirtualNodes: plane.ring.virtualNodeCount,
        oplogHeadId: BigInt(plane.head),
        oplogAppliedId: BigInt(state.appliedId),
        replayLagOps: BigInt(plane.head - state.appliedId),
        snapshotId: BigInt(plane.snapshotId),
        topics: state.topicCount(),
        brokers: brokers.map((b) =>
          toBrokerInfo(
            b,
            state.topicsOfBroker(b.brokerId),
            options.detector.lastHeartbeat(b.brokerId),
            // A down broker holds no replicas and is dialled by no one: listed with its default address
            // when it lacks the listener (e.g. it went down before the listener was configured).
            b.status === "down" && !b.listeners?.some((l) => l.name === listener) ? "" : listener,
          ),
        ),
        stateDigest: state.digest(),
      };
    },

    async listTopics(req) {
      await plane.committedState();
      const limit = req.limit === 0 ? 1000 : Math.min(req.limit, 10_000);
      const names = state.topicNames().filter((n) => n.startsWith(req.prefix) && n > req.after);
      const page = names.slice(0, limit);
      return {
        topics: page.flatMap((name) => {
          const record = state.topic(name);
          return record ? [toTopicReplicaInfo(record)] : [];
        }),
        nextAfter: names.length > limit ? (page[page.length - 1] ?? "") : "",
      };
    },

    async listOperations(req) {
      const limit = req.limit === 0 ? 100 : Math.min(req.limit, 1000);
      if (req.afterId > BigInt(Number.MAX_SAFE_INTEGER))
        throw new InvalidArgumentError(`after_id ${req.afterId} is out of range`);
      const ops = await plane.log.list(Number(req.afterId), limit);
      const { head } = await plane.log.readHead();
      const meta = await plane.log.readSnapshotMeta();
      const last = ops[ops.length - 1];
      return {
        operations: ops.map(toOperationMessage),
        headId: BigInt(head),
        snapshotId: BigInt(meta?.id ?? 0),
        nextAfterId: last && last.id < head ? BigInt(last.id) : 0n,
      };
    },

    async getRing(req) {
      await plane.committedState();
      return ringView(state, rings.get(state.ringMembers(), plane.ringVirtualNodes), req);
    },

    ...options.groups,

    ...createAclService({ plane, router, actions }),

    async createSnapshot(req, ctx) {
      return router.route(
        "CreateSnapshot",
        async () => {
          const result = await plane.snapshotNow();
          return create(CreateSnapshotResponseSchema, {
            snapshotId: BigInt(result.snapshotId),
            compactedOperations: result.compacted,
            sizeBytes: BigInt(result.size),
          });
        },
        (client, headers) => client.createSnapshot(req, { headers }),
        forwardedBy(ctx),
      );
    },
  };
}
