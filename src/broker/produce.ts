import { create } from "@bufbuild/protobuf";
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from "../errors.js";
import { validateTopicName } from "../fsm/validation.js";
import {
  Acks,
  MessageResponseSchema,
  ProduceError,
  type MessageAck,
  type MessageRequest,
  type MessageResponse,
  type ProduceRecord,
} from "../gen/goulette/v1/broker_pb.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import { RecordTooLargeError, type AppendRecord } from "../storage/index.js";
import { LostContactError, NotEnoughReplicasError, NotPartitionLeaderError } from "./errors.js";
import type { Partition } from "./partition.js";
import { FORGOTTEN, PENDING } from "./producer-table.js";
import { messageAck } from "./wire.js";

export interface ProduceOptions {
  /** The partition, or undefined when this broker holds no replica of it. */
  lookup: (topic: string, partition: number) => Partition | undefined;
  /** Largest payload accepted (bytes). */
  maxMessageBytes: number;
  /** False while this broker may have been declared dead by the sentinels: no leader takes writes. */
  writable: () => boolean;
  metrics: BrokerMetrics;
}

const MAX_PRODUCER_ID_BYTES = 0xffff;

/**
 * Stream-level checks of one SendMessage request: a request that breaks them is malformed (the stream
 * fails with InvalidArgument), unlike a record that is too large or a partition led elsewhere, which
 * are answered per record in the acks.
 */
export function validateMessageRequest(req: MessageRequest): void {
  validateTopicName(req.topic);
  if (req.records.length === 0) {
    throw new InvalidArgumentError(`a MessageRequest for ${req.topic}#${req.partition} has no records`);
  }
  if (req.acks !== Acks.UNSPECIFIED && req.acks !== Acks.LEADER && req.acks !== Acks.ALL) {
    throw new InvalidArgumentError(`acks must be ACKS_LEADER or ACKS_ALL, got ${req.acks}`);
  }
  if (Buffer.byteLength(req.producerId, "utf8") > MAX_PRODUCER_ID_BYTES) {
    throw new InvalidArgumentError(`producer_id is longer than ${MAX_PRODUCER_ID_BYTES} bytes`);
  }
}

/**
 * Handles one SendMessage request: answers retries (same producer id and message id) from the producer
 * table, appends the new records with one storage append, and answers once they are stored on the leader
 * (acks=leader) or on every in-sync replica (acks=all, refused while fewer than --min-insync-replicas
 * are in sync). Per-record problems become error acks.
 */
export async function produce(
  options: ProduceOptions,
  req: MessageRequest,
  /**
   * When the request reached the broker (performance.now()); a SendBatches request's batches start one
   * after another and share it.
   */
  received = performance.now(),
): Promise<MessageResponse> {
  const acks = new Array<MessageAck>(req.records.length);
  const response = create(MessageResponseSchema, { topic: req.topic, partition: req.partition });
  response.acks = acks;
  const all = indexes(req.records.length);
  const p = options.lookup(req.topic, req.partition);
  if (p === undefined) {
    const message = `this broker holds no replica of ${req.topic}#${req.partition}`;
    for (const i of all) acks[i] = ack(messageIdAt(req, i), -1, ProduceError.UNKNOWN_PARTITION, message);
    options.metrics.produceErrors.inc({ error: "unknown_partition" }, all.length);
    return response;
  }
  let generation: number;
  try {
    generation = await p.leaderReady();
    if (!options.writable()) throw new LostContactError(p.topic, p.partition);
    // Refused before anything is appended: acks=all must not be answered by fewer replicas than required.
    if (req.acks === Acks.ALL) p.requireMinInSync();
  } catch (err) {
    fail(options, req, acks, all, err);
    return response;
  }
  const pending: number[] = [];
  await appendNew(options, p, generation, req, all, acks, pending);
  if (pending.length > 0) {
    // Retries of records whose first append is still in flight: wait for it, then look again.
    await p.settled();
    await appendNew(options, p, generation, req, pending, acks, undefined);
  }
  const appended = performance.now();
  if (req.acks === Acks.ALL) await waitForReplicas(options, p, generation, req, acks);
  // The fence again, at acknowledgement: the sentinels may have moved leadership since admission.
  if (!options.writable()) failAcknowledged(options, p, req, acks);
  observeLatency(options.metrics, req.acks, acks, { received, appended });
  return response;
}

/**
 * One weighted observation per histogram for the request: its successful acks all share the same
 * latency, and the same split between the leader's append and the wait for the replicas.
 */
function observeLatency(
  metrics: BrokerMetrics,
  mode: Acks,
  acks: MessageAck[],
  times: { received: number; appended: number },
): void {
  let ok = 0;
  for (const a of acks) if (a.error === ProduceError.NONE) ok++;
  if (ok === 0) return;
  const now = performance.now();
  const all = mode === Acks.ALL;
  metrics.produceLatency.observe(all ? ACKS_ALL : ACKS_LEADER, (now - times.received) / 1000, ok);
  metrics.produceStage.observe(STAGE_APPEND, (times.appended - times.received) / 1000, ok);
  if (all) metrics.produceStage.observe(STAGE_REPLICATE, (now - times.appended) / 1000, ok);
}

const ACKS_ALL = { acks: "all" } as const;
const ACKS_LEADER = { acks: "leader" } as const;
const STAGE_APPEND = { stage: "append" } as const;
const STAGE_REPLICATE = { stage: "replicate" } as const;

/**
 * Appends the records at `slots` that are not duplicates. In-flight duplicates go to `pending` (or,
 * on the second pass, when `pending` is undefined, are answered as failed: their first attempt failed).
 */
async function appendNew(
  options: ProduceOptions,
  p: Partition,
  generation: number,
  req: MessageRequest,
  slots: readonly number[],
  acks: MessageAck[],
  pending: number[] | undefined,
): Promise<void> {
  const producerId = req.producerId;
  const table = p.producers;
  if (producerId !== "") table.touch(producerId);
  const batch: AppendRecord[] = [];
  const appended: number[] = [];
  let payloadBytes = 0;
  // The order check, until the first new record passes it (the rest follow it in the same append).
  let mustFollow =
    producerId !== "" && req.previousMessageId > 0n ? predecessor(req, acks, slots[0] ?? 0) : undefined;
  for (let n = 0; n < slots.length; n++) {
    const i = slots[n] as number;
    const record = req.records[i] as ProduceRecord;
    if (record.payload.length > options.maxMessageBytes) {
      const message = `payload of ${record.payload.length} bytes exceeds --max-message-bytes ${options.maxMessageBytes}`;
      acks[i] = ack(record.messageId, -1, ProduceError.MESSAGE_TOO_LARGE, message);
      options.metrics.produceErrors.inc({ error: "message_too_large" });
      continue;
    }
    if (record.timestamp < 0n || record.timestamp > BigInt(Number.MAX_SAFE_INTEGER)) {
      acks[i] = ack(
        record.messageId,
        -1,
        ProduceError.INVALID,
        `timestamp ${record.timestamp} is out of range`,
      );
      options.metrics.produceErrors.inc({ error: "invalid" });
      continue;
    }
    if (producerId !== "") {
      if (mustFollow !== undefined && table.lookup(producerId, record.messageId) === undefined) {
        const verdict = table.follows(producerId, mustFollow);
        if (verdict === "wait" && pending) {
          // An append of this producer is in flight (maybe the predecessor): look again once it landed.
          for (let m = n; m < slots.length; m++) pending.push(slots[m] as number);
          break;
        }
        if (verdict !== "yes") {
          refuseOutOfOrder(options, req, acks, slots.slice(n), mustFollow);
          break;
        }
        mustFollow = undefined;
      }
      const known = table.claim(producerId, record.messageId);
      if (known === PENDING) {
        if (pending) {
          // Its first attempt is still being appended: this record and the ones after it wait for it,
          // so none of them is stored before it.
          for (let m = n; m < slots.length; m++) pending.push(slots[m] as number);
          break;
        }
        acks[i] = ack(
          record.messageId,
          -1,
          ProduceError.STORAGE,
          "an earlier attempt is still unresolved; retry",
        );
        continue;
      }
      if (known !== undefined) {
        acks[i] = messageAck(record.messageId, known === FORGOTTEN ? -1 : known, ProduceError.NONE, "", true);
        // Stored already: the records after it follow it.
        mustFollow = undefined;
        continue;
      }
    }
    // One object shape for every record (timestamp undefined = the append time), no spread per record.
    batch.push({
      payload: record.payload,
      key: record.key,
      headers: record.headers,
      timestamp: record.timestamp > 0n ? Number(record.timestamp) : undefined,
      producerId,
      messageId: record.messageId,
    });
    appended.push(i);
    payloadBytes += record.payload.length;
  }
  if (batch.length === 0) return;
  try {
    const result = await p.trackAppend(p.log.append(batch));
    // Demoted while the append ran: the new leader may not have these records; the retry is deduped.
    if (generation !== p.generation) p.requireLeader();
    if (generation !== p.generation)
      throw new FailedPreconditionError("leadership changed during the append");
    for (let j = 0; j < appended.length; j++) {
      const i = appended[j] as number;
      const offset = result.baseOffset + j;
      if (producerId !== "") table.record(producerId, messageIdAt(req, i), offset);
      acks[i] = ack(messageIdAt(req, i), offset);
    }
    p.onLocalAppend(result.lastOffset + 1);
    options.metrics.messagesIn.inc(batch.length);
    options.metrics.bytesIn.inc(payloadBytes);
  } catch (err) {
    if (producerId !== "") for (const i of appended) table.release(producerId, messageIdAt(req, i));
    fail(options, req, acks, appended, err);
  }
}

/**
 * The message the record at `slot` must follow: the nearest earlier record of the request that was not
 * refused for itself (too large, invalid: the producer gives those up), else the request's
 * previous_message_id.
 */
function predecessor(req: MessageRequest, acks: readonly MessageAck[], slot: number): bigint {
  for (let j = slot - 1; j >= 0; j--) {
    const error = acks[j]?.error;
    if (error === ProduceError.MESSAGE_TOO_LARGE || error === ProduceError.INVALID) continue;
    return messageIdAt(req, j);
  }
  return req.previousMessageId;
}

/** Answers OUT_OF_ORDER for `slots`: nothing of them is stored, the producer resends the earlier ones first. */
function refuseOutOfOrder(
  options: ProduceOptions,
  req: MessageRequest,
  acks: MessageAck[],
  slots: readonly number[],
  previousId: bigint,
): void {
  const message = `message ${messageIdAt(req, slots[0] ?? 0)} of producer ${req.producerId} follows message ${previousId}, which this leader has not stored: send the earlier messages first`;
  for (const i of slots) acks[i] = ack(messageIdAt(req, i), -1, ProduceError.OUT_OF_ORDER, message);
  options.metrics.produceErrors.inc({ error: "out_of_order" }, slots.length);
}

/** acks=all: the successful acks wait until the high watermark passes their offsets. */
async function waitForReplicas(
  options: ProduceOptions,
  p: Partition,
  generation: number,
  req: MessageRequest,
  acks: MessageAck[],
): Promise<void> {
  const waiting: number[] = [];
  let end = -1;
  acks.forEach((a, i) => {
    if (a.error !== ProduceError.NONE || a.offset < 0n) return;
    waiting.push(i);
    end = Math.max(end, Number(a.offset) + 1);
  });
  if (waiting.length === 0) return;
  try {
    await p.waitForHighWatermark(end, generation);
  } catch (err) {
    fail(options, req, acks, waiting, err);
  }
}

/** Turns every successful ack into LostContactError (the records stay; a retry is deduplicated). */
function failAcknowledged(
  options: ProduceOptions,
  p: Partition,
  req: MessageRequest,
  acks: MessageAck[],
): void {
  const slots: number[] = [];
  acks.forEach((a, i) => {
    if (a.error === ProduceError.NONE) slots.push(i);
  });
  if (slots.length > 0) fail(options, req, acks, slots, new LostContactError(p.topic, p.partition));
}

/** Answers the records at `slots` with the error `err` maps to. */
function fail(
  options: ProduceOptions,
  req: MessageRequest,
  acks: MessageAck[],
  slots: readonly number[],
  err: unknown,
): void {
  const [code, label] = classify(err);
  const message = errorMessage(err);
  for (const i of slots) {
    const a = ack(messageIdAt(req, i), -1, code, message);
    if (err instanceof NotPartitionLeaderError) {
      a.leaderId = err.leaderId;
      a.leaderAddress = err.leaderAddress;
    }
    acks[i] = a;
  }
  options.metrics.produceErrors.inc({ error: label }, slots.length);
}

function classify(err: unknown): [ProduceError, string] {
  if (err instanceof NotPartitionLeaderError) return [ProduceError.NOT_LEADER, "not_leader"];
  if (err instanceof NotEnoughReplicasError) return [ProduceError.NOT_ENOUGH_REPLICAS, "not_enough_replicas"];
  if (err instanceof RecordTooLargeError) return [ProduceError.MESSAGE_TOO_LARGE, "message_too_large"];
  if (err instanceof InvalidArgumentError) return [ProduceError.INVALID, "invalid"];
  // A truncation (demotion) or a close cut the append: the partition is led elsewhere now.
  if (err instanceof FailedPreconditionError) return [ProduceError.NOT_LEADER, "not_leader"];
  // StorageError (ENOSPC, EIO, EROFS...): nothing of the append is readable; the log stays usable.
  return [ProduceError.STORAGE, "storage"];
}

function messageIdAt(req: MessageRequest, i: number): bigint {
  return (req.records[i] as ProduceRecord).messageId;
}

function indexes(n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

function ack(messageId: bigint, offset: number, error = ProduceError.NONE, errorMessage = ""): MessageAck {
  return messageAck(messageId, offset, error, errorMessage);
}
