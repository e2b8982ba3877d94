import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "@connectrpc/connect";
import type { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { sendOnce, startBrokerProcess, type BrokerProcess } from "./broker-process.js";
import { startEtcd, type TestEtcd } from "./etcd.js";
import { freePort } from "./ports.js";
import { startSentinelProcess, type SentinelProcess } from "./sentinel-process.js";
import { waitFor } from "./wait.js";

/**
 * A whole Goulette cluster of real processes on loopback, for integration, chaos and SDK tests:
 * one real etcd, N `goulette sentinel` processes and M `goulette broker` processes. Broker data lives
 * under one temp dir (`<root>/brokers/<id>`), so a broker can be killed (SIGKILL, or SIGSTOP to freeze
 * it) and restarted on the same data and the same address; `stop()` kills everything and removes it.
 *
 *   const cluster = await startCluster({ brokers: 3, sentinelArgs: ["--heartbeat-ttl", "3"] });
 *   const topic = await cluster.createTopic("orders", { partitions: 1, replicas: 3 });
 *   await cluster.killBroker(topic.partitions[0].leader);
 *   await cluster.restartBroker("b1");
 *   await cluster.stop();
 *
 * Broker ids are b1…bM and sentinel ids s1…sN. Defaults keep failure detection fast: sentinels get
 * `--election-ttl 2`, brokers `--keepalive-interval 300 --replica-lag-max 3000`; extra flags are
 * appended (a flag given twice takes the last value).
 */
export interface ClusterOptions {
  /** Sentinel processes (default 1). */
  sentinels?: number;
  /** Broker processes (default 3). */
  brokers?: number;
  /** Extra flags for every sentinel, e.g. ["--heartbeat-ttl", "3"]. */
  sentinelArgs?: string[];
  /** Extra flags for every broker, e.g. ["--fsync", "always"]. */
  brokerArgs?: string[];
  /** Extra flags for one broker (after brokerArgs). */
  brokerArgsFor?: (id: string) => string[];
  /** Extra environment of every broker, e.g. { GOULETTE_FSYNC: "interval" }. */
  brokerEnv?: NodeJS.ProcessEnv;
  /** Extra environment of every sentinel. */
  sentinelEnv?: NodeJS.ProcessEnv;
  /** How long a starting sentinel or broker may take to be ready (default 20 s). */
  readyTimeoutMs?: number;
  /** Node flags of every sentinel and broker process, e.g. ["--import", preload]. */
  nodeArgs?: string[];
  /** Log level of every process (default "warn"; "info" helps when debugging). */
  logLevel?: string;
  /** Headers of the helper's own reads (layout, createTopic) where the cluster needs a credential. */
  helperHeaders?: Record<string, string>;
}

export interface TestCluster {
  readonly etcd: TestEtcd;
  /** The temp dir holding every broker's data. */
  readonly root: string;
  /** Every sentinel URL (live or not), for --sentinels and clients. */
  readonly sentinelUrls: string[];
  /** Current process of each sentinel, by id. */
  readonly sentinels: ReadonlyMap<string, SentinelProcess>;
  /** Current process of each broker, by id. */
  readonly brokers: ReadonlyMap<string, BrokerProcess>;
  broker(id: string): BrokerProcess;
  /** The address (host:port) of a broker, stable across restarts. */
  brokerAddress(id: string): string;
  /** Ids of the brokers whose process is running. */
  liveBrokers(): string[];
  /** A client of a live sentinel (any of them answers; writes are forwarded to the leader). */
  sentinel(): Client<typeof SentinelService>;
  /** Creates a topic through GetBrokers and waits until every replica has taken its role. */
  createTopic(topic: string, shape: { partitions: number; replicas: number }): Promise<TopicLayout>;
  /** The current layout of a topic (as the sentinels see it). */
  layout(topic: string): Promise<TopicLayout>;
  /** Kills a broker (SIGKILL by default; SIGTERM for a clean shutdown). Its data stays. */
  killBroker(id: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a broker (again) on its data dir and address; waits until it is ready. */
  restartBroker(id: string, extraArgs?: string[]): Promise<BrokerProcess>;
  killSentinel(id: string, signal?: NodeJS.Signals): Promise<void>;
  restartSentinel(id: string): Promise<SentinelProcess>;
  /** Kills every process, stops etcd and removes the temp dir. */
  stop(): Promise<void>;
}

export interface TopicLayout {
  topic: string;
  partitions: { partition: number; leader: string; replicas: string[]; epoch: bigint }[];
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const sentinelCount = options.sentinels ?? 1;
  const brokerCount = options.brokers ?? 3;
  const logLevel = options.logLevel ?? "warn";
  const root = await mkdtemp(path.join(tmpdir(), "goulette-cluster-"));
  const etcd = await startEtcd();
  const sentinelIds = Array.from({ length: sentinelCount }, (_, i) => `s${i + 1}`);
  const brokerIds = Array.from({ length: brokerCount }, (_, i) => `b${i + 1}`);
  const sentinelPorts = new Map<string, number>();
  const brokerPorts = new Map<string, number>();
  for (const id of sentinelIds) sentinelPorts.set(id, await freePort());
  for (const id of brokerIds) brokerPorts.set(id, await freePort());
  const sentinelUrls = sentinelIds.map((id) => `http://127.0.0.1:${sentinelPorts.get(id)}`);
  const sentinels = new Map<string, SentinelProcess>();
  const brokers = new Map<string, BrokerProcess>();

  const startSentinel = async (id: string) => {
    const s = await startSentinelProcess({
      id,
      etcdEndpoint: etcd.endpoint,
      port: sentinelPorts.get(id) as number,
      ...(options.sentinelEnv ? { env: options.sentinelEnv } : {}),
      ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
      ...(options.readyTimeoutMs ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
      args: ["--election-ttl", "2", "--log-level", logLevel, ...(options.sentinelArgs ?? [])],
    });
    sentinels.set(id, s);
    return s;
  };
  const startBroker = async (id: string, extraArgs: string[] = []) => {
    const b = await startBrokerProcess({
      id,
      sentinels: sentinelUrls,
      dataDir: path.join(root, "brokers", id),
      port: brokerPorts.get(id) as number,
      ...(options.brokerEnv ? { env: options.brokerEnv } : {}),
      ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
      ...(options.readyTimeoutMs ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
      args: [
        "--keepalive-interval",
        "300",
        "--replica-lag-max",
        "3000",
        "--log-level",
        logLevel,
        ...(options.brokerArgs ?? []),
        ...(options.brokerArgsFor?.(id) ?? []),
        ...extraArgs,
      ],
    });
    brokers.set(id, b);
    return b;
  };
  const helperCall = options.helperHeaders ? { headers: options.helperHeaders } : {};
  const known = (id: string, map: Map<string, unknown>, what: string) => {
    if (!map.has(id)) throw new Error(`no ${what} '${id}' in this cluster`);
  };

  const cluster: TestCluster = {
    etcd,
    root,
    sentinelUrls,
    sentinels,
    brokers,
    broker(id) {
      const b = brokers.get(id);
      if (!b) throw new Error(`no broker '${id}' in this cluster`);
      return b;
    },
    brokerAddress(id) {
      known(id, brokerPorts, "broker");
      return `127.0.0.1:${brokerPorts.get(id)}`;
    },
    liveBrokers() {
      return [...brokers.values()].filter((b) => b.alive).map((b) => b.id);
    },
    sentinel() {
      const live = [...sentinels.values()].find(
        (s) => s.process.exitCode === null && s.process.signalCode === null,
      );
      if (!live) throw new Error("no sentinel is running");
      return live.client;
    },
    async layout(topic) {
      const res = await cluster.sentinel().getBrokers({ topic }, helperCall);
      return {
        topic,
        partitions: res.partitions.map((p) => ({
          partition: p.partition,
          leader: p.leader,
          replicas: [...p.replicas],
          epoch: p.epoch,
        })),
      };
    },
    async createTopic(topic, shape) {
      await cluster
        .sentinel()
        .getBrokers({ topic, partitions: shape.partitions, replicaCount: shape.replicas }, helperCall);
      const layout = await cluster.layout(topic);
      // The sentinel pushes roles right after the assignment; wait until every replica has taken its role.
      // A leader answers GetCommittedOffset; a follower refuses a produce naming that leader (nothing is
      // written), while a broker without the role yet answers UNKNOWN_PARTITION.
      await waitFor(
        async () => {
          for (const p of layout.partitions) {
            const res = await cluster
              .broker(p.leader)
              .client.getCommittedOffset(
                { consumerGroup: "cluster-helper-probe", topic, partition: p.partition },
                helperCall,
              );
            if (res.offset !== -1n) return false;
            for (const id of p.replicas.filter((r) => r !== p.leader)) {
              const probe = await sendOnce(cluster.broker(id).client, {
                topic,
                partition: p.partition,
                records: [{ messageId: 0n, payload: new Uint8Array(0) }],
              });
              const ack = probe.acks[0];
              if (ack?.error !== ProduceError.NOT_LEADER || ack.leaderId !== p.leader) return false;
            }
          }
          return true;
        },
        { timeoutMs: 10_000, what: `the replicas of ${topic} to take their roles` },
      );
      return layout;
    },
    async killBroker(id, signal = "SIGKILL") {
      await cluster.broker(id).kill(signal);
    },
    async restartBroker(id, extraArgs) {
      known(id, brokerPorts, "broker");
      await brokers.get(id)?.kill();
      return startBroker(id, extraArgs);
    },
    async killSentinel(id, signal = "SIGKILL") {
      known(id, sentinelPorts, "sentinel");
      await sentinels.get(id)?.kill(signal);
    },
    async restartSentinel(id) {
      known(id, sentinelPorts, "sentinel");
      await sentinels.get(id)?.kill();
      return startSentinel(id);
    },
    async stop() {
      await Promise.all([...brokers.values()].map((b) => b.kill()));
      await Promise.all([...sentinels.values()].map((s) => s.kill()));
      await etcd.stop();
      await rm(root, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(sentinelIds.map((id) => startSentinel(id)));
    await Promise.all(brokerIds.map((id) => startBroker(id)));
    // A broker is ready once the sentinel leader registered it; a follower sentinel (the one a test may
    // ask first) counts it as healthy only once it applied that too. Placement checks the count.
    await waitFor(
      async () => {
        for (const s of sentinels.values()) {
          const status = await s.client.getClusterStatus({}, helperCall);
          const healthy = new Set(
            status.brokers.filter((b) => b.status === BrokerStatus.HEALTHY).map((b) => b.brokerId),
          );
          if (!brokerIds.every((id) => healthy.has(id))) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, what: "every sentinel to count every broker as healthy" },
    );
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}
