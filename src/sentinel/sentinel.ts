import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import type { Registry } from "prom-client";
import type { KubeConfig } from "@kubernetes/client-node";
import { UnavailableError } from "../errors.js";
import { HeartbeatStore } from "../coordination/heartbeats.js";
import { createKeyspace } from "../coordination/keyspace.js";
import { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { LeaderBalancer } from "./leader-balancer.js";
import type { Logger } from "../observability/logger.js";
import { createRegistry, createRpcMetrics, createSentinelMetrics } from "../observability/metrics.js";
import { errorTranslation, rpcMetrics } from "../server/interceptors.js";
import { bearerHeaders } from "../common/bearer.js";
import { authorization, authorizationHeaderCheck, sentinelRules } from "../server/authorization.js";
import { AclSet } from "../fsm/acl.js";
import { Authenticator, type IdentityOptions } from "../server/identity.js";
import {
  startRpcServer,
  type CorsPolicy,
  type RpcServer,
  type RpcServerLimits,
  type TlsFiles,
} from "../server/rpc-server.js";
import type { ClientTlsOptions } from "../server/tls.js";
import type { TransportPoolOptions } from "../server/transport-pool.js";
import { httpEndpoints } from "../server/http-endpoints.js";
import { lazyService } from "../server/lazy-service.js";
import { BrokerProber } from "./broker-prober.js";
import { LeaderActions } from "./leader-actions.js";
import type { ControlPlane } from "./control-plane.js";
import { createEtcdControlPlane } from "./etcd-control-plane.js";
import { CreationAdmission } from "./admission.js";
import { FailureDetector } from "./failure-detector.js";
import type { VerdictLimits } from "./failure-verdict.js";
import { WriteRouter } from "./forwarder.js";
import { createPodWatcher } from "./pod-watcher.js";
import { RoleNotifier } from "./role-notifier.js";
import { createSentinelService } from "./sentinel-service.js";
import { createGroupService } from "./group-service.js";
import { CONSOLE_PATH, createConsoleRoutes } from "./console-routes.js";
import { listenerHostsLookup } from "./listener-hosts.js";
import { GroupCoordinator } from "../groups/coordinator.js";
import { GroupStore } from "../groups/group-store.js";
import { GroupView } from "../groups/group-view.js";
import { createGroupMetrics } from "../observability/group-metrics.js";

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
   * The legacy single shared token (compatibility mode): its holder is trusted as every component; also
   * sent on the calls this sentinel makes when `token` is not set.
   */
  adminToken?: string;
  /**
   * Who may call (identity.ts, authorization.ts): the tokens table and whether callers without a
   * credential are trusted. Under mutual TLS client certificates named as principals identify callers.
   * Absent (and no adminToken): every caller is trusted, as before identities (embedding, tests).
   */
  identity?: Pick<IdentityOptions, "tokens" | "allowAnonymous">;
  /** The credential this sentinel presents on its own calls (a `sentinel` token); default adminToken. */
  token?: string;
  /** Connection, stream and slow-client bounds of the RPC server. */
  rpcLimits?: RpcServerLimits;
  /** Browser origins allowed to call this sentinel directly (CORS); absent: off. */
  cors?: CorsPolicy;
  /** The built web console served at /ui/ (default: dist/console of this installation). */
  consoleDir?: string;
  /** Extra interceptors placed before the handlers (after authorization). */
  interceptors?: Interceptor[];
  /**
   * Serve GetBrokers called over gRPC on HTTP/2 by the gRPC fast path (server/grpc-fast-path.ts;
   * default true). Off: every call goes through connect-node (the benchmark compares the two).
   */
  grpcFastPath?: boolean;
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
  /** The leader's use-cases (mark down/up, register, …), as the detector, pod watcher and RPCs run them. */
  readonly actions: LeaderActions;
  stop(): Promise<void>;
}

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
      lazyService(
        SentinelService,
        () => live.service,
        () => new UnavailableError("sentinel is still recovering its state from etcd"),
      ),
    );
  };
  const authenticator = new Authenticator({
    ...(config.identity?.tokens ? { tokens: config.identity.tokens } : {}),
    ...(config.adminToken ? { sharedToken: config.adminToken } : {}),
    allowAnonymous: config.identity ? config.identity.allowAnonymous === true : !config.adminToken,
    certificates: Boolean(config.tls?.caFile),
  });
  const rules = sentinelRules(
    (topic) => live.plane?.state.topic(topic) !== undefined,
    () => live.plane?.state.acls ?? AclSet.EMPTY,
  );
  const consoleRoutes = createConsoleRoutes({ ...config, plane: () => live.plane });
  const server: RpcServer = await startRpcServer({
    address: config.address,
    routes,
    // Credentials and the method's rule are checked before the body is read.
    authenticate: authorizationHeaderCheck(authenticator, rules),
    // The hot read: every producer and consumer asks for its topics' brokers.
    fastMethods: config.grpcFastPath === false ? [] : [SentinelService.method.getBrokers],
    interceptors: [
      errorTranslation(logger),
      rpcMetrics(createRpcMetrics(registry)),
      authorization(authenticator, rules),
      ...(config.interceptors ?? []),
    ],
    fallback: httpEndpoints({
      ready: () => live.plane?.ready ?? false,
      notReadyReason: "recovering",
      registry,
      more: { paths: [CONSOLE_PATH], serve: consoleRoutes },
    }),
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.rpcLimits ? { limits: config.rpcLimits } : {}),
    ...(config.cors ? { cors: config.cors } : {}),
    logger,
  });
  const authHeaders = bearerHeaders(config.token ?? config.adminToken);
  const transportOptions: TransportPoolOptions = {
    ...(config.clientTls ? { tls: config.clientTls } : {}),
    defaultScheme: config.tls ? "https" : "http",
  };
  const scheme = config.tls ? "https" : "http";
  const host = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  const url = config.advertiseUrl || `${scheme}://${host}:${server.port}`;

  const plane = createEtcdControlPlane({
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
  live.plane = plane;
  const state = plane.state;
  const prober = new BrokerProber({ timeoutMs: config.probeTimeoutMs, transportOptions });
  const actions = new LeaderActions({
    plane,
    prober,
    heartbeats,
    logger: logger.child({ component: "leader-actions" }),
  });
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
    isLeader: () => plane.isLeader,
    markDown: async (brokerIds, reason) => {
      await actions.markDown(brokerIds, reason);
    },
    markUp: (beat) => actions.markUp(beat),
    logger: logger.child({ component: "failure-detector" }),
  });
  const leaderBalancer = new LeaderBalancer({
    state,
    prober,
    propose: (build) => plane.propose(build),
    isLeader: () => plane.isLeader,
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
  plane.onApplied((_op, effect, before) => {
    for (const topic of effect.changedTopics) notifier.notify(topic, before.get(topic));
  });
  const podWatcher = config.podWatch
    ? createPodWatcher({
        ...config.podWatch,
        logger: logger.child({ component: "pod-watcher" }),
        onBrokerUnavailable: (event) => actions.markPodDown(event),
      })
    : undefined;
  plane.onLeadership((leading) => {
    if (leading) leaderBalancer.start();
    else leaderBalancer.stop();
  });
  plane.onLeadership((leading) => {
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
    fenceKey: () => (plane.isLeader ? plane.leadership.fenceKey : undefined),
    maxMembers: config.maxGroupMembers ?? 1000,
    logger: logger.child({ component: "group-coordinator" }),
    onRebalance: (_group, reason) => groupMetrics.rebalances.inc({ reason }),
  });
  plane.onLeadership((leading) => (leading ? coordinator.startLeading() : coordinator.stopLeading()));
  plane.onApplied((_op, effect) => {
    if (effect.changedTopics.length > 0) coordinator.topicsChanged();
  });
  const router = new WriteRouter({
    selfId: config.id,
    selfUrl: url,
    isLeader: () => plane.isLeader,
    leaderUrl: () => plane.leaderUrl,
    metrics,
    deadlineMs: config.forwardTimeoutMs,
    headers: authHeaders,
    transportOptions,
  });
  try {
    await detector.start();
    await groupView.start();
    await plane.start();
  } catch (err) {
    await detector.stop();
    await groupView.stop();
    await plane.stop().catch(() => undefined);
    await server.close();
    prober.close();
    throw err;
  }
  live.service = createSentinelService({
    id: config.id,
    url,
    plane,
    router,
    heartbeats,
    detector,
    actions,
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
    plane,
    registry,
    detector,
    actions,
    leaderBalancer,
    async stop() {
      leaderBalancer.stop();
      await podWatcher?.stop();
      await server.close();
      await detector.stop();
      coordinator.stopLeading();
      await plane.stop();
      await groupView.stop();
      router.close();
      notifier.close();
      prober.close();
    },
  };
}
