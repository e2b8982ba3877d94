import type http from "node:http";
import type http2 from "node:http2";
import { isMessage } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import type { Registry } from "prom-client";
import type { KubeConfig } from "@kubernetes/client-node";
import { UnavailableError } from "../errors.js";
import { HeartbeatStore } from "../coordination/heartbeats.js";
import { createKeyspace } from "../coordination/keyspace.js";
import { GetBrokersRequestSchema, SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { withUpToDateLeaders } from "../fsm/leader-choice.js";
import { LeaderBalancer } from "./leader-balancer.js";
import { planTopUp, planUnreachable } from "../fsm/planner.js";
import type { UnreachableReason } from "../fsm/operations.js";
import type { Logger } from "../observability/logger.js";
import { createRegistry, createRpcMetrics, createSentinelMetrics } from "../observability/metrics.js";
import { errorTranslation, rpcMetrics } from "../server/interceptors.js";
import { bearerHeaders, tokenAuth, tokenHeaderCheck } from "../server/auth.js";
import {
  startRpcServer,
  type CorsPolicy,
  type RpcServer,
  type RpcServerLimits,
  type TlsFiles,
} from "../server/rpc-server.js";
import type { ClientTlsOptions } from "../server/tls.js";
import type { TransportPoolOptions } from "../server/transport-pool.js";
import { BrokerProber } from "./broker-prober.js";
import { readReplicaProgress } from "./replica-progress.js";
import { ControlPlane } from "./control-plane.js";
import { CreationAdmission } from "./admission.js";
import { FailureDetector } from "./failure-detector.js";
import type { VerdictLimits } from "./failure-verdict.js";
import { WriteRouter } from "./forwarder.js";
import { createPodWatcher, type BrokerUnavailableReason } from "./pod-watcher.js";
import { RoleNotifier } from "./role-notifier.js";
import { createSentinelService } from "./sentinel-service.js";
import { createGroupService } from "./group-service.js";
import { CONSOLE_PATH, createConsoleRoutes, type ConsoleRoutes } from "./console-routes.js";
import { listenerHostsLookup } from "./listener-hosts.js";
import { GroupCoordinator } from "../groups/coordinator.js";
import { GroupStore } from "../groups/group-store.js";
import { GroupView } from "../groups/group-view.js";
import { createGroupMetrics } from "../observability/group-metrics.js";

const POD_REASONS: Record<BrokerUnavailableReason, UnreachableReason> = {
  "not-ready": "pod-not-ready",
  deleted: "pod-deleted",
  evicted: "pod-evicted",
  failed: "pod-failed",
};

export interface SentinelConfig {
  id: string;
  /** Listen host:port (port 0 picks one). */
  address: string;
  /** URL written in the election key; derived from the bound port when empty. */
  advertiseUrl?: string;
  etcd: Etcd3;
  /**
   * The client of heartbeats and the leader election (createEtcdClient(…, "liveness")): its own
   * connection, no circuit breaker that bulk traffic could open. Default: `etcd`.
   */
  livenessEtcd?: Etcd3;
  etcdPrefix: string;
  heartbeatTtlSeconds: number;
  electionTtlSeconds: number;
  virtualNodes: number;
  defaultPartitions: number;
  snapshotEvery: number;
  forwardTimeoutMs: number;
  probeTimeoutMs: number;
  /** How often the leader evens out partition leadership within topics (ms; 0: never). Default 30 s. */
  leaderBalanceIntervalMs?: number;
  /** Topic creations the leader queues for commit at once; more are refused with ResourceExhausted (default 256). */
  maxPendingTopicCreations?: number;
  /** Creations are refused while more role changes than this wait to reach brokers (default 2,000). */
  maxPendingRolePushes?: number;
  /** When the failure detector holds a "broker down" verdict (see failure-verdict.ts). */
  verdictLimits?: Partial<VerdictLimits>;
  /** Members one consumer group may have (default 1000). */
  maxGroupMembers?: number;
  /**
   * `name=host[:port]` entries: a request sent to that host came in through listener `name` and, naming
   * none itself, gets the brokers' addresses on it (see listener-hosts.ts).
   */
  listenerHosts?: string[];
  tls?: TlsFiles;
  /**
   * TLS for the connections this sentinel opens (forwarding to the leader, SetTopicRole and Health to
   * brokers): the CA to trust and the client certificate for mutual TLS. Broker host:port addresses are
   * dialled over https when `tls` is set.
   */
  clientTls?: ClientTlsOptions;
  /**
   * Bearer token required on every write and admin RPC (see SENTINEL_PROTECTED_METHODS); also sent on
   * calls this sentinel makes (forwarded writes, SetTopicRole to brokers, which share the token).
   */
  adminToken?: string;
  /** Connection, stream and slow-client bounds of the RPC server. */
  rpcLimits?: RpcServerLimits;
  /** Browser origins allowed to call this sentinel directly (CORS); absent: off. */
  cors?: CorsPolicy;
  /** The built web console served at /ui/ (default: dist/console of this installation). */
  consoleDir?: string;
  /** Extra interceptors placed before the handlers (after the admin-token check). */
  interceptors?: Interceptor[];
  logger: Logger;
  registry?: Registry;
  /** Watch broker pods (Kubernetes) while leading; absent outside a cluster. */
  podWatch?: { kubeConfig: KubeConfig; namespace: string; labelSelector: string };
}

/** A running sentinel: RPC server + control plane + failure detection. */
export interface Sentinel {
  readonly id: string;
  readonly url: string;
  readonly port: number;
  readonly plane: ControlPlane;
  readonly registry: Registry;
  readonly detector: FailureDetector;
  /** Evens out partition leadership within topics (leader only; periodic, or `balance()` now). */
  readonly leaderBalancer: LeaderBalancer;
  /** Leader action used by the pod watcher: mark brokers down for a Kubernetes reason. */
  markBrokersDown(brokerIds: string[], reason: UnreachableReason): Promise<void>;
  stop(): Promise<void>;
}

/**
 * RPCs that need the admin token when one is set: every write, and the admin views of topics and of the
 * operation log. KeepAlive is a write (it records a heartbeat in etcd and brings a down broker back), and
 * brokers hold the token anyway. GetBrokers needs it only when it would create the topic (a new operation
 * in the log); reading an existing topic's brokers, and reporting unreachable ones (the leader checks
 * those itself), does not. GetClusterStatus stays open: producers ask it (healthy broker count) before
 * their first GetBrokers, and health checks and dashboards read it. GetRing too: it reads applied state
 * and shows a topic only to a caller who names it, as GetBrokers does.
 */
export const SENTINEL_PROTECTED_METHODS: ReadonlySet<string> = new Set([
  "KeepAlive",
  "RegisterBroker",
  "UnregisterBroker",
  "CreateSnapshot",
  "ListTopics",
  "ListOperations",
]);

export async function startSentinel(config: SentinelConfig): Promise<Sentinel> {
  const logger = config.logger;
  const listenerOfUrl = listenerHostsLookup(config.listenerHosts ?? []);
  const registry = config.registry ?? createRegistry({ component: "sentinel", sentinel: config.id });
  const metrics = createSentinelMetrics(registry);
  const keys = createKeyspace(config.etcdPrefix);
  const livenessEtcd = config.livenessEtcd ?? config.etcd;
  const heartbeats = new HeartbeatStore(livenessEtcd, keys, config.heartbeatTtlSeconds);

  // The URL is only known once the port is bound (port 0 in tests), so the server starts first and
  // answers Unavailable until the control plane has recovered.
  const live: { plane?: ControlPlane; service?: ReturnType<typeof createSentinelService> } = {};
  const routes = (router: ConnectRouter) => {
    router.service(
      SentinelService,
      lazyService(() => live.service),
    );
  };
  const consoleRoutes = createConsoleRoutes({ ...config, plane: () => live.plane });
  const server: RpcServer = await startRpcServer({
    address: config.address,
    routes,
    // The protected methods' token is checked before the body is read.
    ...(config.adminToken
      ? {
          authenticate: tokenHeaderCheck({
            token: config.adminToken,
            name: "the admin token",
            protectedMethods: SENTINEL_PROTECTED_METHODS,
          }),
        }
      : {}),
    interceptors: [
      errorTranslation(logger),
      rpcMetrics(createRpcMetrics(registry)),
      ...(config.adminToken
        ? [
            tokenAuth({
              token: config.adminToken,
              name: "the admin token",
              protectedMethods: SENTINEL_PROTECTED_METHODS,
              requires: (req) => {
                if (req.stream || !isMessage(req.message, GetBrokersRequestSchema)) return undefined;
                if (live.plane?.state.topic(req.message.topic)) return undefined;
                return `creating topic '${req.message.topic.slice(0, 200)}' (GetBrokers of a new topic) needs the admin token`;
              },
            }),
          ]
        : []),
      ...(config.interceptors ?? []),
    ],
    fallback: (req, res) =>
      void httpFallback(req, res, () => live.plane?.ready ?? false, registry, consoleRoutes),
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.rpcLimits ? { limits: config.rpcLimits } : {}),
    ...(config.cors ? { cors: config.cors } : {}),
    logger,
  });
  const authHeaders = bearerHeaders(config.adminToken);
  const transportOptions: TransportPoolOptions = {
    ...(config.clientTls ? { tls: config.clientTls } : {}),
    defaultScheme: config.tls ? "https" : "http",
  };
  const scheme = config.tls ? "https" : "http";
  const host = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  const url = config.advertiseUrl || `${scheme}://${host}:${server.port}`;

  const cp = new ControlPlane({
    id: config.id,
    url,
    etcd: config.etcd,
    livenessEtcd,
    keys,
    logger: logger.child({ component: "control-plane" }),
    metrics,
    virtualNodes: config.virtualNodes,
    snapshotEvery: config.snapshotEvery,
    electionTtlSeconds: config.electionTtlSeconds,
  });
  live.plane = cp;
  const state = cp.state;
  const prober = new BrokerProber({ timeoutMs: config.probeTimeoutMs, transportOptions });
  const markBrokersDown = async (brokerIds: string[], reason: UnreachableReason) => {
    // Asked before planning: the most up-to-date survivor must lead each partition the brokers led.
    const progressOf = await readReplicaProgress(prober, state, brokerIds, logger);
    await cp.propose(() => {
      const still = brokerIds.filter((id) => state.broker(id)?.status === "healthy");
      return still.length > 0
        ? withUpToDateLeaders(state, planUnreachable(state, cp.ring, still, reason), progressOf)
        : undefined;
    });
  };
  const detector = new FailureDetector({
    heartbeats,
    heartbeatTtlSeconds: config.heartbeatTtlSeconds,
    healthyBrokers: () => state.healthyBrokerIds(),
    isDown: (id) => state.broker(id)?.status === "down",
    // Half a heartbeat TTL (at least --probe-timeout): a broker too busy to beat may still answer, and
    // one that does not within that long is as good as gone for its clients.
    probe: async (id) => {
      const address = state.broker(id)?.address;
      const timeoutMs = Math.max(config.probeTimeoutMs, (config.heartbeatTtlSeconds * 1000) / 2);
      return address !== undefined && (await prober.isReachable(address, timeoutMs));
    },
    onSuspectVerdict: (reason) => metrics.suspectVerdicts.inc({ reason }),
    ...(config.verdictLimits ? { limits: config.verdictLimits } : {}),
    isLeader: () => cp.isLeader,
    markDown: markBrokersDown,
    markUp: async (beat) => {
      await cp.propose(() => {
        const broker = state.broker(beat.brokerId);
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
      await cp.propose(() => {
        const changes = planTopUp(state, cp.ring);
        return changes.length > 0 ? { type: "reassignPartitions", data: { changes } } : undefined;
      });
    },
    logger: logger.child({ component: "failure-detector" }),
  });
  const leaderBalancer = new LeaderBalancer({
    state,
    prober,
    propose: (build) => cp.propose(build),
    isLeader: () => cp.isLeader,
    intervalMs: config.leaderBalanceIntervalMs ?? 30_000,
    logger: logger.child({ component: "leader-balancer" }),
    onMoved: (partitions) => metrics.leadershipBalanceMoves.inc(partitions),
  });
  const notifier = new RoleNotifier({
    state,
    logger: logger.child({ component: "role-notifier" }),
    headers: authHeaders,
    transportOptions,
  });
  cp.onApplied((_op, effect, before) => {
    for (const topic of effect.changedTopics) notifier.notify(topic, before.get(topic));
  });
  const podWatcher = config.podWatch
    ? createPodWatcher({
        ...config.podWatch,
        logger: logger.child({ component: "pod-watcher" }),
        onBrokerUnavailable: async (event) => {
          if (!cp.isLeader || state.broker(event.brokerId)?.status !== "healthy") return;
          logger.warn(
            { broker: event.brokerId, pod: event.podName, reason: event.reason, detail: event.detail },
            "broker pod cannot serve; moving its replicas",
          );
          await markBrokersDown([event.brokerId], POD_REASONS[event.reason]).catch((err: unknown) =>
            logger.warn(
              { broker: event.brokerId, err: err },
              "could not act on the pod event; heartbeats will",
            ),
          );
        },
      })
    : undefined;
  cp.onLeadership((leading) => {
    if (leading) leaderBalancer.start();
    else leaderBalancer.stop();
  });
  cp.onLeadership((leading) => {
    if (leading) {
      detector.onLeading();
      void podWatcher?.start();
    } else {
      void podWatcher?.stop();
    }
  });
  const groupStore = new GroupStore(config.etcd, keys);
  const groupView = new GroupView(groupStore, logger.child({ component: "groups" }));
  const partitionCounts = (topic: string) => state.topic(topic)?.partitions.length;
  const groupMetrics = createGroupMetrics(registry, groupView);
  const coordinator = new GroupCoordinator({
    store: groupStore,
    view: groupView,
    partitionCounts,
    fenceKey: () => (cp.isLeader ? cp.election.fenceKey : undefined),
    maxMembers: config.maxGroupMembers ?? 1000,
    logger: logger.child({ component: "group-coordinator" }),
    onRebalance: (_group, reason) => groupMetrics.rebalances.inc({ reason }),
  });
  cp.onLeadership((leading) => (leading ? coordinator.startLeading() : coordinator.stopLeading()));
  cp.onApplied((_op, effect) => {
    if (effect.changedTopics.length > 0) coordinator.topicsChanged();
  });
  const router = new WriteRouter({
    selfId: config.id,
    selfUrl: url,
    isLeader: () => cp.isLeader,
    leaderUrl: () => cp.leaderUrl,
    metrics,
    deadlineMs: config.forwardTimeoutMs,
    headers: authHeaders,
    transportOptions,
  });
  try {
    await detector.start();
    await groupView.start();
    await cp.start();
  } catch (err) {
    await detector.stop();
    await groupView.stop();
    await cp.stop().catch(() => undefined);
    await server.close();
    prober.close();
    throw err;
  }
  live.service = createSentinelService({
    id: config.id,
    url,
    plane: cp,
    router,
    heartbeats,
    detector,
    prober,
    heartbeatTtlSeconds: config.heartbeatTtlSeconds,
    defaultPartitions: config.defaultPartitions,
    admission: new CreationAdmission({
      maxPending: config.maxPendingTopicCreations ?? 256,
      roleBacklog: () => notifier.backlog,
      maxRoleBacklog: config.maxPendingRolePushes ?? 2_000,
    }),
    onCreationRefused: () => metrics.admissionRejected.inc(),
    groups: createGroupService({ coordinator, view: groupView, router, partitionCounts }),
    listenerOfUrl,
    logger: logger.child({ component: "sentinel-service" }),
  });
  logger.info({ url, appliedId: state.appliedId }, "sentinel ready");

  return {
    id: config.id,
    url,
    port: server.port,
    plane: cp,
    registry,
    detector,
    markBrokersDown,
    leaderBalancer,
    async stop() {
      leaderBalancer.stop();
      await podWatcher?.stop();
      await server.close();
      await detector.stop();
      coordinator.stopLeading();
      await cp.stop();
      await groupView.stop();
      router.close();
      notifier.close();
      prober.close();
    },
  };
}

/** Until recovery finishes every RPC answers Unavailable (retryable) instead of stale data. */
function lazyService(
  get: () => ReturnType<typeof createSentinelService> | undefined,
): ReturnType<typeof createSentinelService> {
  const unavailable = async () => {
    throw new UnavailableError("sentinel is still recovering its state from etcd");
  };
  const methods = [
    "keepAlive",
    "registerBroker",
    "unregisterBroker",
    "getBrokers",
    "getClusterStatus",
    "listTopics",
    "listOperations",
    "createSnapshot",
    "getRing",
    "groupHeartbeat",
    "listGroups",
    "describeGroup",
  ] as const;
  const impl: Record<string, unknown> = {};
  for (const name of methods) {
    impl[name] = (req: never, ctx: never) => {
      const service = get();
      if (!service) return unavailable();
      return (service[name] as (req: never, ctx: never) => unknown)(req, ctx);
    };
  }
  // A server stream must be a generator: it fails on first pull instead of returning a rejection.
  impl["watchGroupAssignment"] = async function* (req: never, ctx: never) {
    const service = get();
    if (!service) throw new UnavailableError("sentinel is still recovering its state from etcd");
    yield* service.watchGroupAssignment(req, ctx) as AsyncIterable<unknown>;
  };
  return impl as ReturnType<typeof createSentinelService>;
}

async function httpFallback(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
  ready: () => boolean,
  registry: Registry,
  consoleRoutes: ConsoleRoutes,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
    res.writeHead(status, { "content-type": type });
    res.end(body);
  };
  if (req.method === "GET" && path === "/healthz") return send(200, "ok\n");
  if (req.method === "GET" && path === "/readyz")
    return ready() ? send(200, "ready\n") : send(503, "recovering\n");
  if (req.method === "GET" && path === "/metrics")
    return send(200, await registry.metrics(), registry.contentType);
  if (await consoleRoutes(req, res)) return;
  send(
    404,
    `not found: this port serves goulette.v1 RPCs, /healthz, /readyz, /metrics and ${CONSOLE_PATH}\n`,
  );
}
