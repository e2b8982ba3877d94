import { create } from "@bufbuild/protobuf";
import {
  PartitionProgressSchema,
  PartitionRole,
  type PartitionProgress,
  type PartitionRef,
} from "../gen/goulette/v1/broker_pb.js";
import type { PartitionManager } from "./partition-manager.js";

/** At most this many partitions are answered per Health call (a bounded answer for a malformed ask). */
export const MAX_PROGRESS_PARTITIONS = 10_000;

/**
 * How far this broker's replica of each asked partition goes (Health): the sentinel compares the
 * surviving replicas of a partition whose leader died and makes the most up-to-date one the new leader,
 * so records every in-sync replica had are not lost; the console shows the log range, size and in-sync
 * set. Partitions not held here are left out.
 */
export function partitionProgress(
  partitions: PartitionManager,
  asked: readonly PartitionRef[],
): PartitionProgress[] {
  const answers: PartitionProgress[] = [];
  for (const ref of asked.slice(0, MAX_PROGRESS_PARTITIONS)) {
    const p = partitions.get(ref.topic, ref.partition);
    if (!p || p.closed) continue;
    answers.push(
      create(PartitionProgressSchema, {
        topic: ref.topic,
        partition: ref.partition,
        lastEpoch: BigInt(Math.max(0, p.epochs.lastEpoch)),
        logEndOffset: BigInt(p.log.logEndOffset),
        highWatermark: BigInt(p.highWatermark),
        logStartOffset: BigInt(p.log.logStartOffset),
        sizeBytes: BigInt(p.log.sizeBytes),
        role:
          p.role === "leader"
            ? PartitionRole.LEADER
            : p.role === "follower"
              ? PartitionRole.FOLLOWER
              : PartitionRole.UNSPECIFIED,
        inSyncReplicas: p.role === "leader" ? p.inSyncReplicas() : [],
        damaged: p.damaged,
      }),
    );
  }
  return answers;
}
