import type { ChildProcess } from "node:child_process";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  BrokerService,
  MessageRequestSchema,
  ProduceError,
  type Acks,
  type Message,
  type MessageAck,
  type MessageRequest,
  type MessageResponse,
  type PullRequestSchema,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { freePort } from "./ports.js";
import { AsyncQueue } from "../../src/common/async-queue.js";
import { spawnGoulette } from "./goulette-process.js";

export interface BrokerProcessOptions {
  id: string;
  /** Sentinel URLs (--sentinels). */
  sentinels: string[];
  /** --data-dir; keep it to restart the broker on its data. */
  dataDir: string;
  /** Listen port; a free one when omitted. Pass the old port to restart a broker under the same address. */
  port?: number;
  /** Extra flags, e.g. ["--fsync", "interval"]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Node flags before the binary, e.g. ["--import", preload] (test/chaos/nemesis/node-preload.ts). */
  nodeArgs?: string[];
  /** How long to wait for /readyz (default 20 s). */
  readyTimeoutMs?: number;
  /** Wait for /readyz: registered with the sentinels and roles applied (default true). */
  waitReady?: boolean;
}

export interface BrokerProcess {
  readonly id: string;
  /** host:port, as registered with the sentinels. */
  readonly address: string;
  /** http://host:port, for /metrics and the like. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** A gRPC (HTTP/2) client: bidi SendMessage needs HTTP/2. */
  readonly client: Client<typeof BrokerService>;
  /** Last lines of its log, for failure messages. */
  logTail(lines?: number): string;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP / SIGCONT: the broker stops answering without dying. */
  pause(): void;
  resume(): void;
  readonly alive: boolean;
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number | null>;
}

/** A gRPC client of a broker at host:port. */
export function brokerClient(address: string): Client<typeof BrokerService> {
  return createClient(BrokerService, createGrpcTransport({ baseUrl: `http://${address}` }));
}

/** Runs `goulette broker` as a real child process on a loopback port. */
export async function startBrokerProcess(options: BrokerProcessOptions): Promise<BrokerProcess> {
  const port = options.port ?? (await freePort());
  const address = `127.0.0.1:${port}`;
  const args = [
    "broker",
    "--id",
    options.id,
    "--address",
    address,
    "--advertise-address",
    address,
    "--data-dir",
    options.dataDir,
    "--sentinels",
    options.sentinels.join(","),
    ...(options.args ?? []),
  ];
  const proc = spawnGoulette({
    name: `broker ${options.id}`,
    args,
    ...(options.env ? { env: options.env } : {}),
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    logChars: 40_000,
  });
  const child = proc.process;
  const handle: BrokerProcess = {
    id: options.id,
    address,
    url: `http://${address}`,
    port,
    dataDir: options.dataDir,
    process: child,
    client: brokerClient(address),
    logTail: (lines = 20) => proc.logTail(lines),
    kill: (signal) => proc.kill(signal),
    pause: () => void child.kill("SIGSTOP"),
    resume: () => void child.kill("SIGCONT"),
    get alive() {
      return proc.alive;
    },
    exited: proc.exited,
  };
  if (options.waitReady ?? true) await proc.waitReady(handle.url, options.readyTimeoutMs);
  return handle;
}

/** Opens a SendMessage stream, sends one request, returns its one response and closes the stream. */
export async function sendOnce(
  client: Client<typeof BrokerService>,
  request: MessageInitShape<typeof MessageRequestSchema>,
  timeoutMs = 10_000,
): Promise<MessageResponse> {
  const req = create(MessageRequestSchema, request);
  async function* one() {
    yield req;
  }
  for await (const res of client.sendMessage(one(), { timeoutMs })) return res;
  throw new Error("SendMessage ended without a response");
}

/** Pulls until `count` messages arrived (max_messages = count) or the deadline passes. */
export async function pullMessages(
  client: Client<typeof BrokerService>,
  request: MessageInitShape<typeof PullRequestSchema>,
  count: number,
  timeoutMs = 10_000,
): Promise<Message[]> {
  const out: Message[] = [];
  for await (const message of client.pullMessage({ ...request, maxMessages: BigInt(count) }, { timeoutMs })) {
    out.push(message);
  }
  return out;
}

/** Text payloads for tests. */
export function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

export function untext(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** A push-fed async iterable: the request side of a bidi stream driven by a test. */
export { AsyncQueue as Pushable };

export interface StreamProducerOptions {
  topic: string;
  partition: number;
  producerId: string;
  acks: Acks;
  /** Records per request. */
  batchSize: number;
  /** Requests in flight at most. */
  window: number;
  /** Payload of a message id. */
  payload: (messageId: bigint) => Uint8Array;
}

/**
 * Produces message ids 1, 2, 3… on one SendMessage stream, `window` requests in flight, until stopped
 * or the stream fails. `acked` maps every successfully acknowledged message id to its offset.
 */
export class StreamProducer {
  readonly acked = new Map<bigint, bigint>();
  readonly errors: MessageAck[] = [];
  nextId = 1n;
  #stopped = false;
  readonly done: Promise<unknown>;

  constructor(client: Client<typeof BrokerService>, options: StreamProducerOptions) {
    const requests = new AsyncQueue<MessageRequest>();
    let inflight = 0;
    const sendBatch = () => {
      const records = [];
      for (let i = 0; i < options.batchSize; i++) {
        const messageId = this.nextId++;
        records.push({ messageId, payload: options.payload(messageId) });
      }
      inflight++;
      requests.push(
        create(MessageRequestSchema, {
          topic: options.topic,
          partition: options.partition,
          producerId: options.producerId,
          acks: options.acks,
          records,
        }),
      );
    };
    this.done = (async () => {
      for (let i = 0; i < options.window; i++) sendBatch();
      try {
        for await (const res of client.sendMessage(requests)) {
          inflight--;
          for (const a of res.acks) {
            if (a.error === ProduceError.NONE) this.acked.set(a.messageId, a.offset);
            else this.errors.push(a);
          }
          if (this.#stopped) {
            if (inflight === 0) requests.end();
          } else {
            sendBatch();
          }
        }
        return undefined;
      } catch (err) {
        return err;
      } finally {
        requests.end();
      }
    })();
  }

  /** Sends no new requests; `done` resolves once the ones in flight are answered. */
  stop(): void {
    this.#stopped = true;
  }
}
