import { Code } from "@connectrpc/connect";
import { GouletteError, NotFoundError } from "../errors.js";

/** Response headers (and Connect error metadata) naming the partition leader this broker knows. */
export const LEADER_ID_HEADER = "goulette-leader-id";
export const LEADER_ADDRESS_HEADER = "goulette-leader-address";

/**
 * This broker does not lead the partition (it follows it, or lost it). Retryable: the client asks the
 * sentinels for the current leader (or uses the one named here) and tries again.
 */
export class NotPartitionLeaderError extends GouletteError {
  /** The leader this broker knows of; empty when it knows none. */
  readonly leaderId: string;
  readonly leaderAddress: string;

  constructor(topic: string, partition: number, leaderId: string, leaderAddress: string) {
    super(
      `this broker does not lead ${topic}#${partition}` +
        (leaderId ? `; the leader it knows is ${leaderId} (${leaderAddress || "address unknown"})` : ""),
      Code.Unavailable,
      true,
    );
    this.leaderId = leaderId;
    this.leaderAddress = leaderAddress;
  }

  /** The leader hint, as error metadata: the client goes there without asking the sentinels. */
  override wireMetadata(): Record<string, string> | undefined {
    if (!this.leaderId) return undefined;
    return { [LEADER_ID_HEADER]: this.leaderId, [LEADER_ADDRESS_HEADER]: this.leaderAddress };
  }
}

/**
 * A leader that has not reached the sentinels within the heartbeat TTL refuses writes: the sentinels may
 * have declared it dead and moved its partitions already.
 */
export class LostContactError extends NotPartitionLeaderError {
  constructor(topic: string, partition: number) {
    super(topic, partition, "", "");
    this.message =
      `this broker has not reached the sentinels within the heartbeat TTL; ` +
      `it takes no writes for ${topic}#${partition} until it does`;
  }
}

/**
 * An offset past the partition's high watermark (a commit, or a group's committed read start): records
 * past it are not on every in-sync replica yet, and a leader change may replace them with others, which
 * a consumer resuming there would skip. Retryable: the high watermark catches up within a fetch or two
 * (a new leader learns it from its followers).
 */
export class BeyondHighWatermarkError extends GouletteError {
  constructor(what: string, offset: number, topic: string, partition: number, highWatermark: number) {
    super(
      `${what} ${offset} is beyond the high watermark ${highWatermark} of ${topic}#${partition}: ` +
        `the records before it are not on every in-sync replica yet; retry once they are`,
      Code.Unavailable,
      true,
    );
  }
}

/** The broker holds no replica of this topic partition. */
export class UnknownPartitionError extends NotFoundError {
  constructor(topic: string, partition: number) {
    super(`this broker holds no replica of ${topic}#${partition}`);
  }
}

/** An acks=all record or a committed offset did not reach every in-sync replica in time. */
export class NotEnoughReplicasError extends GouletteError {
  constructor(message: string) {
    super(message, Code.Unavailable, true);
  }
}

/**
 * A group member committed (or took a partition over) with an epoch below the partition's fence for the
 * group: the partition was given to another member since. Retrying does not help; the member rejoins.
 */
export class FencedMemberError extends GouletteError {
  readonly fence: number;
  readonly memberEpoch: number;

  constructor(
    what: "commit" | "offset fetch",
    topic: string,
    partition: number,
    group: string,
    fence: number,
    memberEpoch: number,
  ) {
    super(
      `${what} refused: partition ${topic}/${partition} of group ${group} was given to another member ` +
        `(epoch ${fence}; this member's is ${memberEpoch}) — rejoin the group`,
      Code.Aborted,
    );
    this.fence = fence;
    this.memberEpoch = memberEpoch;
  }
}

/** A partition keeps offsets of a bounded number of groups; a new group beyond it is refused. */
export class TooManyConsumerGroupsError extends GouletteError {
  constructor(topic: string, partition: number, limit: number) {
    super(
      `partition ${topic}/${partition} already keeps the offsets of ${limit} consumer groups, the limit ` +
        "(broker --max-consumer-groups); delete those of unused groups (DeleteCommittedOffset) before " +
        "another group commits here",
      Code.ResourceExhausted,
    );
  }
}

/** The broker holds as many partitions as it will (PartitionManagerOptions.maxPartitions). */
export class TooManyPartitionsError extends GouletteError {
  constructor(brokerId: string, topic: string, partition: number, limit: number) {
    super(
      `broker ${brokerId} already holds ${limit} partitions, the limit (--max-partitions); it will not ` +
        `open ${topic}/${partition}: add brokers, remove unused topics, or raise the limit`,
      Code.ResourceExhausted,
    );
  }
}
