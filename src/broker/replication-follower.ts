import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import {
  BrokerService,
  ReplicateRequestSchema,
  type ReplicateRequest,
  type ReplicateResponse,
} from "../gen/goulette/v1/broker_pb.js";
import type { StreamSessions } from "../client/grpc-stream-client.js";
import type { Logger } from "../observability/logger.js";
import type { ReplicatedRecord } from "../storage/index.js";
import { AsyncQueue } from "../common/async-queue.js";
import { backoffDelay } from "../common/backoff.js";
import type { FetcherHandle, Partition } from "./partition.js";

export interface FollowerOptions {
  /** This broker's id (sent as follower_id). */
  brokerId: string;
  /** gRPC transport to a leader's base URL. */
  transport: (baseUrl: string) => Transport;
  /**
   * The HTTP/2 connection to a leader, for the replication session's lean client
   * (src/client/grpc-stream-client.ts); absent: the session goes through `transport`.
   */
  sessions?: (baseUrl: string) => StreamSessions;
  /** Headers of every call (authorization). */
  headers: Record<string, string>;
  /** No response for this long: the stream is considered dead and reopened (ms). */
  stallTimeoutMs: number;
  /**
   * The newest record frame format this broker stores as it is, named to leaders (frame_format): they
   * may then answer with frames. 0: records only, as brokers before frames.
   */
  frameFormat: number;
  logger: Logger;
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1_000;

/** Reconnect delay after `failures` failures in a row: 50 ms doubling to 1 s, with jitter. */
export function backoffMs(failures: number): number {
  return backoffDelay(failures + 1, MIN_BACKOFF_MS, MAX_BACKOFF_MS);
}

/**
 * A follower's fetch loop for one partition (used when the leader is older than ReplicateSession, see
 * replication-session-follower.ts): opens a Replicate stream to the leader it was told about,
 * cuts its log where the leader says it diverged, appends what the leader sends (keeping the leader's
 * offsets and epoch labels), stores the consumer offsets, and asks for more. Reconnects with backoff.
 */
export function startFetcher(options: FollowerOptions, p: Partition): FetcherHandle {
  const abort = new AbortController();
  const logger = options.logger.child({ partition: p.key, leader: p.leader?.brokerId });
  const done = (async () => {
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        await runStream(options, p, abort.signal, logger);
        failures = 0;
      } catch (err) {
        if (abort.signal.aborted) break;
        failures++;
        // The first failures are expected around role changes (leader not ready yet); say more later.
        const level = failures > 20 && failures % 20 === 1 ? "warn" : "debug";
        logger[level]({ err: err, failures }, "replication stream failed; reconnecting");
      }
      await sleep(backoffMs(failures), undefined, { signal: abort.signal }).catch(() => undefined);
    }
  })();
  return {
    async stop() {
      abort.abort();
      await done;
    },
  };
}

async function runStream(
  options: FollowerOptions,
  p: Partition,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  const leader = p.leader;
  if (p.role !== "follower" || leader === undefined) return;
  if (!leader.address) throw new Error(`the address of leader ${leader.brokerId} is unknown`);
  const client = createClient(BrokerService, options.transport(leader.address));
  const streamAbort = new AbortController();
  const onAbort = () => streamAbort.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let stall: NodeJS.Timeout | undefined;
  const armStall = () => {
    clearTimeout(stall);
    stall = setTimeout(() => streamAbort.abort(), options.stallTimeoutMs);
  };
  const outbound = new AsyncQueue<ReplicateRequest>();
  let offsetsVersion = 0n;
  const request = (first: boolean): ReplicateRequest =>
    create(ReplicateRequestSchema, {
      topic: p.topic,
      partition: p.partition,
      followerId: options.brokerId,
      fetchOffset: BigInt(p.log.logEndOffset),
      epoch: BigInt(p.epoch),
      leaderEpochs: first
        ? p.epochs.entries.map((e) => ({ epoch: BigInt(e.epoch), startOffset: BigInt(e.startOffset) }))
        : [],
      offsetsVersion,
      frameFormat: options.frameFormat,
      logStartOffset: BigInt(p.log.logStartOffset),
    });
  outbound.push(request(true));
  armStall();
  try {
    const responses = client.replicate(outbound, { signal: streamAbort.signal, headers: options.headers });
    for await (const res of responses) {
      armStall();
      const current = p.leader;
      if (
        p.role !== "follower" ||
        current?.brokerId !== leader.brokerId ||
        current.address !== leader.address
      ) {
        return;
      }
      if (res.truncateTo !== undefined) {
        await cut(p, Number(res.truncateTo), logger);
      } else {
        await store(p, res);
        offsetsVersion = res.offsetsVersion;
      }
      if (signal.aborted) return;
      outbound.push(request(false));
    }
  } finally {
    clearTimeout(stall);
    signal.removeEventListener("abort", onAbort);
    outbound.end();
    streamAbort.abort();
  }
}

/** A record as an older leader sends it, for appendReplicated. */
function fromWire(r: ReplicateResponse["records"][number]): ReplicatedRecord {
  return {
    offset: Number(r.offset),
    timestamp: Number(r.timestamp),
    key: r.key,
    payload: r.payload,
    headers: r.headers,
    producerId: r.producerId,
    messageId: r.messageId,
  };
}

/** Makes the log a prefix of the leader's (or restarts it at the leader's log start). */
export async function cut(p: Partition, offset: number, logger: Logger): Promise<void> {
  const end = p.log.logEndOffset;
  if (offset < end) {
    logger.warn(
      { from: end, to: offset },
      "truncating the log to the leader's (divergent or uncommitted tail)",
    );
    await p.log.truncateTo(offset);
    await p.epochs.truncateTo(offset);
  } else if (offset > end) {
    logger.warn({ from: end, to: offset }, "log is behind the leader's log start; restarting it there");
    await p.log.resetTo(offset);
    await p.epochs.clear();
  }
  p.onTruncated(offset);
}

/**
 * Stores one response: epoch labels first, then the records (as the leader's frames, or one by one
 * from an older leader), then the consumer offsets, then the leader's log start (records the leader
 * deleted go here too, up to this replica's log end).
 */
export async function store(p: Partition, res: ReplicateResponse): Promise<void> {
  if (res.frames.length > 0 || res.records.length > 0) {
    await p.epochs.adopt(
      res.leaderEpochs.map((e) => ({ epoch: Number(e.epoch), startOffset: Number(e.startOffset) })),
    );
    if (res.frames.length > 0) await p.log.appendFrames(res.frames);
    else await p.log.appendReplicated(res.records.map(fromWire));
  }
  if (res.offsetsSnapshot || res.offsets.length > 0) {
    await p.offsets.apply(
      res.offsets.map((o) => ({
        group: o.consumerGroup,
        offset: Number(o.offset),
        fence: Number(o.memberEpoch),
        version: Number(res.offsetsVersion),
      })),
      Number(res.offsetsVersion),
      res.offsetsSnapshot,
    );
  }
  p.setFollowerHighWatermark(Number(res.highWatermark));
  const leaderStart = Number(res.logStartOffset);
  if (leaderStart > p.log.logStartOffset) {
    await p.log.deleteRecordsBefore(Math.min(leaderStart, p.log.logEndOffset));
  }
}
