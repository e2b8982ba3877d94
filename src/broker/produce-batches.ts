import { InvalidArgumentError } from "../errors.js";
import { forEachYielding } from "../common/yielding.js";
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
 * Handles every batch of the request as the SendMessage request for its partition (the partitions are
 * independent: each has its own log, producer table and high watermark), and answers once every batch
 * is answered, in request order. The batches are started one after another, yielding to the event loop
 * whenever a slice of work is used: a producer spreading records over thousands of partitions sends
 * requests of a thousand batches, and started in one go their appends (each a write on the event loop)
 * held the loop for hundreds of milliseconds, during which this broker read no replication
 * acknowledgement and sent no answer (docs/benchmarks.md, "Produce spread: a request's batches started
 * in turns").
 */
export async function produceBatches(options: ProduceOptions, req: BatchesRequest): Promise<BatchesResponse> {
  const answers = new Array<Promise<MessageResponse>>(req.batches.length);
  await forEachYielding(req.batches, 1, (batch, i) => {
    const answer = produce(options, asMessageRequest(req, batch));
    // Awaited below with the rest; until then a failure must not count as unhandled.
    answer.catch(() => undefined);
    answers[i] = answer;
    return Promise.resolve();
  });
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
