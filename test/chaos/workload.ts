import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  Acks,
  MessageRequestSchema,
  ProduceError,
  type BrokerService,
  type MessageRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { Pushable, brokerClient, text } from "../helpers/broker-process.js";
import type { TestCluster } from "../helpers/cluster.js";

/**
 * The workload every fault runs under, driving BrokerService and SentinelService directly the way a
 * client SDK would (the SDK is not used so that a fault in it cannot hide or cause a finding here).
 */

/** No answer within this long means the broker is unreachable (a paused process never answers). */
const STALL_MS = 2_000;

/** The leader of a partition (default 0) as the sentinels see it, reporting `unreachable` brokers first. */
export async function leaderOf(
  cluster: TestCluster,
  topic: string,
  unreachable: string[] = [],
  partition = 0,
): Promise<string> {
  const res = await cluster
    .sentinel()
    .getBrokers({ topic, unreachableBrokers: unreachable }, { timeoutMs: 5_000 });
  const leader = res.partitions.find((p) => p.partition === partition)?.leader;
  if (!leader) throw new Error(`${topic}/${partition} has no leader`);
  return leader;
}

/** Aborts `controller` unless `poke()` is called every `ms`. */
function stallGuard(controller: AbortController, ms: number) {
  let timer = setTimeout(() => controller.abort(), ms);
  return {
    poke() {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), ms);
    },
    clear() {
      clearTimeout(timer);
    },
  };
}

/**
 * An idempotent acks=all producer of one partition (default 0): a fixed producer id, message ids 1, 2,
 * 3… and one request of `batch` records (default 10) in flight at a time, so it never reorders a retry
 * behind a later request. On an error ack it retries the same ids (after asking the sentinels again on
 * NOT_LEADER); on a broken or stalled stream it reports the leader unreachable to the sentinels and
 * retries on the leader they name. `ackTimes[i]` is when the i-th acknowledgement arrived and `sentAt` of the request it answered.
 */
export class ChaosProducer {
  /** Acknowledged message id → offset. */
  readonly acked = new Map<bigint, bigint>();
  /** Error acks by ProduceError name, and broken streams as "stream". */
  readonly errors = new Map<string, number>();
  /** (time the acknowledged request was sent, time its ack arrived), in arrival order. */
  readonly acks: { sentAt: number; at: number }[] = [];
  failovers = 0;
  #next = 1n;
  readonly partition: number;
  readonly #batch: number;
  #stopped = false;
  readonly done: Promise<void>;

  constructor(
    private readonly cluster: TestCluster,
    private readonly topic: string,
    private readonly producerId: string,
    options: { partition?: number; batch?: number } = {},
  ) {
    this.partition = options.partition ?? 0;
    this.#batch = options.batch ?? 10;
    this.done = this.#run();
  }

  /** Ids sent so far (acknowledged or not): 1 … sent. */
  get sent(): bigint {
    return this.#next - 1n;
  }

  /** Finishes the batch in flight (retrying it until acknowledged) and stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }

  #count(kind: string) {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  async #run(): Promise<void> {
    let unreachable: string[] = [];
    // The batch being retried: the same ids until every one is acknowledged.
    let pending: bigint[] = [];
    const deadline = () => Date.now() + 90_000;
    let giveUp = deadline();
    while (!this.#stopped || pending.length > 0) {
      if (Date.now() > giveUp) throw new Error(`producer ${this.producerId}: no progress for 90 s`);
      let leader: string;
      try {
        leader = await leaderOf(this.cluster, this.topic, unreachable, this.partition);
      } catch {
        this.#count("getBrokers");
        await sleep(100);
        continue;
      }
      unreachable = [];
      const client = brokerClient(this.cluster.brokerAddress(leader));
      const requests = new Pushable<MessageRequest>();
      const controller = new AbortController();
      const guard = stallGuard(controller, STALL_MS);
      let sentAt = 0;
      const sendPending = () => {
        if (pending.length === 0) {
          if (this.#stopped) return false;
          for (let i = 0; i < this.#batch; i++) pending.push(this.#next++);
        }
        sentAt = Date.now();
        requests.push(
          create(MessageRequestSchema, {
            topic: this.topic,
            partition: this.partition,
            producerId: this.producerId,
            acks: Acks.ALL,
            records: pending.map((messageId) => ({ messageId, payload: text(`m-${messageId}`) })),
          }),
        );
        return true;
      };
      let outcome: "again" | "notLeader" | "broken" = "again";
      try {
        if (!sendPending()) break;
        for await (const res of client.sendMessage(requests, { signal: controller.signal })) {
          guard.poke();
          const now = Date.now();
          const failed: bigint[] = [];
          for (const a of res.acks) {
            if (a.error === ProduceError.NONE) {
              this.acked.set(a.messageId, a.offset);
              this.acks.push({ sentAt, at: now });
            } else {
              failed.push(a.messageId);
              this.#count(ProduceError[a.error]);
              if (a.error === ProduceError.NOT_LEADER || a.error === ProduceError.UNKNOWN_PARTITION)
                outcome = "notLeader";
            }
          }
          pending = pending.filter((id) => failed.includes(id));
          if (failed.length === 0) giveUp = deadline();
          if (outcome === "notLeader" || failed.length > 0) break;
          if (!sendPending()) break;
        }
      } catch {
        this.#count("stream");
        outcome = "broken";
      } finally {
        guard.clear();
        requests.end();
        controller.abort();
      }
      if (outcome === "broken") {
        unreachable = [leader];
        this.failovers++;
      }
      if (pending.length > 0) await sleep(100);
    }
  }
}

/** One delivered message, as the consumer saw it. */
export interface Delivery {
  offset: bigint;
  messageId: bigint;
}

/**
 * A consumer group member of partition 0: pulls from the committed offset of `group` on the current
 * leader, commits after every 20 messages, and on a broken or stalled stream finds the leader again
 * and resumes from the committed offset (so it may see a message again: at-least-once).
 */
export class ChaosConsumer {
  readonly deliveries: Delivery[] = [];
  readonly seen = new Set<bigint>();
  reconnects = 0;
  #stopped = false;
  readonly #controller = new AbortController();
  readonly done: Promise<void>;

  constructor(
    private readonly cluster: TestCluster,
    private readonly topic: string,
    private readonly group: string,
  ) {
    this.done = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#controller.abort();
    await this.done;
  }

  async #run(): Promise<void> {
    let unreachable: string[] = [];
    while (!this.#stopped) {
      let leader: string;
      try {
        leader = await leaderOf(this.cluster, this.topic, unreachable);
      } catch {
        await sleep(100);
        continue;
      }
      unreachable = [];
      const client: Client<typeof BrokerService> = brokerClient(this.cluster.brokerAddress(leader));
      const controller = new AbortController();
      const onStop = () => controller.abort();
      this.#controller.signal.addEventListener("abort", onStop);
      const guard = stallGuard(controller, STALL_MS);
      const key = { topic: this.topic, partition: 0, consumerGroup: this.group };
      let uncommitted = 0;
      let nextOffset = -1n;
      try {
        for await (const m of client.pullMessage(
          { ...key, offset: -1n, batchSize: 100 },
          { signal: controller.signal },
        )) {
          guard.poke();
          this.deliveries.push({ offset: m.offset, messageId: m.messageId });
          this.seen.add(m.messageId);
          nextOffset = m.offset + 1n;
          if (++uncommitted >= 20) {
            await client.commitOffset({ ...key, offset: nextOffset }, { timeoutMs: STALL_MS });
            uncommitted = 0;
          }
        }
      } catch {
        if (!this.#stopped) {
          this.reconnects++;
          // A stall while the producer is running means the leader does not answer.
          if (controller.signal.aborted) unreachable = [leader];
        }
      } finally {
        guard.clear();
        this.#controller.signal.removeEventListener("abort", onStop);
      }
      if (!this.#stopped) await sleep(100);
    }
  }
}
