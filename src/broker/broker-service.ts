import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  BatchesRequest,
  BatchesResponse,
  BrokerService,
  MessageRequest,
} from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import { AsyncQueue } from "../common/async-queue.js";
import { OverloadedError } from "../errors.js";
import { resetCall } from "../server/call-head.js";
import { encodedResponsesOf } from "../server/encoded-responses.js";
import { commitOffset, deleteCommittedOffset, getCommittedOffset } from "./offsets.js";
import { deleteRecords } from "./delete-records.js";
import type { PartitionManager } from "./partition-manager.js";
import { produce, validateMessageRequest, type ProduceOptions } from "./produce.js";
import { produceBatches, produceBatchesPerBatch, validateBatchesRequest } from "./produce-batches.js";
import { fetchBatches } from "./fetch.js";
import { partitionProgress } from "./partition-progress.js";
import { pull } from "./pull.js";
import { serveReplicate, type ShippedEncoding } from "./replication-leader.js";
import { serveReplicateSession } from "./replication-session-leader.js";
import { setTopicRoles } from "./set-topic-roles.js";

export interface BrokerServiceOptions {
  brokerId: string;
  partitions: PartitionManager;
  /** Largest payload accepted (bytes). */
  maxMessageBytes: number;
  /** Replicate: answer an idle fetch after this long (ms). */
  replicationIdleResponseMs: number;
  /** ReplicateSession: idle partitions count as fetched again at most this often (ms). */
  replicationRefreshMs: number;
  /** Serve ReplicateSession (false: answer UNIMPLEMENTED, as a broker older than it). */
  replicationSessions: boolean;
  /** Answer followers that accept them with stored frames (false: records, as a broker older than frames). */
  replicationFrames: boolean;
  /** Registered with the sentinels and serving. */
  ready: () => boolean;
  /** In contact with the sentinels (see SentinelSession.inContact): leaders take writes. */
  writable: () => boolean;
  metrics: BrokerMetrics;
  /**
   * A SendMessage stream paused this long with answers its client has not read is ended with
   * ResourceExhausted (default DEFAULT_UNREAD_RESPONSES_TIMEOUT_MS).
   */
  unreadResponsesTimeoutMs?: number;
}

/**
 * SendMessage requests of one stream in progress or answered and not yet taken by the client (beyond
 * that the stream is not read).
 */
const MAX_INFLIGHT_REQUESTS = 256;
/** Default of BrokerServiceOptions.unreadResponsesTimeoutMs. */
export const DEFAULT_UNREAD_RESPONSES_TIMEOUT_MS = 30_000;

/** The BrokerService RPCs. */
export function createBrokerService(
  options: BrokerServiceOptions,
): Partial<ServiceImpl<typeof BrokerService>> {
  const lookup = (topic: string, partition: number) => options.partitions.get(topic, partition);
  const shipped = options.metrics.replicatedRecords;
  const onShipped = (encoding: ShippedEncoding, records: number) => shipped.inc({ encoding }, records);
  const produceOptions: ProduceOptions = {
    lookup,
    maxMessageBytes: options.maxMessageBytes,
    writable: options.writable,
    metrics: options.metrics,
  };

  /** A produce stream whose client stops reading is ended after this long (reset, see answerConcurrently). */
  const stallOf = (ctx: HandlerContext) => ({
    timeoutMs: options.unreadResponsesTimeoutMs ?? DEFAULT_UNREAD_RESPONSES_TIMEOUT_MS,
    reset: () => resetCall(ctx.values),
  });

  return {
    sendMessage(requests, ctx) {
      const handle = {
        validate: validateMessageRequest,
        answer: (o: ProduceOptions, req: MessageRequest) => produce(o, req),
        name: "SendMessage",
      };
      return answerConcurrently(produceOptions, handle, requests, ctx.signal, stallOf(ctx));
    },

    async produce(req) {
      validateMessageRequest(req);
      return produce(produceOptions, req);
    },

    sendBatches(requests, ctx) {
      const handle = {
        validate: validateBatchesRequest,
        answer: (o: ProduceOptions, req: BatchesRequest, emit: (res: BatchesResponse) => void) =>
          req.answerPerBatch ? produceBatchesPerBatch(o, req, emit) : produceBatches(o, req),
        name: "SendBatches",
      };
      return answerConcurrently(produceOptions, handle, requests, ctx.signal, stallOf(ctx));
    },

    async produceBatches(req) {
      validateBatchesRequest(req);
      return produceBatches(produceOptions, req);
    },

    pullMessage(req, ctx) {
      return pull({ lookup, metrics: options.metrics }, req, ctx.signal);
    },

    fetchMessages(req, ctx) {
      const encoded = encodedResponsesOf(ctx.values);
      return fetchBatches({ lookup, metrics: options.metrics }, req, ctx.signal, encoded);
    },

    async commitOffset(req) {
      await commitOffset(lookup, req, options.writable);
      return {};
    },

    async deleteCommittedOffset(req) {
      return { deleted: await deleteCommittedOffset(lookup, req, options.writable) };
    },

    async deleteRecords(req) {
      return { logStartOffset: BigInt(await deleteRecords(lookup, req, options.writable)) };
    },

    async getCommittedOffset(req) {
      const committed = await getCommittedOffset(lookup, req, options.writable);
      return {
        offset: BigInt(committed.offset),
        logStartOffset: BigInt(committed.logStartOffset),
        highWatermark: BigInt(committed.highWatermark),
      };
    },

    async setTopicRole(req) {
      const { partition } = await options.partitions.applyRole(req);
      return { logEndOffset: BigInt(partition.log.logEndOffset) };
    },

    setTopicRoles(req) {
      return setTopicRoles(options.partitions, req);
    },

    async removeTopic(req) {
      await options.partitions.remove(req.topic, req.partition, req.deleteData);
      return {};
    },

    replicate(requests, ctx) {
      return countStream(
        options.metrics,
        serveReplicate(
          {
            lookup,
            idleResponseMs: options.replicationIdleResponseMs,
            frames: options.replicationFrames,
            onShipped,
          },
          requests,
          ctx.signal,
        ),
      );
    },

    ...(options.replicationSessions
      ? ({
          replicateSession(requests, ctx) {
            const sessions = options.metrics.replicationSessions;
            return serveReplicateSession(
              {
                lookup,
                // An idle session's empty answer only has to draw a reply before each refresh is
                // due: twice per refresh period, not every Replicate long-poll period (4 × fewer
                // wake-ups on both brokers with the default lag bound).
                idleResponseMs: Math.max(
                  options.replicationIdleResponseMs,
                  Math.floor(options.replicationRefreshMs / 2),
                ),
                idleRefreshMs: options.replicationRefreshMs,
                frames: options.replicationFrames,
                onShipped,
                onOpen: () => sessions.inc({ side: "leader" }),
                onClose: () => sessions.dec({ side: "leader" }),
              },
              requests,
              ctx.signal,
              encodedResponsesOf(ctx.values),
            );
          },
        } satisfies Partial<ServiceImpl<typeof BrokerService>>)
      : {}),

    health(req) {
      let led = 0;
      let followed = 0;
      for (const p of options.partitions.all()) {
        if (p.role === "leader") led++;
        else if (p.role === "follower") followed++;
      }
      return {
        brokerId: options.brokerId,
        ready: options.ready(),
        partitionsLed: led,
        partitionsFollowed: followed,
        partitions: partitionProgress(options.partitions, req.partitions),
      };
    },
  };
}

/** Counts a per-partition Replicate stream while it is served. */
async function* countStream<T>(metrics: BrokerMetrics, stream: AsyncIterable<T>): AsyncGenerator<T> {
  metrics.replicationStreams.inc();
  try {
    yield* stream;
  } finally {
    metrics.replicationStreams.dec();
  }
}

/**
 * Reads requests and answers them concurrently (acks=all waits must not hold up the next request),
 * in completion order: each with one response, or with responses `emit`ted before its last one (a
 * SendBatches request answered per batch). A malformed request fails the whole stream.
 *
 * Bounded: a request holds its slot until its response is taken by the writer, which takes the next
 * one only once the client has read enough (HTTP/2 flow control). A client that does not read its
 * responses therefore fills the slots, and the stream stops being read (it is paused); if answers
 * still wait unread after `stall.timeoutMs`, the stream is ended with ResourceExhausted (reset, since
 * an error response would queue behind the unread ones).
 */
async function* answerConcurrently<Req, Res>(
  options: ProduceOptions,
  handle: {
    validate: (req: Req) => void;
    /** The request's last response; `emit` sends earlier ones. */
    answer: (options: ProduceOptions, req: Req, emit: (res: Res) => void) => Promise<Res>;
    name: string;
  },
  requests: AsyncIterable<Req>,
  signal: AbortSignal,
  stall: { timeoutMs: number; reset: () => void },
): AsyncGenerator<Res> {
  /** Responses to write; a request's slot is freed when its last one is taken. */
  const out = new AsyncQueue<{ res: Res; last: boolean }>();
  let inflight = 0;
  let inputDone = false;
  let slotFreed: (() => void) | undefined;
  const settle = () => {
    inflight--;
    const wake = slotFreed;
    slotFreed = undefined;
    wake?.();
    if (inputDone && inflight === 0) out.end();
  };
  const paused = async () => {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const freed = await new Promise<boolean>((resolve) => {
        slotFreed = () => resolve(true);
        timer = setTimeout(() => resolve(false), stall.timeoutMs);
      });
      clearTimeout(timer);
      if (freed || signal.aborted) return;
      if (out.size > 0) {
        out.fail(
          new OverloadedError(
            `${out.size} ${handle.name} responses unread for ${stall.timeoutMs} ms: the stream is ended; ` +
              "read responses as they come",
            stall.timeoutMs,
          ),
        );
        stall.reset();
        return;
      }
      // Every slot is a request still in progress (acks=all waiting on replicas): not the client's doing.
    }
  };
  void (async () => {
    try {
      for await (const req of requests) {
        handle.validate(req);
        while (inflight >= MAX_INFLIGHT_REQUESTS && !signal.aborted && !out.failed) await paused();
        if (out.failed) return;
        inflight++;
        const emit = (res: Res) => out.push({ res, last: false });
        handle.answer(options, req, emit).then(
          (res) => out.push({ res, last: true }),
          (err: unknown) => {
            out.fail(err);
            settle();
          },
        );
      }
      inputDone = true;
      if (inflight === 0) out.end();
    } catch (err) {
      out.fail(err);
    }
  })();
  for await (const { res, last } of out) {
    // Taken by the writer: the slot is free for the next request.
    if (last) settle();
    yield res;
  }
}
