import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@connectrpc/connect";
import { Acks, ProduceError, type BrokerService } from "../../../src/gen/goulette/v1/broker_pb.js";
import type { SentinelService } from "../../../src/gen/goulette/v1/sentinel_pb.js";
import { Consumer, Producer } from "../../../src/client/node.js";
import { partitionForKey } from "../../../src/client/partitioner.js";
import { brokerClient, sendOnce, text } from "../../helpers/broker-process.js";
import type { LeaderObservation, ReadRecord, SendRecord } from "./checker.js";

/**
 * The nemesis's workload, every step recorded for the checker: idempotent producers (the Node SDK),
 * a non-idempotent producer (raw SendMessage without a producer id, retrying a failed send by sending
 * it again), all acks=all with keyed messages over every partition; a consumer group of SDK Consumers
 * reading everything from the earliest offset; and an observer of the partition leaders each sentinel
 * names. Every loop stops by itself after `maxMessages` (or when stopped).
 */

export interface WorkloadTarget {
  topic: string;
  partitions: number;
  sentinelUrls: string[];
  /** A client of a sentinel that answers (neither killed nor paused by the nemesis), if any. */
  liveSentinel(): { id: string; client: Client<typeof SentinelService> } | undefined;
  /** Every sentinel the nemesis has not killed or paused. */
  liveSentinels(): { id: string; client: Client<typeof SentinelService> }[];
  /** A broker's client address (direct, not through the inter-broker proxies). */
  brokerAddress(id: string): string;
}

/** Waits for `work` until `deadlineMs` at most (the timer is cleared: nothing keeps the process alive). */
export async function until(work: Promise<unknown>, deadlineMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadlineMs - Date.now()));
  });
  try {
    await Promise.race([work.then(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Loop {
  stop(deadlineMs: number): Promise<void>;
}

const KEYS_PER_PRODUCER = 8;
/** A frozen broker is noticed within 5 s (the default pings take 10 s). */
const FAST_PINGS = { pingIntervalMs: 2_000, pingTimeoutMs: 3_000 };
/** The brokers' listener of direct addresses: clients never go through the inter-broker proxies. */
export const CLIENT_LISTENER = "client";

/** An idempotent SDK producer: up to `inFlight` sends outstanding, one every `intervalMs`. */
export function startIdempotentProducer(
  target: WorkloadTarget,
  name: string,
  sends: SendRecord[],
  options: { intervalMs: number; inFlight: number; maxMessages: number },
): Loop {
  const producer = new Producer({
    sentinels: target.sentinelUrls,
    topic: target.topic,
    acks: "all",
    producerId: name,
    // Several requests in flight per partition (batches of up to 32, up to 128 records in flight): the
    // partition leaders' order check keeps send() order anyway (docs/client.md, "Order guarantee"),
    // and the checker holds every key to it.
    maxBatchMessages: 32,
    maxInFlightPerPartition: 128,
    deliveryTimeoutMs: 90_000,
    requestTimeoutMs: 10_000,
    listener: CLIENT_LISTENER,
    nodeTransport: FAST_PINGS,
  });
  let stopped = false;
  const outstanding = new Set<Promise<void>>();
  const done = (async () => {
    for (let seq = 0; seq < options.maxMessages && !stopped; seq++) {
      while (outstanding.size >= options.inFlight && !stopped) await Promise.race(outstanding);
      if (stopped) break;
      const key = `k${seq % KEYS_PER_PRODUCER}`;
      const record: SendRecord = {
        producer: name,
        idempotent: true,
        key,
        value: `${name}/${key}/${seq}`,
        seq,
        invokedAt: Date.now(),
        attempts: 1,
        outcome: "pending",
      };
      sends.push(record);
      const settled = producer.send({ key: text(`${name}/${key}`), value: text(record.value) }).then(
        (ack) => {
          record.outcome = "ok";
          record.completedAt = Date.now();
          record.partition = ack.partition;
          record.offset = ack.offset;
        },
        () => {
          record.outcome = "fail";
          record.completedAt = Date.now();
        },
      );
      const tracked = settled.finally(() => outstanding.delete(tracked));
      outstanding.add(tracked);
      await sleep(options.intervalMs);
    }
  })();
  return {
    async stop(deadlineMs) {
      stopped = true;
      await done;
      await until(Promise.all(outstanding), deadlineMs);
      await producer.close({ flush: false, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    },
  };
}

/**
 * A producer without idempotency: one message at a time, keyed, to partition hash(key); a send that
 * fails (error ack, broken or silent stream) is sent again — up to 30 attempts — so a send the broker
 * stored but could not acknowledge is stored twice: the duplicates the checker attributes to retries.
 */
export function startPlainProducer(
  target: WorkloadTarget,
  name: string,
  sends: SendRecord[],
  options: { intervalMs: number; maxMessages: number },
): Loop {
  let stopped = false;
  /** Past the stop deadline: the send being retried is given up. */
  let abandoned = false;
  const clients = new Map<string, Client<typeof BrokerService>>();
  const clientOf = (id: string) => {
    const address = target.brokerAddress(id);
    let client = clients.get(address);
    if (!client) clients.set(address, (client = brokerClient(address)));
    return client;
  };
  const attempt = async (record: SendRecord, partition: number): Promise<boolean> => {
    const sentinel = target.liveSentinel();
    if (!sentinel) return false;
    const res = await sentinel.client.getBrokers({ topic: target.topic }, { timeoutMs: 3_000 });
    const leader = res.partitions.find((p) => p.partition === partition)?.leader;
    if (!leader) return false;
    record.attempts++;
    const answer = await sendOnce(
      clientOf(leader),
      {
        topic: target.topic,
        partition,
        producerId: "",
        acks: Acks.ALL,
        records: [{ messageId: 0n, key: text(record.key), payload: text(record.value) }],
      },
      8_000,
    );
    const ack = answer.acks[0];
    if (ack?.error !== ProduceError.NONE) return false;
    record.outcome = "ok";
    record.completedAt = Date.now();
    record.partition = partition;
    record.offset = Number(ack.offset);
    return true;
  };
  const done = (async () => {
    for (let seq = 0; seq < options.maxMessages && !stopped; seq++) {
      const key = `${name}/k${seq % KEYS_PER_PRODUCER}`;
      const record: SendRecord = {
        producer: name,
        idempotent: false,
        key,
        value: `${key}/${seq}`,
        seq,
        invokedAt: Date.now(),
        attempts: 0,
        outcome: "pending",
      };
      sends.push(record);
      const partition = partitionForKey(key, target.partitions);
      for (let i = 0; i < 30 && record.outcome !== "ok" && !abandoned; i++) {
        const ok = await attempt(record, partition).catch(() => false);
        if (!ok) await sleep(200);
      }
      if (record.outcome !== "ok") {
        record.outcome = "fail";
        record.completedAt = Date.now();
      }
      await sleep(options.intervalMs);
    }
  })();
  return {
    async stop(deadlineMs) {
      stopped = true;
      await until(done, deadlineMs);
      abandoned = true;
      await done;
    },
  };
}

/** A consumer group of `members` SDK Consumers reading the topic from the earliest offset. */
export function startGroup(
  target: WorkloadTarget,
  group: string,
  members: number,
  reads: ReadRecord[],
): Loop & { read: () => Set<string> } {
  let stopped = false;
  const seen = new Set<string>();
  const consumers = Array.from({ length: members }, (_, i) => {
    const name = `${group}-m${i + 1}`;
    const consumer = new Consumer({
      sentinels: target.sentinelUrls,
      topic: target.topic,
      group,
      from: "earliest",
      sessionTimeoutMs: 6_000,
      autoCommitIntervalMs: 500,
      listener: CLIENT_LISTENER,
      nodeTransport: FAST_PINGS,
    });
    const done = (async () => {
      while (!stopped) {
        const batch = await consumer.receiveBatch({ max: 200, timeoutMs: 500 }).catch(async () => {
          await sleep(200);
          return [];
        });
        const at = Date.now();
        for (const m of batch) {
          const value = new TextDecoder().decode(m.value);
          reads.push({ member: name, partition: m.partition, offset: m.offset, value, at });
          seen.add(value);
        }
      }
    })();
    return { consumer, done };
  });
  return {
    read: () => seen,
    async stop(deadlineMs) {
      stopped = true;
      const closing = Promise.all(
        consumers.map(async (c) => {
          await c.done;
          await c.consumer.close().catch(() => undefined);
        }),
      );
      await until(closing, deadlineMs);
    },
  };
}

/** Asks every live sentinel for the topic's leaders every `intervalMs`. */
export function startLeaderObserver(
  target: WorkloadTarget,
  observations: LeaderObservation[],
  intervalMs: number,
): Loop {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await Promise.all(
        target.liveSentinels().map(async (s) => {
          try {
            const res = await s.client.getBrokers({ topic: target.topic }, { timeoutMs: 1_000 });
            const at = Date.now();
            for (const p of res.partitions)
              observations.push({
                sentinel: s.id,
                partition: p.partition,
                epoch: String(p.epoch),
                leader: p.leader,
                at,
              });
          } catch {
            // An unanswered poll observes nothing.
          }
        }),
      );
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
    },
  };
}
