import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BrokerService, type MessageRequest, type MessageResponse } from "../gen/goulette/v1/broker_pb.js";
import { AsyncQueue } from "../common/async-queue.js";
import { ProduceUnsupportedError } from "./errors.js";
import type { ClientTransport } from "./transport.js";

/** Sends produce requests to one broker; each resolves with that request's response. */
export interface ProduceChannel {
  /** Rejects when the connection fails or no response comes within the request timeout. */
  send(request: MessageRequest): Promise<MessageResponse>;
  /** Fails what is in flight and releases the connection. */
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
  return options.transport.produceMode === "stream"
    ? new StreamProduceChannel(options)
    : new UnaryProduceChannel(options);
}

/**
 * The unary produce RPC for clients without full-duplex streams: one batch in, its acks out, the
 * semantics of one SendMessage request.
 */
export const PRODUCE_METHOD = BrokerService.method.produce;

/** One Produce call per request (HTTP/1.1). */
class UnaryProduceChannel implements ProduceChannel {
  readonly #abort = new AbortController();

  constructor(private readonly options: ProduceChannelOptions) {}

  async send(request: MessageRequest): Promise<MessageResponse> {
    try {
      const res = await this.options.transport
        .broker(this.options.address)
        .unary(
          PRODUCE_METHOD,
          this.#abort.signal,
          this.options.requestTimeoutMs,
          this.options.headers,
          request,
        );
      return res.message;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unimplemented && err.cause === undefined) {
        throw new ProduceUnsupportedError(this.options.address);
      }
      throw err;
    }
  }

  close(): void {
    this.#abort.abort(new ConnectError("the producer closed the channel", Code.Canceled));
  }
}

interface Waiter {
  resolve: (res: MessageResponse) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface OpenStream {
  requests: AsyncQueue<MessageRequest>;
  waiters: Map<string, Waiter>;
  abort: AbortController;
}

/**
 * Every request to one broker on one SendMessage stream (HTTP/2). The broker answers each request with
 * one response, in completion order, naming topic, partition and message ids: a response is matched to
 * its request by (topic, partition, first message id), which is unique while the producer keeps at most
 * one attempt of a record in flight. A failed or ended stream fails every request on it; the next send
 * opens a new stream.
 */
class StreamProduceChannel implements ProduceChannel {
  #stream: OpenStream | undefined;
  #closed = false;

  constructor(private readonly options: ProduceChannelOptions) {}

  send(request: MessageRequest): Promise<MessageResponse> {
    if (this.#closed) return Promise.reject(new ConnectError("the produce channel is closed", Code.Canceled));
    const stream = this.#stream ?? this.#open();
    const key = keyOf(request.topic, request.partition, request.records[0]?.messageId ?? 0n);
    return new Promise<MessageResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        // No answer in time: the broker or the path to it is stuck; fail the whole stream.
        this.#fail(
          stream,
          new ConnectError(
            `no produce response from ${this.options.address} within ${this.options.requestTimeoutMs} ms`,
            Code.DeadlineExceeded,
          ),
        );
      }, this.options.requestTimeoutMs);
      stream.waiters.set(key, { resolve, reject, timer });
      stream.requests.push(request);
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#stream) this.#fail(this.#stream, new ConnectError("the produce channel closed", Code.Canceled));
  }

  #open(): OpenStream {
    const stream: OpenStream = {
      requests: new AsyncQueue<MessageRequest>(),
      waiters: new Map(),
      abort: new AbortController(),
    };
    this.#stream = stream;
    const client = createClient(BrokerService, this.options.transport.broker(this.options.address));
    void (async () => {
      try {
        const responses = client.sendMessage(stream.requests, {
          signal: stream.abort.signal,
          headers: this.options.headers,
        });
        for await (const res of responses) {
          const key = keyOf(res.topic, res.partition, res.acks[0]?.messageId ?? 0n);
          const waiter = stream.waiters.get(key);
          if (!waiter) continue;
          stream.waiters.delete(key);
          clearTimeout(waiter.timer);
          waiter.resolve(res);
        }
        this.#fail(stream, new ConnectError("the broker ended the SendMessage stream", Code.Unavailable));
      } catch (err) {
        this.#fail(stream, err);
      }
    })();
    return stream;
  }

  #fail(stream: OpenStream, err: unknown): void {
    if (this.#stream === stream) this.#stream = undefined;
    stream.requests.end();
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
