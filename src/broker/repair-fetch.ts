import { createClient, type Transport } from "@connectrpc/connect";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";
import type { ReplicatedRecord, SegmentDamage } from "../storage/index.js";
import type { Partition } from "./partition.js";

export interface RepairFetchOptions {
  transport: (address: string) => Transport;
  headers: Record<string, string>;
  /** The whole fetch gives up after this long (ms): the range may not be below the leader's high watermark. */
  timeoutMs?: number;
}

/**
 * Fetches a damaged range `[fromOffset, toOffset)` from the partition's leader with FetchMessages (the
 * records with their offsets, timestamps, producer ids and message ids: exactly what the frames held).
 * The leader serves only records below its high watermark, which every in-sync replica holds.
 */
export async function fetchRangeFromLeader(
  options: RepairFetchOptions,
  p: Partition,
  damage: SegmentDamage,
): Promise<ReplicatedRecord[]> {
  const leader = p.leader;
  if (p.role !== "follower" || leader === undefined || !leader.address) {
    throw new Error(`no leader to repair ${p.key} from`);
  }
  const client = createClient(BrokerService, options.transport(leader.address));
  const want = damage.toOffset - damage.fromOffset;
  const out: ReplicatedRecord[] = [];
  const stream = client.fetchMessages(
    {
      topic: p.topic,
      partition: p.partition,
      offset: BigInt(damage.fromOffset),
      limit: BigInt(want),
      maxMessages: Math.min(want, 10_000),
    },
    { headers: options.headers, timeoutMs: options.timeoutMs ?? 30_000 },
  );
  for await (const batch of stream) {
    for (const m of batch.messages) {
      out.push({
        offset: Number(m.offset),
        timestamp: Number(m.timestamp),
        key: m.key,
        payload: m.payload,
        headers: m.headers.map((h) => ({ key: h.key, value: h.value })),
        ...(m.producerId ? { producerId: m.producerId } : {}),
        messageId: m.messageId,
      });
    }
    if (out.length >= want) break;
  }
  return out;
}
