import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import { bearerHeaders } from "../common/bearer.js";
import { canonicalListeners, type ListenerAddress } from "../fsm/listeners.js";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import type { Logger } from "../observability/logger.js";
import {
  createBrokerMetrics,
  createRegistry,
  createRpcMetrics,
  type BrokerMetrics,
} from "../observability/metrics.js";
import { authorization, authorizationHeaderCheck, brokerRules } from "../server/authorization.js";
import { Authenticator, type IdentityOptions } from "../server/identity.js";
import { httpEndpoints } from "../server/http-endpoints.js";
import { errorTranslation, rpcMetrics } from "../server/interceptors.js";
import {
  startRpcServer,
  type CorsPolicy,
  type RpcServerLimits,
  type TlsFiles,
} from "../server/rpc-server.js";
import { TransportPool } from "../server/transport-pool.js";
import {
  OpenFileCache,
  RECORD_MAGIC,
  SyncfsHelper,
  VolumeSync,
  defaultMaxOpenFiles,
  nodeFileSystem,
  type FsyncPolicy,
  type StorageFileSystem,
} from "../storage/index.js";
import { createBrokerService } from "./broker-service.js";
import { consumerGroupLag, type LedPartitionOffsets } from "./consumer-lag.js";
import { LogScrubber } from "./log-scrubber.js";
import { PartitionManager } from "./partition-manager.js";
import { fetchRangeFromLeader } from "./repair-fetch.js";
import { startFetcher, type FollowerOptions } from "./replication-follower.js";
import { FollowerSessions } from "./replication-session-follower.js";
import { SentinelSession } from "./sentinel-session.js";
import { BrokerAcls } from "./topic-acls.js";

export interface BrokerConfig {
  /** Unique broker id (the pod name in Kubernetes). */
  id: string;
  /** Listen host:port (port 0 picks one). */
  address: string;
  /** host:port sentinels, clients and other brokers dial; default 127.0.0.1:<bound port>. */
  advertiseAddress?: string;
  /** More addresses, on named listeners, for clients that name the listener (e.g. outside Kubernetes). */
  advertiseListeners?: ListenerAddress[];
  /** Directory of the partition logs. */
  dataDir: string;
  /** Sentinel URLs (or host:port). */
  sentinels: string[];
  fsync: FsyncPolicy;
  /** fsync period with fsync "interval" (ms). */
  fsyncIntervalMs: number;
  /**
   * fsync "interval": one sync of the data directory's filesystem per interval for every partition
   * ("volume", the default; storage/volume-sync.ts), or an fsync per written partition file ("file").
   */
  intervalSync?: "volume" | "file";
  /** Roll a segment file at this size. */
  segmentBytes: number;
  /** Delete segments whose newest record is older than this (ms); undefined keeps them. */
  retentionMs?: number;
  /** Per-partition size cap (bytes); undefined: none. */
  retentionBytes?: number;
  /** Largest payload accepted (bytes). */
  maxMessageBytes: number;
  /** KeepAlive period (ms). */
  keepAliveIntervalMs: number;
  /** A follower not caught up for this long leaves the in-sync replicas (ms). */
  replicaLagMaxMs: number;
  /** acks=all needs this many in-sync replicas, leader included (default 1). */
  minInsyncReplicas?: number;
  /** Between passes of the scrub of sealed segments (ms; 0: off; default one day). See log-scrubber.ts. */
  scrubIntervalMs?: number;
  /** The scrub's read rate bound (default 4 MiB/s). */
  scrubBytesPerSecond?: number;
  /**
   * The legacy single shared token (compatibility mode): sent to sentinels and leaders when `token` is
   * not set, and its holder is trusted as every component.
   */
  authToken?: string;
  /**
   * Who may call (identity.ts, authorization.ts): the tokens table and whether callers without a
   * credential are trusted. Absent (and no authToken): every caller is trusted (embedding, tests).
   */
  identity?: Pick<IdentityOptions, "tokens" | "allowAnonymous">;
  /** The credential this broker presents to sentinels and leaders (its `broker:<id>` token). */
  token?: string;
  tls?: TlsFiles;
  /** Connection, stream, request-size and slow-client bounds of the RPC server. */
  rpcLimits?: RpcServerLimits;
  /** Browser origins allowed to call this broker directly (CORS); absent: off. */
  cors?: CorsPolicy;
  logger: Logger;
  registry?: Registry;
  /** How often retention runs (ms); default derived from retentionMs (1 s … 60 s). */
  retentionCheckIntervalMs?: number;
  /** Storage file operations (tests inject faults). */
  fileSystem?: StorageFileSystem;
  /** At most this many (group, topic) series of the per-group consumer lag metric (default 200). */
  maxConsumerLagSeries?: number;
  /**
   * Replicate over one ReplicateSession stream per leader and serve it (default true); false behaves as
   * a broker older than ReplicateSession: one Replicate stream per partition, sessions UNIMPLEMENTED.
   */
  replicationSessions?: boolean;
  /**
   * Replicate records as the stored frames, as followers and as leader (default true); false behaves as
   * a broker older than frames: it asks its leaders for records and answers its followers with records.
   */
  replicationFrames?: boolean;
  /**
   * Serve binary gRPC calls over HTTP/2 on the gRPC fast path (server/grpc-fast-path.ts), and follow
   * leaders over the replication session's lean client (client/grpc-stream-client.ts); default true.
   * Off: every call, served or made, goes through connect-node (the benchmarks compare the two).
   */
  grpcFastPath?: boolean;
  /** Extra interceptors placed before the handlers (after authorization). */
  interceptors?: Interceptor[];
  /**
   * Segment files kept open at most (least recently used closed first, reopened on use); default half
   * the process's open-file limit (defaultMaxOpenFiles).
   */
  maxOpenSegmentFiles?: number;
  /** A segment file unused this long is closed, reopened on use (ms; DEFAULT_SEGMENT_FILE_IDLE_TIMEOUT_MS; 0: never). */
  segmentFileIdleTimeoutMs?: number;
  /** Partitions this broker holds at most; roles for more are refused (default DEFAULT_MAX_PARTITIONS). */
  maxPartitions?: number;
  /** Consumer groups one partition keeps offsets for at most (default MAX_GROUPS_PER_PARTITION). */
  maxConsumerGroups?: number;
  /** A SendMessage stream whose client leaves answers unread this long is ended (ms; default 30 s). */
  unreadResponsesTimeoutMs?: number;
}

/** A running broker. */
export interface Broker {
  readonly id: string;
  /** The advertised host:port. */
  readonly address: string;
  /** The other advertised addresses, by listener. */
  readonly listeners: readonly ListenerAddress[];
  readonly port: number;
  readonly registry: Registry;
  readonly partitions: PartitionManager;
  /** Registered with the sentinels and roles applied. */
  readonly ready: boolean;
  stop(): Promise<void>;
}

/** Room for key and headers on top of the largest payload in one stored record. */
export const RECORD_OVERHEAD_BYTES = 64 * 1024;
export const DEFAULT_MAX_CONSUMER_LAG_SERIES = 200;
export const DEFAULT_SEGMENT_FILE_IDLE_TIMEOUT_MS = 60_000;

export async function startBroker(config: BrokerConfig): Promise<Broker> {
  const logger = config.logger;
  const registry = config.registry ?? createRegistry({ component: "broker", broker: config.id });
  const maxLagSeries = config.maxConsumerLagSeries ?? DEFAULT_MAX_CONSUMER_LAG_SERIES;
  // Computed at scrape time over the partitions led then (`partitions` exists before any scrape).
  const metrics = createBrokerMetrics(registry, {
    consumerGroupLag: () => consumerGroupLag(ledOffsets(partitions), maxLagSeries),
    dataDir: path.resolve(config.dataDir),
  });
  metrics.fsyncInterval.set(config.fsync === "interval" ? config.fsyncIntervalMs / 1000 : 0);
  // Outgoing calls (replication, sentinels) present the server certificate and trust the same CA, so
  // a cluster with TLS on (mutual or not) works end to end.
  // Wide receive windows: replication answers carry up to 1 MiB per partition to the follower.
  const pool = new TransportPool({ wideWindows: true, ...(config.tls ? { tls: { ...config.tls } } : {}) });
  const headers = bearerHeaders(config.token ?? config.authToken);
  const dataDir = path.resolve(config.dataDir);
  const openFiles = new OpenFileCache(config.maxOpenSegmentFiles ?? defaultMaxOpenFiles());
  let countedOpens = 0;
  const volumeSync = await startVolumeSync(config, dataDir, metrics, logger);
  const idleResponseMs = Math.max(20, Math.min(500, Math.floor(config.replicaLagMaxMs / 4)));
  // A quarter of the lag bound: an idle follower is refreshed 4 times before it could fall out.
  const refreshMs = Math.max(idleResponseMs, Math.floor(config.replicaLagMaxMs / 4));
  const useSessions = config.replicationSessions ?? true;
  const useFrames = config.replicationFrames ?? true;
  const followerOptions: FollowerOptions = {
    brokerId: config.id,
    transport: (url) => pool.get(url),
    // The replication session's lean client, the follower's half of the gRPC fast path.
    ...(config.grpcFastPath === false ? {} : { sessions: (url: string) => pool.sessions(url) }),
    headers,
    // Several idle answers (a session's come every refreshMs / 2) must go missing before a stall.
    stallTimeoutMs: Math.max(5_000, idleResponseMs * 10, refreshMs * 3),
    frameFormat: useFrames ? RECORD_MAGIC : 0,
    logger: logger.child({ component: "replication" }),
  };
  const followerSessions = new FollowerSessions({
    ...followerOptions,
    onOpen: () => metrics.replicationSessions.inc({ side: "follower" }),
    onClose: () => metrics.replicationSessions.dec({ side: "follower" }),
  });

  const live: { session?: SentinelSession } = {};
  const partitions = new PartitionManager({
    dataDir,
    brokerId: config.id,
    partition: {
      log: {
        fsync: config.fsync,
        fsyncIntervalMs: config.fsyncIntervalMs,
        segmentBytes: config.segmentBytes,
        maxRecordBytes: config.maxMessageBytes + RECORD_OVERHEAD_BYTES,
        ...(config.retentionMs !== undefined ? { retentionMs: config.retentionMs } : {}),
        ...(config.retentionBytes !== undefined ? { retentionBytes: config.retentionBytes } : {}),
        fileSystem: openFiles.fileSystem(config.fileSystem ?? nodeFileSystem),
        logger,
        onFsync: (seconds) => metrics.fsyncDuration.observe(seconds),
        ...(volumeSync ? { volumeSync: volumeSync.volume } : {}),
      },
      replicaLagMaxMs: config.replicaLagMaxMs,
      minInsyncReplicas: config.minInsyncReplicas ?? 1,
      shipUnsynced: config.fsync === "interval",
      replicationTimeoutMs: config.replicaLagMaxMs + 5_000,
      idempotencyWindow: 1024,
      maxProducers: 10_000,
      idempotencyScanRecords: 100_000,
      writable: () => live.session?.inContact ?? false,
      onLogRepair: (event) => metrics.logRepairs.inc({ event }),
      ...(config.maxConsumerGroups !== undefined ? { maxConsumerGroups: config.maxConsumerGroups } : {}),
    },
    startFetcher: (p) => (useSessions ? followerSessions.start(p) : startFetcher(followerOptions, p)),
    absenceGraceMs: 2 * config.keepAliveIntervalMs,
    ...(config.maxPartitions !== undefined ? { maxPartitions: config.maxPartitions } : {}),
    logger: logger.child({ component: "partition" }),
  });

  const ready = () => live.session?.ready ?? false;
  const service = createBrokerService({
    brokerId: config.id,
    partitions,
    maxMessageBytes: config.maxMessageBytes,
    replicationIdleResponseMs: idleResponseMs,
    replicationSessions: useSessions,
    replicationFrames: useFrames,
    replicationRefreshMs: refreshMs,
    ready,
    writable: () => live.session?.inContact ?? false,
    metrics,
    ...(config.unreadResponsesTimeoutMs !== undefined
      ? { unreadResponsesTimeoutMs: config.unreadResponsesTimeoutMs }
      : {}),
  });
  const authenticator = new Authenticator({
    ...(config.identity?.tokens ? { tokens: config.identity.tokens } : {}),
    ...(config.authToken ? { sharedToken: config.authToken } : {}),
    allowAnonymous: config.identity ? config.identity.allowAnonymous === true : !config.authToken,
    certificates: Boolean(config.tls?.caFile),
  });
  // Applications are checked against the topic ACLs the sentinels' KeepAlive answers carry.
  const acls = new BrokerAcls(logger.child({ component: "acls" }));
  const rules = brokerRules(() => acls.current);
  const interceptors: Interceptor[] = [
    errorTranslation(logger),
    rpcMetrics(createRpcMetrics(registry)),
    authorization(authenticator, rules),
    ...(config.interceptors ?? []),
  ];
  const server = await startRpcServer({
    address: config.address,
    routes: (router: ConnectRouter) => {
      router.service(BrokerService, service);
    },
    interceptors,
    // Every broker method: produce, fetch and replication streams are the data plane's hot path.
    fastMethods: config.grpcFastPath === false ? [] : BrokerService.methods,
    // Credentials and the method's rule are checked before the body is read.
    authenticate: authorizationHeaderCheck(authenticator, rules),
    fallback: httpEndpoints({
      ready,
      notReadyReason: "not registered with the sentinels yet",
      registry,
      beforeScrape: () => {
        updateGauges(partitions, metrics, ready());
        metrics.openSegmentFiles.set(openFiles.openCount);
        metrics.segmentFileOpens.inc(openFiles.opens - countedOpens);
        countedOpens = openFiles.opens;
      },
    }),
    // A SendMessage request carries a batch of records, each up to the payload limit.
    readMaxBytes: Math.max(16 * 1024 * 1024, 4 * (config.maxMessageBytes + RECORD_OVERHEAD_BYTES)),
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.rpcLimits ? { limits: config.rpcLimits } : {}),
    ...(config.cors ? { cors: config.cors } : {}),
    logger,
  });
  const host = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  const address = config.advertiseAddress || `${host}:${server.port}`;
  const listeners = canonicalListeners(config.advertiseListeners ?? []);

  const session = new SentinelSession({
    brokerId: config.id,
    address,
    listeners,
    sentinels: config.sentinels,
    transport: (url) => pool.get(url),
    headers,
    intervalMs: config.keepAliveIntervalMs,
    topicsOnDisk: () => partitions.topicsOnDisk(),
    onAssignments: (assignments, appliedId, digest) => partitions.reconcile(assignments, appliedId, digest),
    heldAssignmentsDigest: () => partitions.heldAssignmentsDigest,
    acls,
    refusedLeaderships: () =>
      partitions
        .all()
        .filter((p) => p.refusesLeadership)
        .map((p) => ({ topic: p.topic, partition: p.partition })),
    logger: logger.child({ component: "sentinel-session" }),
  });
  live.session = session;
  session.start();

  const scrubIntervalMs = config.scrubIntervalMs ?? 86_400_000;
  const scrubber =
    scrubIntervalMs > 0
      ? new LogScrubber({
          partitions: () => partitions.all(),
          intervalMs: scrubIntervalMs,
          firstPassDelayMs: Math.min(scrubIntervalMs, 60_000),
          bytesPerSecond: config.scrubBytesPerSecond ?? 4 * 1024 * 1024,
          fetchRange: (p, damage) =>
            fetchRangeFromLeader({ transport: (url) => pool.get(url), headers }, p, damage),
          onVerified: (bytes) => metrics.scrubBytes.inc(bytes),
          logger: logger.child({ component: "scrub" }),
        })
      : undefined;
  scrubber?.start();

  const tickMs = Math.max(20, Math.min(1_000, Math.floor(config.replicaLagMaxMs / 4)));
  const ticker = setInterval(() => partitions.tick(), tickMs);
  ticker.unref();
  const retentionEvery =
    config.retentionCheckIntervalMs ??
    (config.retentionMs !== undefined
      ? Math.max(1_000, Math.min(60_000, Math.floor(config.retentionMs / 10)))
      : 60_000);
  let retentionRunning = false;
  const retention = setInterval(() => {
    if (retentionRunning) return;
    retentionRunning = true;
    void enforceRetention(partitions, logger).finally(() => (retentionRunning = false));
  }, retentionEvery);
  retention.unref();
  // One sweep for every partition (no timer per partition): quiet partitions give their descriptors back.
  const idleFileMs = config.segmentFileIdleTimeoutMs ?? DEFAULT_SEGMENT_FILE_IDLE_TIMEOUT_MS;
  const idleFiles =
    idleFileMs > 0
      ? setInterval(() => openFiles.closeIdle(idleFileMs), Math.max(1_000, Math.floor(idleFileMs / 2)))
      : undefined;
  idleFiles?.unref();
  logger.info(
    {
      address,
      ...(listeners.length > 0 ? { listeners: listeners.map((l) => `${l.name}=${l.address}`) } : {}),
      dataDir,
      sentinels: config.sentinels,
      fsync: config.fsync,
    },
    "broker started",
  );

  let stopping: Promise<void> | undefined;
  return {
    id: config.id,
    address,
    listeners,
    port: server.port,
    registry,
    partitions,
    get ready() {
      return ready();
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(ticker);
        clearInterval(retention);
        clearInterval(idleFiles);
        await scrubber?.stop();
        await session.stop();
        await server.close();
        await partitions.close();
        await volumeSync?.close();
        pool.close();
        logger.info("broker stopped");
      })();
      return stopping;
    },
  };
}

/**
 * fsync "interval" with --interval-sync volume: the helper that syncs the data directory's filesystem,
 * and the one sync per interval the partition logs join. Undefined when not asked for, or when this
 * machine cannot sync a filesystem (no `sh`, a `sync` without --file-system): per-file fsyncs then.
 */
async function startVolumeSync(
  config: BrokerConfig,
  dataDir: string,
  metrics: BrokerMetrics,
  logger: Logger,
): Promise<{ volume: VolumeSync; close: () => Promise<void> } | undefined> {
  if (config.fsync !== "interval" || (config.intervalSync ?? "volume") !== "volume") return undefined;
  await mkdir(dataDir, { recursive: true });
  let helper: SyncfsHelper;
  try {
    helper = await SyncfsHelper.start(dataDir);
  } catch (err) {
    logger.warn(
      { err },
      "cannot sync the data directory's filesystem; each partition file is fsynced instead",
    );
    return undefined;
  }
  const volume = new VolumeSync({
    sync: () => helper.sync(),
    intervalMs: config.fsyncIntervalMs,
    logger: logger.child({ component: "storage" }),
    onSync: (seconds) => metrics.volumeSyncDuration.observe(seconds),
  });
  return {
    volume,
    close: async () => {
      await volume.close();
      helper.close();
    },
  };
}

async function enforceRetention(partitions: PartitionManager, logger: Logger): Promise<void> {
  for (const p of partitions.all()) {
    if (p.closed) continue;
    try {
      const result = await p.log.enforceRetention();
      if (result.deletedSegments > 0) {
        logger.info({ partition: p.key, ...result }, "retention deleted old segments");
      }
    } catch (err) {
      if (!p.closed) logger.warn({ partition: p.key, err: err }, "retention failed");
    }
  }
}

function* ledOffsets(partitions: PartitionManager): Generator<LedPartitionOffsets> {
  for (const p of partitions.all()) {
    if (p.role !== "leader" || p.closed) continue;
    yield {
      topic: p.topic,
      highWatermark: p.highWatermark,
      logStartOffset: p.log.logStartOffset,
      committed: p.offsets.committed(),
    };
  }
}

function updateGauges(
  partitions: PartitionManager,
  metrics: ReturnType<typeof createBrokerMetrics>,
  ready: boolean,
): void {
  let led = 0;
  let followed = 0;
  let under = 0;
  let underMinInsync = 0;
  let inSync = 0;
  let lag = 0;
  let consumerLag = 0;
  let bytes = 0;
  let damaged = 0;
  let unsyncedMs = 0;
  const now = performance.now();
  for (const p of partitions.all()) {
    unsyncedMs = Math.max(unsyncedMs, p.log.unsyncedAgeMs(now));
    const stats = p.stats();
    if (p.damaged) damaged++;
    if (stats.role === "leader") led++;
    if (stats.role === "follower") followed++;
    if (stats.underReplicated) under++;
    if (stats.underMinInsync) underMinInsync++;
    inSync += stats.inSyncReplicas;
    lag = Math.max(lag, stats.replicationLag);
    consumerLag += stats.consumerLag;
    bytes += stats.logBytes;
  }
  metrics.partitionsLed.set(led);
  metrics.partitionsFollowed.set(followed);
  metrics.underReplicatedPartitions.set(under);
  metrics.underMinInsyncPartitions.set(underMinInsync);
  metrics.inSyncReplicas.set(inSync);
  metrics.replicationLagMessages.set(lag);
  metrics.consumerLagMessages.set(consumerLag);
  metrics.logBytes.set(bytes);
  metrics.ready.set(ready ? 1 : 0);
  metrics.damagedPartitions.set(damaged);
  metrics.oldestUnsyncedWrite.set(unsyncedMs / 1000);
}
