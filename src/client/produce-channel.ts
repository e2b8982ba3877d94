import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  BatchesRequestSchema,
  BrokerService,
  MessageRequestSchema,
  type BatchesRequest,
  type BatchesResponse,
  type MessageRequest,
  type MessageResponse,
} from "../gen/goulette/v1/broker_pb.js";
import { AsyncQueue } from "../common/async-queue.js";
import { openEncodedRequests, type EncodedRequestStream } from "./encoded-requests.js";
import { ProduceUnsupportedError } from "./errors.js";
import { encodeBatchesEnvelope, encodeMessageEnvelope } from "./produce-encoding.js";
import type { ClientTransport } from "./transport.js";

/**
 * Sends produce requests to one broker, each carrying batches of many partitions (SendBatches, or
 * ProduceBatches for clients without full-duplex streams); each resolves with that request's response.
 * A broker older than those RPCs answers UNIMPLEMENTED (nothing stored): the channel then sends each
 * batch as its own SendMessage (Produce) request, from then on.
 */
export interface ProduceChannel {
  /**
   * Resolves with the request's last response. A request that asked for answer_per_batch may first get
   * responses with `more` set: `partial` hears them. Rejects when the connection fails or no response
   * comes within the request timeout (counted again from each response).
   */
  send(request: BatchesRequest, partial?: (res: BatchesResponse) => void): Promise<BatchesResponse>;
  /** Fails what is in flight and releases the connection. */
  close(): void;
}

/** A channel of one request type: batches, or one partition's records (older brokers). */
interface Channel<Req, Res> {
  send(request: Req, partial?: (res: Res) => void): Promise<Res>;
  close(): void;
}

export interface ProduceChannelOptions {
  transport: ClientTransport;
  /** The broker's host:port. */
  address: string;
  headers: Record<string, string>;
  /** A request without a response after this long fails its connection (ms). */
  requestTimeoutMs: number;
}

/** The channel the transport's produce mode calls for. */
export function openProduceChannel(options: ProduceChannelOptions): ProduceChannel {
  return new BatchesChannel(options);
}

/** SendBatches / ProduceBatches, falling back to one request per batch against older brokers. */
class BatchesChannel implements ProduceChannel {
  readonly #batches: Channel<BatchesRequest, BatchesResponse>;
  #messages: Channel<MessageRequest, MessageResponse> | undefined;

  constructor(private readonly options: ProduceChannelOptions) {
    this.#batches =
      options.transport.produceMode === "stream"
        ? new StreamChannel(options, BATCHES_STREAM)
        : new UnaryChannel(options, PRODUCE_BATCHES);
  }

  async send(request: BatchesRequest, partial?: (res: BatchesResponse) => void): Promise<BatchesResponse> {
    if (this.#messages === undefined) {
      try {
        return await this.#batches.send(request, partial);
      } catch (err) {
        // Unknown to the broker (or to a gateway in front of it): nothing of the request was stored.
        if (!(err instanceof ConnectError && err.code === Code.Unimplemented && err.cause === undefined)) {
          throw err;
        }
        this.#messages ??= this.#openMessages();
      }
    }
    const messages = this.#messages;
    const responses = await Promise.all(
      request.batches.map((batch) =>
        messages.send({
          $typeName: "goulette.v1.MessageRequest",
          topic: batch.topic,
          partition: batch.partition,
          producerId: request.producerId,
          acks: request.acks,
          records: batch.records,
          previousMessageId: batch.previousMessageId,
        }),
      ),
    );
    return { $typeName: "goulette.v1.BatchesResponse", requestId: request.requestId, responses, more: false };
  }

  close(): void {
    this.#batches.close();
    this.#messages?.close();
  }

  #openMessages(): Channel<MessageRequest, MessageResponse> {
    return this.options.transport.produceMode === "stream"
      ? new StreamChannel(this.options, MESSAGES_STREAM)
      : new UnaryChannel(this.options, PRODUCE);
  }
}

/**
 * The unary produce RPC for clients without full-duplex streams: one batch in, its acks out, the
 * semantics of one SendMessage request.
 */
export const PRODUCE_METHOD = BrokerService.method.produce;

/** One unary call per request (HTTP/1.1). */
class UnaryChannel<Req, Res> implements Channel<Req, Res> {
  readonly #abort = new AbortController();

  constructor(
    private readonly options: ProduceChannelOptions,
    private readonly call: (
      transport: Transport,
      request: Req,
      signal: AbortSignal,
      options: ProduceChannelOptions,
    ) => Promise<Res>,
  ) {}

  send(request: Req): Promise<Res> {
    return this.call(
      this.options.transport.broker(this.options.address),
      request,
      this.#abort.signal,
      this.options,
    );
  }

  close(): void {
    this.#abort.abort(new ConnectError("the producer closed the channel", Code.Canceled));
  }
}

const PRODUCE_BATCHES = async (
  transport: Transport,
  request: BatchesRequest,
  signal: AbortSignal,
  options: ProduceChannelOptions,
): Promise<BatchesResponse> =>
  (
    await transport.unary(
      BrokerService.method.produceBatches,
      signal,
      options.requestTimeoutMs,
      options.headers,
      request,
    )
  ).message;

/** One Produce call per batch: a broker (or gateway) without ProduceBatches. */
const PRODUCE = async (
  transport: Transport,
  request: MessageRequest,
  signal: AbortSignal,
  options: ProduceChannelOptions,
): Promise<MessageResponse> => {
  try {
    return (await transport.unary(PRODUCE_METHOD, signal, options.requestTimeoutMs, options.headers, request))
      .message;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.Unimplemented && err.cause === undefined) {
      throw new ProduceUnsupportedError(options.address);
    }
    throw err;
  }
};

/** A stream RPC of produce requests, and how its answers are matched to them. */
interface StreamKind<Req, Res> {
  open(
    client: Client<typeof BrokerService>,
    requests: AsyncIterable<Req>,
    options: { signal: AbortSignal; headers: Record<string, string> },
  ): AsyncIterable<Res>;
  requestKey(request: Req): string;
  responseKey(response: Res): string;
  /** The response is the request's last (SendBatches answered per batch sends several). */
  isLast(response: Res): boolean;
  /** The request as one stream envelope, its payloads copied once (produce-encoding.ts). */
  encode(request: Req): Uint8Array;
  /** What Connect is given in place of a pre-encoded request: a message that encodes to nothing. */
  placeholder: Req;
}

/**
 * SendMessage: a response is matched to its request by (topic, partition, first message id), which
 * is unique while the producer keeps at most one attempt of a record in flight.
 */
const MESSAGES_STREAM: StreamKind<MessageRequest, MessageResponse> = {
  open: (client, requests, options) => client.sendMessage(requests, options),
  requestKey: (r) => keyOf(r.topic, r.partition, r.records[0]?.messageId ?? 0n),
  responseKey: (r) => keyOf(r.topic, r.partition, r.acks[0]?.messageId ?? 0n),
  isLast: () => true,
  encode: encodeMessageEnvelope,
  placeholder: create(MessageRequestSchema),
};

/** SendBatches: by the request id the response echoes. */
const BATCHES_STREAM: StreamKind<BatchesRequest, BatchesResponse> = {
  open: (client, requests, options) => client.sendBatches(requests, options),
  requestKey: (r) => String(r.requestId),
  responseKey: (r) => String(r.requestId),
  isLast: (r) => !r.more,
  encode: encodeBatchesEnvelope,
  placeholder: create(BatchesRequestSchema),
};

interface Waiter<Res> {
  partial: ((res: Res) => void) | undefined;
  resolve: (res: Res) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  /** What the timer does when it fires (armed again by each partial answer). */
  timedOut: () => void;
}

interface OpenStream<Req, Res> {
  requests: AsyncQueue<Req>;
  waiters: Map<string, Waiter<Res>>;
  abort: AbortController;
  /** Set when the transport sends pre-encoded requests: the envelopes the placeholders stand for. */
  encoded: EncodedRequestStream | undefined;
}

/**
 * Every request to one broker on one stream (HTTP/2). The broker answers each request with one
 * response (or, answering per batch, several, the last without `more`), in completion order, matched
 * to its request by `kind`. A failed or ended stream fails every request on it; the next send opens a
 * new stream.
 */
class StreamChannel<Req, Res> implements Channel<Req, Res> {
  #stream: OpenStream<Req, Res> | undefined;
  #closed = false;

  constructor(
    private readonly options: ProduceChannelOptions,
    private readonly kind: StreamKind<Req, Res>,
  ) {}

  send(request: Req, partial?: (res: Res) => void): Promise<Res> {
    if (this.#closed) return Promise.reject(new ConnectError("the produce channel is closed", Code.Canceled));
    const stream = this.#stream ?? this.#open();
    const key = this.kind.requestKey(request);
    // Encoded before its waiter is registered: nothing is left waiting on a request that never went.
    const queue = stream.encoded?.queue;
    const envelope = queue === undefined ? undefined : this.kind.encode(request);
    return new Promise<Res>((resolve, reject) => {
      // No answer in time: the broker or the path to it is stuck; fail the whole stream.
      const timedOut = () =>
        this.#fail(
          stream,
          new ConnectError(
            `no produce response from ${this.options.address} within ${this.options.requestTimeoutMs} ms`,
            Code.DeadlineExceeded,
          ),
        );
      const timer = setTimeout(timedOut, this.options.requestTimeoutMs);
      stream.waiters.set(key, { partial, resolve, reject, timer, timedOut });
      if (queue === undefined || envelope === undefined) {
        stream.requests.push(request);
      } else {
        queue.push(envelope);
        stream.requests.push(this.kind.placeholder);
      }
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#stream) this.#fail(this.#stream, new ConnectError("the produce channel closed", Code.Canceled));
  }

  #open(): OpenStream<Req, Res> {
    const encoded = this.options.transport.encodesRequests ? openEncodedRequests() : undefined;
    const stream: OpenStream<Req, Res> = {
      requests: new AsyncQueue<Req>(),
      waiters: new Map(),
      abort: new AbortController(),
      encoded,
    };
    this.#stream = stream;
    const client = createClient(BrokerService, this.options.transport.broker(this.options.address));
    void (async () => {
      try {
        const responses = this.kind.open(client, stream.requests, {
          signal: stream.abort.signal,
          headers: { ...this.options.headers, ...encoded?.header },
        });
        for await (const res of responses) {
          const key = this.kind.responseKey(res);
          const waiter = stream.waiters.get(key);
          if (!waiter) continue;
          if (!this.kind.isLast(res)) {
            // The request progresses: its timeout counts from this answer.
            clearTimeout(waiter.timer);
            waiter.timer = setTimeout(waiter.timedOut, this.options.requestTimeoutMs);
            waiter.partial?.(res);
            continue;
          }
          stream.waiters.delete(key);
          clearTimeout(waiter.timer);
          waiter.resolve(res);
        }
        this.#fail(stream, new ConnectError("the broker ended the produce stream", Code.Unavailable));
      } catch (err) {
        this.#fail(stream, err);
      }
    })();
    return stream;
  }

  #fail(stream: OpenStream<Req, Res>, err: unknown): void {
    if (this.#stream === stream) this.#stream = undefined;
    stream.requests.end();
    stream.encoded?.close();
    const waiters = [...stream.waiters.values()];
    stream.waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    stream.abort.abort(err);
  }
}

function keyOf(topic: string, partition: number, firstMessageId: bigint): string {
  return `${partition}\u0000${firstMessageId}\u0000${topic}`;
}
