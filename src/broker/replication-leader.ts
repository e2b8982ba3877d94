import { create } from "@bufbuild/protobuf";
import { FailedPreconditionError, UnavailableError } from "../errors.js";
import { validateBrokerId, validateTopicName } from "../fsm/validation.js";
import {
  ReplicateResponseSchema,
  type LeaderEpoch,
  type ReplicateRequest,
  type ReplicateResponse,
  type ReplicatedRecord,
} from "../gen/goulette/v1/broker_pb.js";
import { RECORD_MAGIC } from "../storage/index.js";
import { UnknownPartitionError } from "./errors.js";
import { divergencePoint } from "./leader-epochs.js";
import type { Partition } from "./partition.js";
import { toReplicatedRecord } from "./wire.js";

export interface ReplicationLeaderOptions {
  lookup: (topic: string, partition: number) => Partition | undefined;
  /** With nothing new, a fetch is answered after this long anyway (carries the high watermark). */
  idleResponseMs: number;
  /** Records per response. */
  maxRecords?: number;
  /** Bytes of records per response (at least one record is always sent). */
  maxBytes?: number;
  /** Answer followers that accept them with frames (default true; false: records, as before frames). */
  frames?: boolean;
  /** Records shipped, by encoding (the goulette_broker_replicated_records_total counter). */
  onShipped?: (encoding: ShippedEncoding, records: number) => void;
}

/** How records travel to a follower: stored frames as they are, or one ReplicatedRecord each. */
export type ShippedEncoding = "frames" | "records";

/**
 * The leader's side of Replicate. Strict request/response: the follower sends its log end offset, the
 * leader answers with the records after it (long-polling when there are none) plus the consumer-offset
 * changes, and the follower's next request (sent after it stored them) acknowledges both. The first
 * request carries the follower's leader-epoch history; when its log diverged from the leader's, the
 * first answer is only `truncate_to`.
 */
export async function* serveReplicate(
  options: ReplicationLeaderOptions,
  requests: AsyncIterable<ReplicateRequest>,
  abort: AbortSignal,
): AsyncGenerator<ReplicateResponse> {
  let session:
    { p: Partition; followerId: string; stream: number; generation: number; frames: boolean } | undefined;
  /** Consumer-offset version sent on this stream (undefined: the next answer sends the whole table). */
  let sentVersion: number | undefined;
  /**
   * Log start sent on this stream: a moved one (DeleteRecords) is answered at once, and the follower's
   * next request reports its own (what DeleteRecords waits for).
   */
  let sentLogStart = -1;
  for await (const req of requests) {
    if (session === undefined) {
      validateTopicName(req.topic);
      validateBrokerId(req.followerId);
      const p = options.lookup(req.topic, req.partition);
      if (p === undefined) throw new UnknownPartitionError(req.topic, req.partition);
      const generation = await p.leaderReady();
      if (!p.hasFollower(req.followerId)) {
        throw new UnavailableError(
          `${req.followerId} is not a follower of ${p.key} in epoch ${p.epoch} here`,
        );
      }
      if (Number(req.epoch) > p.epoch) {
        throw new UnavailableError(
          `follower ${req.followerId} has epoch ${req.epoch} of ${p.key}, newer than this leader's ${p.epoch}`,
        );
      }
      session = {
        p,
        followerId: req.followerId,
        stream: p.openStream(req.followerId),
        generation,
        frames: options.frames !== false && acceptsFrames(req.frameFormat),
      };
      const fetchOffset = Number(req.fetchOffset);
      const truncateTo = firstCut(p, req.leaderEpochs, fetchOffset);
      if (truncateTo !== undefined) {
        yield create(ReplicateResponseSchema, {
          truncateTo: BigInt(truncateTo),
          highWatermark: BigInt(p.highWatermark),
          epoch: BigInt(p.epoch),
        });
        continue;
      }
    }
    const { p, followerId, stream, generation } = session;
    const fetchOffset = Number(req.fetchOffset);
    if (p.requireLeader() !== generation) {
      throw new UnavailableError(`leadership of ${p.key} changed; fetch again`);
    }
    if (!p.hasFollower(followerId)) {
      throw new UnavailableError(`${followerId} is no longer a replica of ${p.key}`);
    }
    if (fetchOffset > p.log.logEndOffset) {
      throw new FailedPreconditionError(
        `fetch offset ${fetchOffset} is past the log end ${p.log.logEndOffset} of ${p.key}`,
      );
    }
    if (fetchOffset < p.log.logStartOffset) {
      // Retention moved the leader's log start past the follower: it restarts its log there.
      yield create(ReplicateResponseSchema, {
        truncateTo: BigInt(p.log.logStartOffset),
        highWatermark: BigInt(p.highWatermark),
        epoch: BigInt(p.epoch),
      });
      continue;
    }
    p.onFetch(
      followerId,
      stream,
      fetchOffset,
      sentVersion === undefined ? undefined : Number(req.offsetsVersion),
      req.logStartOffset === undefined ? undefined : Number(req.logStartOffset),
    );

    const deadline = Date.now() + options.idleResponseMs;
    for (;;) {
      if (p.requireLeader() !== generation) {
        throw new UnavailableError(`leadership of ${p.key} changed; fetch again`);
      }
      const now = Date.now();
      if (
        p.shippableEnd > fetchOffset ||
        sentVersion !== p.offsets.version ||
        sentLogStart !== p.log.logStartOffset ||
        now >= deadline ||
        abort.aborted
      ) {
        break;
      }
      await p.dataSignal.wait(deadline - now, abort);
    }
    if (abort.aborted) return;
    const answer = await readAnswer(p, fetchOffset, sentVersion, {
      maxRecords: options.maxRecords ?? DEFAULT_MAX_RECORDS,
      maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
      frames: session.frames,
    });
    sentVersion = answer.sentVersion;
    sentLogStart = Number(answer.response.logStartOffset);
    p.onResponse(followerId, stream, answer.shippableEnd);
    if (answer.count > 0) options.onShipped?.(answer.encoding, answer.count);
    yield answer.response;
  }
}

export const DEFAULT_MAX_RECORDS = 1000;
export const DEFAULT_MAX_BYTES = 1024 * 1024;

/** One answer to a follower fetching from `fetchOffset` (Replicate, or a partition of a session). */
export interface Answer {
  response: ReplicateResponse;
  /** The consumer-offset version the answer brings the follower to. */
  sentVersion: number;
  /** What the follower could have copied when the answer was made (for Partition.onResponse). */
  shippableEnd: number;
  /** Stored bytes of the records in it. */
  bytes: number;
  /** Records in it, and how they travel. */
  count: number;
  encoding: ShippedEncoding;
}

/**
 * Reads the records after `fetchOffset` that followers may copy (within the limits) and the
 * consumer-offset changes since `sentVersion` (all of them when undefined), as one answer. With
 * `frames`, the records go as the stored frames' bytes (a follower that accepts them writes them as
 * they are), else one ReplicatedRecord each.
 */
export async function readAnswer(
  p: Partition,
  fetchOffset: number,
  sentVersion: number | undefined,
  limits: { maxRecords: number; maxBytes: number; frames?: boolean },
): Promise<Answer> {
  const end = p.shippableEnd;
  let records: ReplicatedRecord[] = [];
  let frames: Uint8Array | undefined;
  let count = 0;
  let bytes = 0;
  if (end > fetchOffset) {
    const options = { endOffset: end };
    if (limits.frames === true) {
      const run = await p.log.readFrames(fetchOffset, limits.maxRecords, limits.maxBytes, options);
      frames = run.bytes;
      count = run.count;
      bytes = run.bytes.length;
    } else {
      const stored = await p.log.read(fetchOffset, limits.maxRecords, limits.maxBytes, options);
      records = stored.map(toReplicatedRecord);
      count = stored.length;
      for (const r of stored) bytes += r.sizeBytes;
    }
  }
  const { changes, snapshot } = p.offsets.changesSince(sentVersion);
  const version = p.offsets.version;
  const response = create(ReplicateResponseSchema, {
    records,
    ...(frames === undefined ? {} : { frames }),
    highWatermark: BigInt(p.highWatermark),
    logStartOffset: BigInt(p.log.logStartOffset),
    epoch: BigInt(p.epoch),
    leaderEpochs:
      count > 0
        ? p.epochs.covering(fetchOffset, fetchOffset + count - 1).map((e) => ({
            epoch: BigInt(e.epoch),
            startOffset: BigInt(e.startOffset),
          }))
        : [],
    // Each change is the group's whole entry: offset -1 = none, member_epoch = its fence; (-1, 0)
    // deletes the group (see OffsetChange).
    offsets: changes.map((c) => ({
      consumerGroup: c.group,
      topic: p.topic,
      partition: p.partition,
      offset: BigInt(c.offset),
      memberEpoch: BigInt(c.fence),
    })),
    offsetsVersion: BigInt(version),
    offsetsSnapshot: snapshot,
  });
  return {
    response,
    sentVersion: version,
    shippableEnd: end,
    bytes,
    count,
    encoding: limits.frames === true ? "frames" : "records",
  };
}

/** Whether a follower that stores frames of format `followerFormat` as they are can take this log's. */
export function acceptsFrames(followerFormat: number): boolean {
  return followerFormat >= RECORD_MAGIC;
}

/** Where a new stream's follower must cut its log first, if anywhere. */
export function firstCut(
  p: Partition,
  followerEpochs: readonly LeaderEpoch[],
  fetchOffset: number,
): number | undefined {
  const follower = followerEpochs.map((e) => ({
    epoch: Number(e.epoch),
    startOffset: Number(e.startOffset),
  }));
  const cut = divergencePoint(follower, fetchOffset, p.epochs.entries, p.log.logEndOffset);
  if (cut !== undefined) return cut;
  // Behind the leader's log start (retention): the follower restarts its log there.
  return fetchOffset < p.log.logStartOffset ? p.log.logStartOffset : undefined;
}
