/** NATS JetStream and Redis Streams as data-plane benchmark targets, through their npm clients. */
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  StorageType,
  type JetStreamClient,
  type NatsConnection,
  type PubAck,
} from "nats";
import { createClient } from "redis";
import {
  paced,
  readStamp,
  stampedPayload,
  type ConsumeResult,
  type ProduceResult,
  type QueueTarget,
} from "./dataplane-target.js";

/** Publishes in flight at most (both clients pipeline them on one connection). */
const WINDOW = 256;

/**
 * Keeps `window` operations in flight until `count` are done or the deadline passes; returns how many
 * completed and the seconds it took.
 */
async function windowed(
  count: number,
  deadlineMs: number,
  window: number,
  op: () => Promise<unknown>,
): Promise<{ done: number; seconds: number }> {
  const start = performance.now();
  let started = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started >= count || performance.now() - start >= deadlineMs) {
        if (done === started) resolve();
        return;
      }
      started++;
      op().then(() => {
        done++;
        next();
      }, reject);
    };
    for (let i = 0; i < Math.min(window, count); i++) next();
  });
  return { done, seconds: (performance.now() - start) / 1000 };
}

export interface NatsTargetOptions {
  label: string;
  port: number;
  /** Stream name (one subject, `<stream>.data`). */
  stream: string;
}

/** A JetStream stream with file storage and one subject; publish awaits the PubAck; an ordered consumer reads. */
export async function createNatsTarget(options: NatsTargetOptions): Promise<QueueTarget> {
  const nc: NatsConnection = await connect({ servers: `127.0.0.1:${options.port}` });
  const jsm = await nc.jetstreamManager();
  const subject = `${options.stream}.data`;
  await jsm.streams.add({ name: options.stream, subjects: [subject], storage: StorageType.File });
  const js: JetStreamClient = nc.jetstream();
  let lastCount = 0;

  let consumerSeq = 0;
  /**
   * A pull consumer without acks (ack_policy none: nothing to acknowledge, like a Goulette pull), created
   * for one read and deleted after it.
   */
  async function readFrom(
    policy: DeliverPolicy,
    onMessage: (data: Uint8Array) => boolean,
  ): Promise<{ stop: () => void; done: Promise<void> }> {
    const name = `bench-${++consumerSeq}`;
    await jsm.consumers.add(options.stream, {
      durable_name: name,
      ack_policy: AckPolicy.None,
      deliver_policy: policy,
    });
    const consumer = await js.consumers.get(options.stream, name);
    // Bounded by bytes too: 1000 × 64 KiB per pull request stalls the 2.9 server.
    const messages = await consumer.consume({ max_bytes: 4 * 1024 * 1024 });
    const done = (async () => {
      for await (const m of messages) {
        if (!onMessage(m.data)) break;
      }
      await jsm.consumers.delete(options.stream, name);
    })();
    return { stop: () => void messages.stop(), done };
  }

  return {
    label: options.label,
    async produce(size, count, deadlineMs): Promise<ProduceResult> {
      await jsm.streams.purge(options.stream);
      const payload = stampedPayload(size, 0);
      const { done, seconds } = await windowed(count, deadlineMs, WINDOW, () =>
        js.publish(subject, payload).then((ack: PubAck) => {
          if (ack.duplicate) throw new Error("unexpected duplicate PubAck");
        }),
      );
      lastCount = done;
      return { messages: done, bytes: done * size, seconds };
    },
    async consume(): Promise<ConsumeResult> {
      const start = performance.now();
      let messages = 0;
      const reader = await readFrom(DeliverPolicy.All, () => ++messages < lastCount);
      await reader.done;
      return { messages, seconds: (performance.now() - start) / 1000 };
    },
    async latency(size, intervalMs, durationMs): Promise<number[]> {
      await jsm.streams.purge(options.stream);
      const samples: number[] = [];
      const reader = await readFrom(DeliverPolicy.New, (data) => {
        samples.push(performance.now() - readStamp(data));
        return true;
      });
      const pending: Promise<unknown>[] = [];
      try {
        await paced(
          intervalMs,
          durationMs,
          () => pending.push(js.publish(subject, stampedPayload(size, performance.now()))),
          () => samples.length,
        );
        await Promise.all(pending);
      } finally {
        reader.stop();
        await reader.done;
      }
      return samples;
    },
    async close() {
      await nc.drain();
    },
  };
}

export interface RedisTargetOptions {
  label: string;
  port: number;
  /** Stream key. */
  key: string;
}

type Entry = [string, string[]];
/** XREAD's reply for one stream: `[[key, entries]]` (RESP2 arrays) or `{ key: entries }` (node-redis maps). */
type XReadReply = [string, Entry[]][] | Record<string, Entry[]> | null;

function entriesOf(reply: XReadReply): Entry[] {
  if (reply === null) return [];
  if (Array.isArray(reply)) return reply[0]?.[1] ?? [];
  return Object.values(reply)[0] ?? [];
}

/** XADD pipelined on one connection (node-redis pipelines concurrent commands); XREAD COUNT 1000 reads. */
export async function createRedisTarget(options: RedisTargetOptions): Promise<QueueTarget> {
  const url = `redis://127.0.0.1:${options.port}`;
  const client = createClient({ url });
  // Without a listener a dropped connection is an uncaught 'error' event; operations still reject.
  client.on("error", () => undefined);
  await client.connect();
  let lastCount = 0;
  // Redis values are strings here: the payload is the stamp's decimal digits padded to the size.
  const stringPayload = (size: number, stamp: number) => String(stamp).padEnd(size, "x");

  const xread = async (c: typeof client, from: string, block?: number): Promise<Entry[]> =>
    entriesOf(
      (await c.sendCommand([
        "XREAD",
        "COUNT",
        "1000",
        ...(block === undefined ? [] : ["BLOCK", String(block)]),
        "STREAMS",
        options.key,
        from,
      ])) as unknown as XReadReply,
    );

  return {
    label: options.label,
    async produce(size, count, deadlineMs): Promise<ProduceResult> {
      await client.sendCommand(["DEL", options.key]);
      const payload = stringPayload(size, 0);
      const { done, seconds } = await windowed(count, deadlineMs, WINDOW, () =>
        client.sendCommand(["XADD", options.key, "*", "p", payload]),
      );
      lastCount = done;
      return { messages: done, bytes: done * size, seconds };
    },
    async consume(): Promise<ConsumeResult> {
      const start = performance.now();
      let messages = 0;
      let from = "0";
      while (messages < lastCount) {
        const entries = await xread(client, from);
        if (entries.length === 0) throw new Error(`XREAD ended after ${messages} of ${lastCount}`);
        messages += entries.length;
        from = entries[entries.length - 1]?.[0] ?? from;
      }
      return { messages, seconds: (performance.now() - start) / 1000 };
    },
    async latency(size, intervalMs, durationMs): Promise<number[]> {
      await client.sendCommand(["DEL", options.key]);
      const reader = client.duplicate();
      reader.on("error", () => undefined);
      await reader.connect();
      const samples: number[] = [];
      let stopped = false;
      const reading = (async () => {
        // The key was just deleted: everything from 0 is this run's.
        let from = "0";
        while (!stopped) {
          for (const [id, fields] of await xread(reader, from, 200)) {
            samples.push(performance.now() - Number.parseFloat(fields[1] ?? "NaN"));
            from = id;
          }
        }
      })();
      const pending: Promise<unknown>[] = [];
      try {
        await paced(
          intervalMs,
          durationMs,
          () =>
            pending.push(
              client.sendCommand(["XADD", options.key, "*", "p", stringPayload(size, performance.now())]),
            ),
          () => samples.length,
        );
        await Promise.all(pending);
      } finally {
        stopped = true;
        await reading;
        await reader.quit();
      }
      return samples;
    },
    async close() {
      await client.quit();
    },
  };
}
