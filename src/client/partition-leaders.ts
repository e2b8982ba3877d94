/**
 * The partition half of the Admin client: each partition of a topic with its leader (from the
 * sentinels, never creating a topic), and calls to those leaders, bounded in number, each with its own
 * deadline, failures gathered into one error that names every failed partition.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import type { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import { GouletteError, InvalidArgumentError, NotFoundError, UnavailableError } from "../errors.js";
import { isConnectionFailure, toClientError } from "./errors.js";
import type { SentinelCallOptions } from "./sentinel-pool.js";
import type { ClientTransport } from "./transport.js";

/** A topic or group name an admin call names: InvalidArgumentError when it is empty. */
export function checkName(what: string, name: string): void {
  if (typeof name !== "string" || name === "") throw new InvalidArgumentError(`the ${what} name is empty`);
}

/** One partition of a topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** Runs a call on any sentinel (the Admin's SentinelPool). */
export type SentinelCall = <T>(
  fn: (client: Client<typeof SentinelService>, options: SentinelCallOptions) => Promise<T>,
  signal?: AbortSignal,
) => Promise<T>;

export interface PartitionLeadersOptions {
  sentinels: SentinelCall;
  transport: ClientTransport;
  /** Headers of every broker call (authorization). */
  headers: Record<string, string>;
  /** The brokers' listener to dial ("": the sentinels choose). */
  listener: string;
}

/** Partition-leader calls in flight at once per admin operation. */
const CONCURRENCY = 16;
/** Deadline of one call to a partition leader (ms). */
const BROKER_TIMEOUT_MS = 10_000;

export interface Located extends TopicPartition {
  leaderId: string;
  /** host:port of the leader ("" when the partition has none or its broker is unknown). */
  address: string;
}

export interface BrokerCallOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  headers: Record<string, string>;
}

export class PartitionLeaders {
  constructor(private readonly options: PartitionLeadersOptions) {}

  /** The topic's partitions (all, or the ones asked for), with their leaders. */
  async partitionsOf(
    topic: string,
    wanted: readonly number[] | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Located[]> {
    const all = await this.locate([topic], true, signal);
    if (wanted === undefined || wanted.length === 0) return all;
    return [...new Set(wanted)].map((partition) => {
      const found = all.find((p) => p.partition === partition);
      if (!found)
        throw new InvalidArgumentError(
          `'${topic}' has no partition ${partition} (it has ${all.length}: 0 to ${all.length - 1})`,
        );
      return found;
    });
  }

  /**
   * Each partition of `topics` with its leader's address, never creating a topic (ListTopics, not
   * GetBrokers). A missing topic is NotFound when `required`, else skipped.
   */
  async locate(topics: string[], required: boolean, signal: AbortSignal | undefined): Promise<Located[]> {
    if (topics.length === 0) return [];
    const [status, infos] = await Promise.all([
      this.options.sentinels((c, o) => c.getClusterStatus({ listener: this.options.listener }, o), signal),
      inParallel(topics, (topic) =>
        this.options.sentinels((c, o) => c.listTopics({ prefix: topic, limit: 1 }, o), signal),
      ),
    ]);
    const addresses = new Map(status.brokers.map((b) => [b.brokerId, b.address]));
    const located: Located[] = [];
    topics.forEach((topic, i) => {
      const info = infos[i]?.topics[0];
      if (info?.topic !== topic) {
        if (required) throw new NotFoundError(`topic '${topic}' does not exist`);
        return;
      }
      const partitions = [...info.partitions].sort((a, b) => a.partition - b.partition);
      for (const p of partitions) {
        located.push({
          topic,
          partition: p.partition,
          leaderId: p.leader,
          address: addresses.get(p.leader) ?? "",
        });
      }
    });
    return located.sort((a, b) =>
      a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
    );
  }

  /** Runs fn against the partition's leader; a failed connection is dropped so the next call redials. */
  async onLeader<T>(
    p: Located,
    signal: AbortSignal | undefined,
    fn: (client: Client<typeof BrokerService>, options: BrokerCallOptions) => Promise<T>,
  ): Promise<T> {
    if (p.address === "") {
      throw new UnavailableError(
        p.leaderId === ""
          ? `partition ${p.partition} of '${p.topic}' has no leader now`
          : `the leader of partition ${p.partition} of '${p.topic}' (${p.leaderId}) is not a known broker`,
      );
    }
    const client = createClient(BrokerService, this.options.transport.broker(p.address));
    try {
      return await fn(client, {
        timeoutMs: BROKER_TIMEOUT_MS,
        headers: this.options.headers,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (isConnectionFailure(err)) this.options.transport.forget(p.address);
      throw err;
    }
  }
}

/** fn over items, at most CONCURRENCY at a time; results in item order. fn must not throw. */
export async function inParallel<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  return results;
}

/**
 * fn over the partitions (bounded), waiting for every call; when any failed, throws one error (the
 * first failure's code) naming each failed partition and, for writes, how many were `done` anyway.
 */
export async function settleAll<R>(
  partitions: readonly Located[],
  fn: (p: Located, index: number) => Promise<R>,
  done?: string,
): Promise<R[]> {
  const outcomes = await inParallel(partitions, (p, i) =>
    fn(p, i).then(
      (value) => ({ ok: true as const, value }),
      (err: unknown) => ({ ok: false as const, error: toClientError(err) }),
    ),
  );
  const values: R[] = [];
  const failures: string[] = [];
  let first: GouletteError | undefined;
  outcomes.forEach((o, i) => {
    const p = partitions[i] as Located;
    if (o.ok) values[i] = o.value;
    else {
      first ??= o.error;
      failures.push(`partition ${p.partition} of '${p.topic}': ${o.error.message}`);
    }
  });
  if (first === undefined) return values;
  const summary =
    done === undefined || failures.length === partitions.length
      ? ""
      : `${partitions.length - failures.length} of ${partitions.length} partitions ${done}; `;
  throw new GouletteError(`${summary}${failures.join("; ")}`, first.code, first.retryable, { cause: first });
}
