/** What the data-plane benchmark asks of each queue it measures (Goulette, NATS JetStream, Redis Streams). */

/** One produce run: bounded by a message count and a deadline, whichever comes first. */
export interface ProduceResult {
  messages: number;
  bytes: number;
  seconds: number;
}

export interface ConsumeResult {
  messages: number;
  seconds: number;
}

export interface QueueTarget {
  /** Row label, e.g. "Goulette acks=leader fsync=interval". */
  readonly label: string;
  /**
   * Produces up to `count` messages of `size` bytes, as fast as acknowledgements allow, until `deadlineMs`
   * (ms from the start); the messages of this run replace what `consume` reads.
   */
  produce(size: number, count: number, deadlineMs: number): Promise<ProduceResult>;
  /** Reads every message of the last produce run from its start, as fast as the queue delivers them. */
  consume(): Promise<ConsumeResult>;
  /**
   * End-to-end latency: one message every `intervalMs` for `durationMs`, each stamped with its send time,
   * received by a tailing consumer; returns every sample in ms (receive time − send time, same clock).
   */
  latency(size: number, intervalMs: number, durationMs: number): Promise<number[]>;
  close(): Promise<void>;
}

/** A payload of `size` bytes whose first 8 bytes carry `stamp` (a float64, performance.now()). */
export function stampedPayload(size: number, stamp: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(8, size));
  new DataView(bytes.buffer).setFloat64(0, stamp, true);
  return bytes;
}

export function readStamp(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(0, true);
}

/**
 * Runs `send` every `intervalMs` for `durationMs`, then waits (bounded) until `received()` reaches the
 * number sent: the shared pacing of every target's latency run.
 */
export async function paced(
  intervalMs: number,
  durationMs: number,
  send: () => void,
  received: () => number,
): Promise<void> {
  let sent = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (performance.now() - start >= durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      send();
      sent++;
    }, intervalMs);
  });
  const deadline = performance.now() + 5_000;
  while (received() < sent && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  if (received() < sent) throw new Error(`latency run: received ${received()} of ${sent} messages`);
}
