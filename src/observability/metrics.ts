/**
 * Every Prometheus metric of sentinels and brokers (names listed in docs/operations.md). Longer than
 * ~400 lines because it is a catalogue — one declaration with its help text and labels per metric —
 * kept in one file so names and labels are reviewed together against the docs, the dashboard and the
 * alert rules.
 */
import { statfs } from "node:fs/promises";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { WeightedHistogram } from "./weighted-histogram.js";

/** A registry with Node process metrics; one per process (tests create several in one process). */
export function createRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Per-RPC metrics shared by sentinels and brokers: `service`, `method`, `code` labels only. */
export interface RpcMetrics {
  requests: Counter<"service" | "method" | "code">;
  duration: Histogram<"service" | "method" | "code">;
}

export function createRpcMetrics(registry: Registry): RpcMetrics {
  return {
    requests: new Counter({
      name: "goulette_rpc_requests_total",
      help: "RPCs served, by service, method and Connect code (ok when successful)",
      labelNames: ["service", "method", "code"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "goulette_rpc_duration_seconds",
      // A stream that long-polls for minutes would swamp the buckets, so streams are timed until they
      // open; the broker times what flows through them (produce latency, fetch latency).
      help:
        "RPC handling time in seconds: unary calls until the response is ready; streaming calls until " +
        "the handler has opened the stream (not until it ends; see goulette_broker_produce_latency_seconds " +
        "and goulette_broker_fetch_latency_seconds)",
      labelNames: ["service", "method", "code"],
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
      ],
      registers: [registry],
    }),
  };
}

/** The sentinel's metrics (names listed in docs/operations.md). */
export interface SentinelMetrics {
  isLeader: Gauge;
  ringBrokers: Gauge;
  ringVirtualNodes: Gauge;
  topics: Gauge;
  brokers: Gauge<"status">;
  oplogHeadId: Gauge;
  oplogAppliedId: Gauge;
  replayLagOps: Gauge;
  replayLagSeconds: Gauge;
  replayDuration: Histogram;
  leaderChanges: Counter;
  leadershipBalanceMoves: Counter;
  forwarded: Counter<"method" | "outcome">;
  appended: Counter<"type">;
  appendDuration: Histogram;
  snapshots: Counter;
  snapshotId: Gauge;
  etcdUp: Gauge;
  ready: Gauge;
  suspectVerdicts: Counter<"reason">;
  admissionRejected: Counter;
}

export function createSentinelMetrics(registry: Registry): SentinelMetrics {
  const registers = [registry];
  return {
    isLeader: new Gauge({
      name: "goulette_sentinel_is_leader",
      help: "1 when this sentinel is the leader",
      registers,
    }),
    ringBrokers: new Gauge({
      name: "goulette_sentinel_ring_brokers",
      help: "Brokers in the hash ring",
      registers,
    }),
    ringVirtualNodes: new Gauge({
      name: "goulette_sentinel_ring_virtual_nodes",
      help: "Virtual nodes in the hash ring",
      registers,
    }),
    topics: new Gauge({ name: "goulette_sentinel_topics", help: "Topics with an assignment", registers }),
    brokers: new Gauge({
      name: "goulette_sentinel_brokers",
      help: "Registered brokers by status (healthy, down)",
      labelNames: ["status"],
      registers,
    }),
    oplogHeadId: new Gauge({
      name: "goulette_sentinel_oplog_head_id",
      help: "Id of the newest operation in the log (as last seen by this sentinel)",
      registers,
    }),
    oplogAppliedId: new Gauge({
      name: "goulette_sentinel_oplog_applied_id",
      help: "Id of the newest operation this sentinel has applied",
      registers,
    }),
    replayLagOps: new Gauge({
      name: "goulette_sentinel_replay_lag_ops",
      help: "Operations in the log not yet applied here (head - applied)",
      registers,
    }),
    replayLagSeconds: new Gauge({
      name: "goulette_sentinel_replay_lag_seconds",
      help: "Age of the newest applied operation when a newer one exists, else 0",
      registers,
    }),
    replayDuration: new Histogram({
      name: "goulette_sentinel_replay_duration_seconds",
      help: "Time to recover state from snapshot + operation log",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    leaderChanges: new Counter({
      name: "goulette_sentinel_leader_changes_total",
      help: "Times this sentinel became or stopped being leader",
      registers,
    }),
    leadershipBalanceMoves: new Counter({
      name: "goulette_sentinel_leadership_balance_moves_total",
      help: "Partitions whose leadership the leader handed to an in-sync replica to even out leaders within topics",
      registers,
    }),
    forwarded: new Counter({
      name: "goulette_sentinel_forwarded_total",
      help: "Write requests forwarded to the leader, by method and outcome",
      labelNames: ["method", "outcome"],
      registers,
    }),
    appended: new Counter({
      name: "goulette_sentinel_operations_appended_total",
      help: "Operations this sentinel appended as leader, by type",
      labelNames: ["type"],
      registers,
    }),
    appendDuration: new Histogram({
      name: "goulette_sentinel_append_duration_seconds",
      help: "Time of one fenced append transaction",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    snapshots: new Counter({
      name: "goulette_sentinel_snapshots_total",
      help: "Snapshots written",
      registers,
    }),
    snapshotId: new Gauge({
      name: "goulette_sentinel_snapshot_id",
      help: "Operation id covered by the newest snapshot this sentinel knows",
      registers,
    }),
    etcdUp: new Gauge({
      name: "goulette_sentinel_etcd_up",
      help: "1 when the last etcd call succeeded",
      registers,
    }),
    ready: new Gauge({ name: "goulette_sentinel_ready", help: "1 when recovered and serving", registers }),
    suspectVerdicts: new Counter({
      name: "goulette_failure_verdicts_suspect_total",
      help:
        "Times the leader held a 'broker down' verdict because the evidence was suspect, by reason " +
        "(probe-answers, sentinel-lagging, etcd-slow, mass-verdict)",
      labelNames: ["reason"],
      registers,
    }),
    admissionRejected: new Counter({
      name: "goulette_sentinel_topic_creations_rejected_total",
      help: "Topic creations refused with ResourceExhausted because the leader's creation queue was full",
      registers,
    }),
  };
}

/** The `error` label values of goulette_broker_produce_errors_total. */
export const PRODUCE_ERROR_KINDS = [
  "unknown_partition",
  "message_too_large",
  "invalid",
  "not_leader",
  "not_enough_replicas",
  "storage",
  "out_of_order",
] as const;
export type ProduceErrorKind = (typeof PRODUCE_ERROR_KINDS)[number];

/** The `acks` label values of goulette_broker_produce_latency_seconds (unspecified counts as leader). */
export type AcksLabel = "leader" | "all";
/** The `stream` label values of goulette_broker_fetch_latency_seconds: FetchMessages or PullMessage. */
export type ReadStreamLabel = "fetch" | "pull";

/**
 * The broker's metrics. Labels are bounded: no partition or message id; `group` and `topic` only on the
 * per-group consumer lag, whose series are capped (--max-consumer-lag-series); `acks`, `stream` and
 * `error` take the few values listed above.
 */
export interface BrokerMetrics {
  messagesIn: Counter;
  bytesIn: Counter;
  messagesOut: Counter;
  bytesOut: Counter;
  produceErrors: Counter<"error">;
  /**
   * Log damage found at recovery that was not a torn tail or by the scrub of sealed segments
   * (event=detected), and such damage repaired by fetching the records again from a replica (event=repaired).
   */
  logRepairs: Counter<"event">;
  /** Partitions whose log holds damage not repaired yet: they refuse to lead. */
  damagedPartitions: Gauge;
  /** Bytes of sealed segments the scrub read and verified. */
  scrubBytes: Counter;
  /** Per message, from the request reaching the broker to its acknowledgement (successful acks only). */
  produceLatency: WeightedHistogram<"acks">;
  /**
   * The same messages' time split by where it went: `append` (until the leader stored them) and, with
   * acks=all, `replicate` (then until the high watermark covered them).
   */
  produceStage: WeightedHistogram<"stage">;
  /** Per batch of a FetchMessages or PullMessage stream, the long-poll wait left out. */
  fetchLatency: Histogram<"stream">;
  fsyncDuration: Histogram;
  volumeSyncDuration: Histogram;
  oldestUnsyncedWrite: Gauge;
  fsyncInterval: Gauge;
  partitionsLed: Gauge;
  partitionsFollowed: Gauge;
  /** ReplicateSession streams open now: side="leader" served, side="follower" opened to leaders. */
  replicationSessions: Gauge<"side">;
  /** Per-partition Replicate streams served now (followers on brokers older than ReplicateSession). */
  replicationStreams: Gauge;
  /**
   * Records shipped to followers, by encoding: "frames" (stored frames as they are) or "records" (one
   * ReplicatedRecord each, for followers or leaders that predate frames).
   */
  replicatedRecords: Counter<"encoding">;
  /** Segment files open now (bounded by --max-open-segment-files), and how often one was (re)opened. */
  openSegmentFiles: Gauge;
  segmentFileOpens: Counter;
  underReplicatedPartitions: Gauge;
  underMinInsyncPartitions: Gauge;
  inSyncReplicas: Gauge;
  replicationLagMessages: Gauge;
  consumerLagMessages: Gauge;
  /** Per (group, topic), computed at scrape time from BrokerMetricsOptions.consumerGroupLag. */
  consumerGroupLagMessages: Gauge<"group" | "topic">;
  logBytes: Gauge;
  /** statfs of the data directory at scrape time (when BrokerMetricsOptions.dataDir is given). */
  diskAvailableBytes: Gauge;
  diskSizeBytes: Gauge;
  ready: Gauge;
}

export interface BrokerMetricsOptions {
  /**
   * The consumer lag series at scrape time, already bounded in number (the caller keeps the cardinality
   * of `group` bounded; see consumerGroupLag in src/broker/consumer-lag.ts).
   */
  consumerGroupLag?: () => Iterable<{ group: string; topic: string; lag: number }>;
  /** The data directory, whose filesystem the disk gauges describe. */
  dataDir?: string;
}

export function createBrokerMetrics(registry: Registry, options: BrokerMetricsOptions = {}): BrokerMetrics {
  const registers = [registry];
  const groupLag = options.consumerGroupLag;
  const dataDir = options.dataDir;
  const produceErrors = new Counter({
    name: "goulette_broker_produce_errors_total",
    help: "Produce acks with an error, by error kind",
    labelNames: ["error"],
    registers,
  });
  // Every kind exported from the start: rate() cannot see the first increment of a series that appears
  // with it, and the first refused acks=all is the one an alert should not miss.
  for (const error of PRODUCE_ERROR_KINDS) produceErrors.inc({ error }, 0);
  const replicationSessions = new Gauge({
    name: "goulette_broker_replication_sessions",
    help:
      "ReplicateSession streams open now, one per (follower, leader) broker pair: side=leader served to " +
      "followers, side=follower opened to leaders",
    labelNames: ["side"],
    registers,
  });
  for (const side of ["leader", "follower"]) replicationSessions.set({ side }, 0);
  const replicatedRecords = new Counter({
    name: "goulette_broker_replicated_records_total",
    help:
      "Records shipped to followers, by encoding: frames (stored frames as they are) or records (for " +
      "brokers that predate frames, or run with --no-replication-frames)",
    labelNames: ["encoding"],
    registers,
  });
  for (const encoding of ["frames", "records"]) replicatedRecords.inc({ encoding }, 0);
  const logRepairs = new Counter({
    name: "goulette_broker_log_repairs_total",
    help:
      "Partition log damage found at recovery beyond a torn tail or by the scrub of sealed segments " +
      "(event=detected), and repaired from a replica (event=repaired)",
    labelNames: ["event"],
    registers,
  });
  for (const event of ["detected", "repaired"]) logRepairs.inc({ event }, 0);
  return {
    logRepairs,
    damagedPartitions: new Gauge({
      name: "goulette_broker_damaged_partitions",
      help:
        "Partitions whose log holds damage not repaired from a replica yet (they refuse to lead; a sole " +
        "replica stays unavailable)",
      registers,
    }),
    scrubBytes: new Counter({
      name: "goulette_broker_scrub_bytes_total",
      help: "Bytes of sealed segments read again and verified by the background scrub",
      registers,
    }),
    messagesIn: new Counter({
      name: "goulette_broker_messages_in_total",
      help: "Messages appended as partition leader",
      registers,
    }),
    bytesIn: new Counter({
      name: "goulette_broker_bytes_in_total",
      help: "Payload bytes appended as partition leader",
      registers,
    }),
    messagesOut: new Counter({
      name: "goulette_broker_messages_out_total",
      help: "Messages sent to consumers",
      registers,
    }),
    bytesOut: new Counter({
      name: "goulette_broker_bytes_out_total",
      help: "Payload bytes sent to consumers",
      registers,
    }),
    produceErrors,
    produceLatency: new WeightedHistogram({
      name: "goulette_broker_produce_latency_seconds",
      help:
        "Per message: from its produce request reaching the broker to its acknowledgement (acks=all: " +
        "replicated to the in-sync replicas), by acks mode; acknowledgements with an error are left out",
      labelNames: ["acks"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    produceStage: new WeightedHistogram({
      name: "goulette_broker_produce_stage_seconds",
      help:
        "Per acknowledged message, its produce latency split by stage: append (from its request reaching " +
        "the broker until the leader stored it, fsync included with --fsync always) and replicate (acks=all " +
        "only: then until every in-sync replica had it)",
      labelNames: ["stage"],
      // From 100 µs: an append to the page cache takes tens of µs, so coarser buckets would hide it.
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
      ],
      registers,
    }),
    fetchLatency: new Histogram({
      name: "goulette_broker_fetch_latency_seconds",
      help:
        "Per batch of a FetchMessages (stream=fetch) or PullMessage (stream=pull) stream: from the broker " +
        "starting on the batch (the stream asks for it, or new data wakes a caught-up stream) to handing it " +
        "to the stream; the long-poll wait for new data is left out",
      labelNames: ["stream"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    fsyncDuration: new Histogram({
      name: "goulette_broker_fsync_duration_seconds",
      help: "Duration of one fsync of a partition log",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    volumeSyncDuration: new Histogram({
      name: "goulette_broker_volume_sync_duration_seconds",
      help:
        "Duration of one sync of the data directory's filesystem (--fsync interval with --interval-sync " +
        "volume: one per interval covers every partition written in it)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    oldestUnsyncedWrite: new Gauge({
      name: "goulette_broker_oldest_unsynced_write_seconds",
      help:
        "How long the oldest write not fsynced yet has waited, over every partition log of this broker " +
        "(0 when everything is on disk): with --fsync interval it stays below the interval while the disk " +
        "keeps up, and bounds what a machine crash would lose",
      registers,
    }),
    fsyncInterval: new Gauge({
      name: "goulette_broker_fsync_interval_seconds",
      help: "The --fsync-interval in force (0 with --fsync always, where every write waits for its fsync)",
      registers,
    }),
    partitionsLed: new Gauge({
      name: "goulette_broker_partitions_led",
      help: "Partitions this broker leads",
      registers,
    }),
    partitionsFollowed: new Gauge({
      name: "goulette_broker_partitions_followed",
      help: "Partitions this broker follows",
      registers,
    }),
    replicationSessions,
    openSegmentFiles: new Gauge({
      name: "goulette_broker_open_segment_files",
      help: "Segment files open now (at most --max-open-segment-files unless that many are in use at once)",
      registers,
    }),
    segmentFileOpens: new Counter({
      name: "goulette_broker_segment_file_opens_total",
      help: "Segment files (re)opened since the broker started; climbing under steady load: raise --max-open-segment-files",
      registers,
    }),
    replicationStreams: new Gauge({
      name: "goulette_broker_replication_streams",
      help: "Per-partition Replicate streams served now (followers older than ReplicateSession)",
      registers,
    }),
    replicatedRecords,
    underReplicatedPartitions: new Gauge({
      name: "goulette_broker_under_replicated_partitions",
      help: "Led partitions whose in-sync replica set is smaller than the replica list",
      registers,
    }),
    underMinInsyncPartitions: new Gauge({
      name: "goulette_broker_under_min_insync_partitions",
      help:
        "Led partitions whose in-sync replica set (leader included) is smaller than --min-insync-replicas: " +
        "acks=all is refused on them",
      registers,
    }),
    inSyncReplicas: new Gauge({
      name: "goulette_broker_in_sync_replicas",
      help: "Sum over the partitions this broker leads of their in-sync replica set size (leader included)",
      registers,
    }),
    replicationLagMessages: new Gauge({
      name: "goulette_broker_replication_lag_messages",
      help: "Largest follower lag (leader log end - follower fetch offset) over the partitions this broker leads",
      registers,
    }),
    consumerLagMessages: new Gauge({
      name: "goulette_broker_consumer_lag_messages",
      help: "Sum over consumer groups and led partitions of (high watermark - committed offset)",
      registers,
    }),
    consumerGroupLagMessages: new Gauge({
      name: "goulette_broker_consumer_group_lag_messages",
      help:
        "Sum over the partitions of the topic this broker leads of (high watermark - committed offset) of " +
        'the group; bounded by --max-consumer-lag-series, the rest summed into group="_other"',
      labelNames: ["group", "topic"],
      registers,
      collect() {
        if (groupLag === undefined) return;
        this.reset();
        // inc, not set: a group really named "_other" adds up with the overflow series of its topic.
        for (const { group, topic, lag } of groupLag()) this.inc({ group, topic }, lag);
      },
    }),
    logBytes: new Gauge({
      name: "goulette_broker_log_bytes",
      help: "Bytes on disk in partition logs",
      registers,
    }),
    diskAvailableBytes: new Gauge({
      name: "goulette_broker_disk_available_bytes",
      help: "Bytes available to the broker on the filesystem holding --data-dir (statfs at scrape time)",
      registers,
      async collect() {
        const fs = dataDir === undefined ? undefined : await statfsOrUndefined(dataDir);
        if (fs) this.set(fs.bavail * fs.bsize);
      },
    }),
    diskSizeBytes: new Gauge({
      name: "goulette_broker_disk_size_bytes",
      help: "Size in bytes of the filesystem holding --data-dir (statfs at scrape time)",
      registers,
      async collect() {
        const fs = dataDir === undefined ? undefined : await statfsOrUndefined(dataDir);
        if (fs) this.set(fs.blocks * fs.bsize);
      },
    }),
    ready: new Gauge({
      name: "goulette_broker_ready",
      help: "1 when registered with the sentinels and serving",
      registers,
    }),
  };
}

/** statfs, or undefined when it fails: the gauges then keep their last value rather than report 0 free. */
async function statfsOrUndefined(
  dir: string,
): Promise<{ bavail: number; blocks: number; bsize: number } | undefined> {
  try {
    return await statfs(dir);
  } catch {
    return undefined;
  }
}
