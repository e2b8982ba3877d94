import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { pullMessages } from "../helpers/broker-process.js";
import type { TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";
import { ChaosConsumer, leaderOf, type ChaosProducer } from "./workload.js";

/**
 * The cluster's etcd as a process the chaos suite can kill and start again on the same data dir and
 * ports (test/helpers/etcd.ts only pauses it): the new process reuses the first one's command line.
 */
export class EtcdControl {
  #process: ChildProcess;
  readonly #restarted: ChildProcess[] = [];

  constructor(private readonly cluster: TestCluster) {
    this.#process = cluster.etcd.process;
  }

  pause(): void {
    this.#process.kill("SIGSTOP");
  }

  resume(): void {
    this.#process.kill("SIGCONT");
  }

  /** SIGKILL, then the same `etcd` command line (data dir, client and peer URLs); waits until healthy. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** SIGKILL; start() brings it back. */
  async kill(): Promise<void> {
    await killAndWait(this.#process);
  }

  /** Starts the killed etcd again with the first one's command line; waits until healthy. */
  async start(): Promise<void> {
    const [file, ...args] = this.#process.spawnargs;
    if (!file) throw new Error("etcd has no command line to restart with");
    const child = spawn(file, args, { stdio: "ignore" });
    this.#process = child;
    this.#restarted.push(child);
    // cluster.stop() does not know this process: make sure it dies with the test process, even when a
    // failing hook never reaches stop().
    const reap = () => void child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.removeListener("exit", reap));
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`restarted etcd exited with ${child.exitCode}`);
        return (await fetch(`${this.cluster.etcd.endpoint}/health`)).ok;
      },
      { timeoutMs: 15_000, what: "the restarted etcd to become healthy" },
    );
  }

  /** Kills the processes restart() started (cluster.stop() only knows the first one). */
  async stop(): Promise<void> {
    for (const child of this.#restarted) await killAndWait(child);
  }
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGCONT");
  child.kill("SIGKILL");
  await exited;
}

/** Sentinels whose process is running and not stopped by a test. */
export function liveSentinels(cluster: TestCluster) {
  return [...cluster.sentinels.values()].filter(
    (s) => s.process.exitCode === null && s.process.signalCode === null,
  );
}

export interface SentinelAgreement {
  /** The one sentinel whose goulette_sentinel_is_leader is 1. */
  leader: string;
  /** Sentinels whose goulette_sentinel_is_leader is 1. */
  leadersByMetric: string[];
  digest: string;
  appliedId: bigint;
  /** Whether every sentinel named the leader's URL (leader_url) within `urlTimeoutMs`. */
  urlsAgree: boolean;
  /** The status seen last, for messages. */
  last: string;
}

/**
 * Waits until exactly one sentinel says it leads (metric and leader_id), all sentinels (every one must
 * be running) applied every operation of the log and hold the same state digest; then gives the
 * followers `urlTimeoutMs` more to name the leader's URL (they forward writes to it).
 */
export async function waitForSentinelAgreement(
  cluster: TestCluster,
  timeoutMs = 15_000,
  urlTimeoutMs = 6_000,
): Promise<SentinelAgreement> {
  let last = "";
  const poll = async () => {
    const sentinels = [...cluster.sentinels.values()];
    const status = await Promise.all(
      sentinels.map((s) => s.client.getClusterStatus({}, { timeoutMs: 1_000 })),
    );
    const leading = await Promise.all(sentinels.map((s) => readMetric(s.url, "goulette_sentinel_is_leader")));
    last = JSON.stringify(
      status.map((s, i) => ({
        id: s.sentinelId,
        url: sentinels[i]?.url,
        leaderUrl: s.leaderUrl,
        isLeader: leading[i],
        applied: s.oplogAppliedId.toString(),
        head: s.oplogHeadId.toString(),
        digest: s.stateDigest.slice(0, 12),
      })),
    );
    const leaders = sentinels.filter((_, i) => leading[i] === 1);
    const first = status[0];
    const leader = leaders[0];
    if (!first || !leader || leaders.length !== 1) return false;
    const converged = status.every(
      (s) =>
        s.stateDigest === first.stateDigest &&
        s.oplogAppliedId === first.oplogAppliedId &&
        s.oplogAppliedId === s.oplogHeadId &&
        // Followers name the leader too.
        s.leaderId === leader.id,
    );
    if (!converged) return false;
    return {
      leader: leader.id,
      leadersByMetric: leaders.map((s) => s.id),
      digest: first.stateDigest,
      appliedId: first.oplogAppliedId,
      urlsAgree: status.every((s) => s.leaderUrl === leader.url),
    };
  };
  try {
    const agreed = await waitFor(poll, {
      timeoutMs,
      what: "one sentinel leader and every sentinel at the same applied id and state digest",
    });
    if (agreed.urlsAgree) return { ...agreed, last };
    const urlsAgree = await waitFor(
      async () => {
        const now = await poll();
        return now !== false && now.urlsAgree;
      },
      {
        timeoutMs: urlTimeoutMs,
      },
    ).catch(() => false);
    return { ...agreed, urlsAgree, last };
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${last}`);
  }
}

/** Every message of a partition (default 0) up to its high watermark, read from the current leader. */
export async function readPartition(cluster: TestCluster, topic: string, partition = 0) {
  return waitFor(
    async () => {
      const leader = await leaderOf(cluster, topic, [], partition);
      const client = cluster.broker(leader).client;
      const from = { topic, partition, offset: 0n };
      const [first] = await pullMessages(client, from, 1, 5_000);
      const hw = Number(first?.highWatermark ?? 0n);
      const all = hw === 0 ? [] : await pullMessages(client, from, hw, 20_000);
      return all.length === hw ? { leader, messages: all } : undefined;
    },
    { timeoutMs: 20_000, what: `the whole log of ${topic}/${partition}` },
  );
}

/**
 * The longest time without an acknowledgement of `producer` from `t0` on, and when it ended (`t0`
 * itself counts as the first acknowledgement).
 */
export function longestAckGap(producer: ChaosProducer, t0: number): { gap: number; end: number } {
  const times = [t0, ...producer.acks.filter((a) => a.at >= t0).map((a) => a.at)];
  let end = t0;
  let gap = 0;
  for (let i = 1; i < times.length; i++) {
    const d = (times[i] as number) - (times[i - 1] as number);
    if (d > gap) [gap, end] = [d, times[i] as number];
  }
  return { gap, end };
}

/**
 * What a consumer of the fault's topic adds to a fault: the default is one ChaosConsumer of partition
 * 0 (PullConsumer); the consumer-member faults use members as processes (test/chaos/members.ts).
 */
export interface FaultConsumer {
  /** Starts consuming `topic`; resolves when it is ready for the warm-up. */
  start(topic: string): Promise<void>;
  /** Resolves when every acknowledged record of every producer was consumed. */
  drained(producers: readonly ChaosProducer[]): Promise<void>;
  stop(): Promise<void>;
  /** Its part of the row (after stop()). */
  report(): ConsumerReport;
  /** Its assertions, made once the row is in the table. */
  verify(): void;
}

export interface ConsumerReport {
  notes: string;
  reassignedMs?: number;
  consumedAgainMs?: number;
}

/** The suite's consumer group of the single-partition faults: one ChaosConsumer of partition 0. */
export class PullConsumer implements FaultConsumer {
  #consumer: ChaosConsumer | undefined;

  constructor(
    private readonly cluster: TestCluster,
    private readonly group: string,
  ) {}

  async start(topic: string): Promise<void> {
    this.#consumer = new ChaosConsumer(this.cluster, topic, this.group);
  }

  async drained(producers: readonly ChaosProducer[]): Promise<void> {
    const consumer = this.#started();
    // It reads partition 0 only.
    const producer = producers.find((p) => p.partition === 0);
    await waitFor(() => [...(producer?.acked.keys() ?? [])].every((id) => consumer.seen.has(id)), {
      timeoutMs: 15_000,
      what: "the consumer group to see every acknowledged message",
    });
  }

  async stop(): Promise<void> {
    await this.#consumer?.stop();
  }

  report(): ConsumerReport {
    const consumer = this.#started();
    return { notes: `redelivered ${consumer.deliveries.length - consumer.seen.size}` };
  }

  verify(): void {
    // The group delivers in log order; a redelivery only restarts from a committed offset.
    const firstSeen: bigint[] = [];
    const once = new Set<bigint>();
    for (const d of this.#started().deliveries) {
      if (once.has(d.messageId)) continue;
      once.add(d.messageId);
      firstSeen.push(d.messageId);
    }
    assert.ok(
      firstSeen.every((id, i) => i === 0 || id > (firstSeen[i - 1] as bigint)),
      "the consumer group saw messages in order",
    );
  }

  #started(): ChaosConsumer {
    if (!this.#consumer) throw new Error("the pull consumer was not started");
    return this.#consumer;
  }
}

/**
 * Creates a 1-partition, 3-replica topic whose leader is `broker`: placement is a hash of the name,
 * so this tries `<prefix>-1`, `<prefix>-2`… (each try creates a topic; about three are needed).
 */
export async function createTopicLedBy(
  cluster: TestCluster,
  prefix: string,
  broker: string,
): Promise<string> {
  for (let i = 1; i <= 30; i++) {
    const topic = `${prefix}-${i}`;
    const res = await cluster.sentinel().getBrokers({ topic, partitions: 1, replicaCount: 3 });
    if (res.partitions[0]?.leader === broker) {
      await cluster.createTopic(topic, { partitions: 1, replicas: 3 });
      return topic;
    }
  }
  throw new Error(`no topic named ${prefix}-1…30 is led by ${broker}`);
}

/** Waits until every broker process runs and the sentinels list it HEALTHY. */
export async function waitForHealthyBrokers(cluster: TestCluster, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const status = await cluster.sentinel().getClusterStatus({}, { timeoutMs: 1_000 });
      const healthy = new Set(status.brokers.filter((b) => b.status === 1).map((b) => b.brokerId));
      return [...cluster.brokers.keys()].every((id) => cluster.broker(id).alive && healthy.has(id));
    },
    { timeoutMs, what: "every broker to be registered and healthy" },
  );
}

/**
 * Polls a control-plane write (GetBrokers creating `probeTopic`, which only the sentinel leader can
 * append) until it succeeds; resolves with the time it succeeded.
 */
export async function controlPlaneServes(
  cluster: TestCluster,
  probeTopic: string,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const live = liveSentinels(cluster);
      const s = live[Math.floor(Math.random() * live.length)];
      if (s) {
        await s.client.getBrokers(
          { topic: probeTopic, partitions: 1, replicaCount: 1 },
          { timeoutMs: 1_000 },
        );
        return Date.now();
      }
    } catch {
      // not serving yet
    }
    if (Date.now() > deadline) throw new Error(`the control plane did not serve within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** One line of the final table. All times are in ms from the injection of the fault. */
export interface FaultRow {
  fault: string;
  /** How long the fault was applied (a restart: until the process was back; a kill: 0). */
  faultMs: number;
  /** The longest time without an acknowledgement, from the injection until the fault was over and 100 more acks arrived. */
  produceGapMs: number;
  /** When that longest gap ended: acks=all produce served again. */
  produceBackMs: number;
  /** When a sentinel write (topic creation, appended by the leader) first succeeded. */
  controlBackMs: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Consumer-member faults: when the failed member's last partition was assigned to another member. */
  reassignedMs?: number;
  /** Consumer-member faults: when another member had processed a record of each of its partitions. */
  consumedAgainMs?: number;
  /** Error acks and broken streams the producer saw, consumer redeliveries and checks, skips. */
  notes: string;
}

const seconds = (ms: number | undefined) => (ms === undefined ? "—" : (ms / 1000).toFixed(1));

export function formatTable(rows: FaultRow[]): string {
  const head = [
    "fault",
    "fault lasted (s)",
    "longest produce gap (s)",
    "produce back at (s)",
    "sentinel write back at (s)",
    "acked",
    "lost",
    "duplicated",
    "reordered",
    "member's partitions reassigned at (s)",
    "consumed by the others at (s)",
    "notes",
  ];
  const body = rows.map((r) => [
    r.fault,
    seconds(r.faultMs),
    seconds(r.produceGapMs),
    seconds(r.produceBackMs),
    seconds(r.controlBackMs),
    String(r.acknowledged),
    String(r.lost),
    String(r.duplicated),
    String(r.reordered),
    seconds(r.reassignedMs),
    seconds(r.consumedAgainMs),
    r.notes,
  ]);
  const lines = [head, ...body].map((cells) => `| ${cells.join(" | ")} |`);
  lines.splice(1, 0, `|${head.map(() => "---").join("|")}|`);
  return lines.join("\n");
}
