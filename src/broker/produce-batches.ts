import { setImmediate as nextTurn } from "node:timers/promises";
import { InvalidArgumentError } from "../errors.js";
import type {
  BatchesRequest,
  BatchesResponse,
  MessageRequest,
  MessageResponse,
} from "../gen/goulette/v1/broker_pb.js";
import { produce, validateMessageRequest, type ProduceOptions } from "./produce.js";

/** Batches per BatchesRequest at most (the SetTopicRoles bound): a larger request is malformed. */
export const MAX_BATCHES_PER_REQUEST = 10_000;

/**
 * Checks of a whole BatchesRequest, before anything of it is stored: every batch must pass the
 * checks of a SendMessage request, and a partition may appear once (two batches of one partition in
 * one request would have no defined order). A request that breaks them is malformed as a whole.
 */
export function validateBatchesRequest(req: BatchesRequest): void {
  if (req.batches.length === 0) {
    throw new InvalidArgumentError(`BatchesRequest ${req.requestId} carries no batch`);
  }
  if (req.batches.length > MAX_BATCHES_PER_REQUEST) {
    throw new InvalidArgumentError(
      `BatchesRequest ${req.requestId} carries ${req.batches.length} batches; at most ${MAX_BATCHES_PER_REQUEST}`,
    );
  }
  const seen = new Set<string>();
  for (const batch of req.batches) {
    const key = `${batch.topic}#${batch.partition}`;
    if (seen.has(key)) {
      throw new InvalidArgumentError(`BatchesRequest ${req.requestId} carries two batches for ${key}`);
    }
    seen.add(key);
    validateMessageRequest(asMessageRequest(req, batch));
  }
}

/**
 * Batches of one request started per turn of the event loop. A producer spreading records over
 * thousands of partitions sends requests of a thousand batches; started at once, their appends (each
 * a write on the event loop) and what they resolve ran as one stretch of tens of milliseconds, during
 * which this broker read no replication acknowledgement and sent no answer, so the other brokers
 * waited on it and the three took turns instead of working together (docs/benchmarks.md, "Produce
 * spread: a request's batches started in turns").
 */
export const BATCHES_PER_TURN = 64;

/**
 * Handles every batch of the request as the SendMessage request for its partition (the partitions are
 * independent: each has its own log, producer table and high watermark), started BATCHES_PER_TURN at a
 * time with a turn of the event loop between, and answers once every batch is answered, in request order.
 */
export async function produceBatches(options: ProduceOptions, req: BatchesRequest): Promise<BatchesResponse> {
  const answers: Promise<MessageResponse>[] = [];
  for (let i = 0; i < req.batches.length; i++) {
    if (i > 0 && i % BATCHES_PER_TURN === 0) await nextTurn();
    const answer = produce(
      options,
      asMessageRequest(req, req.batches[i] as BatchesRequest["batches"][number]),
    );
    // Awaited below with the rest; until then a failure must not count as unhandled.
    answer.catch(() => undefined);
    answers.push(answer);
  }
  const responses = await Promise.all(answers);
  return { $typeName: "goulette.v1.BatchesResponse", requestId: req.requestId, responses };
}

/** The SendMessage request a batch stands for. */
function asMessageRequest(req: BatchesRequest, batch: BatchesRequest["batches"][number]): MessageRequest {
  return {
    $typeName: "goulette.v1.MessageRequest",
    topic: batch.topic,
    partition: batch.partition,
    producerId: req.producerId,
    acks: req.acks,
    records: batch.records,
    previousMessageId: batch.previousMessageId,
  };
}
