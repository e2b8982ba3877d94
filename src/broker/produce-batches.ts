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
 * Handles every batch of the request as the SendMessage request for its partition (the partitions are
 * independent: each has its own log, producer table and high watermark), and answers once every batch
 * is answered, in request order.
 */
export async function produceBatches(options: ProduceOptions, req: BatchesRequest): Promise<BatchesResponse> {
  const responses = await Promise.all(startBatches(options, req));
  return { $typeName: "goulette.v1.BatchesResponse", requestId: req.requestId, responses, more: false };
}

/**
 * produceBatches for a request that asked for answer_per_batch: the batches finished in one turn of the
 * event loop are answered together by `emit` (a BatchesResponse with `more` set) as soon as the turn
 * ends, and the returned response, the request's last, carries those finished since.
 */
export async function produceBatchesPerBatch(
  options: ProduceOptions,
  req: BatchesRequest,
  emit: (res: BatchesResponse) => void,
): Promise<BatchesResponse> {
  let finished: MessageResponse[] = [];
  let flushQueued = false;
  const flush = () => {
    flushQueued = false;
    if (finished.length === 0) return; // taken by the last response meanwhile
    emit({
      $typeName: "goulette.v1.BatchesResponse",
      requestId: req.requestId,
      responses: finished,
      more: true,
    });
    finished = [];
  };
  const answers = startBatches(options, req, (res) => {
    finished.push(res);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flush);
    }
  });
  await Promise.all(answers);
  const last = finished;
  finished = [];
  return { $typeName: "goulette.v1.BatchesResponse", requestId: req.requestId, responses: last, more: false };
}

/**
 * Starts every batch of the request, all in this turn of the event loop, each timed from the request's
 * arrival; `onFinished` hears each batch's response as it comes. Not in slices with turns between: a
 * producer's next request may carry the same partitions, and its batches must not be appended before
 * this one's — the order check lets a producer a partition does not know yet through, so a batch
 * started late could land after its successor (docs/benchmarks.md, "Produce spread: a request's batches
 * started in turns and answered one by one").
 */
function startBatches(
  options: ProduceOptions,
  req: BatchesRequest,
  onFinished?: (res: MessageResponse) => void,
): Promise<MessageResponse>[] {
  const received = performance.now();
  return req.batches.map((batch) => {
    const answer = produce(options, asMessageRequest(req, batch), received);
    if (onFinished !== undefined) void answer.then(onFinished, () => undefined);
    return answer;
  });
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
