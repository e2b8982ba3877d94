import type { ConsumedMessage } from "./messages.js";
import { OrderedQueue } from "./ordered-queue.js";
import type { Fetched } from "./partition-state.js";

/** What `runHandlers` needs from the consumer it drives. */
export interface HandlerRunnerHost {
  /** Joins/starts reading (resolves at once once started). */
  start(): Promise<void>;
  /** True once the consumer closed: run() ends. */
  closed(): boolean;
  /** Nothing may be handed out now (a group member whose session is in doubt). */
  suspended(): boolean;
  /** Up to `max` deliverable messages off the buffer, without waiting. */
  take(max: number): Fetched[];
  /** Whether a message taken earlier is still the consumer's to hand out (its partition was not revoked). */
  deliverable(item: Fetched): boolean;
  /** Marks a message handed out and returns it. */
  handOut(item: Fetched): ConsumedMessage;
  /** The buffer's capacity: how many messages run() may hold taken at once. */
  bufferCapacity(): number;
  /** Resolves once messages may be there (or `signal` aborts). */
  whenAvailable(signal: AbortSignal): Promise<unknown>;
  /** Resolves once the consumer may hand out again (or `signal` aborts, or a recheck is due). */
  whenResumed(signal: AbortSignal): Promise<void>;
  /** Messages of partition `key` were taken and never handed out: read them again from there. */
  refetch(key: string): void;
}

/**
 * run()'s loop: calls `handler` for each message, up to `limit` handlers at once and never two of one
 * partition (each partition in offset order, OrderedQueue), until `stop` aborts or the consumer closes.
 * A message is processed once its handler resolves. A handler that throws stops the loop with its error
 * once the running handlers settled (that message is not marked processed); messages taken and not
 * handed to a handler are fetched again (`refetch`).
 */
export async function runHandlers(
  host: HandlerRunnerHost,
  handler: (message: ConsumedMessage) => Promise<void> | void,
  limit: number,
  stop: AbortSignal,
): Promise<void> {
  const queue = new OrderedQueue<Fetched>((item) => item.run.state.key);
  const active = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const capacity = Math.max(limit, host.bufferCapacity());
  try {
    await host.start();
    while (failure === undefined && !stop.aborted && !host.closed()) {
      let suspended = host.suspended();
      while (!suspended && active.size < limit) {
        const item = queue.take();
        if (item === undefined) break;
        const state = item.run.state;
        if (!host.deliverable(item)) {
          queue.done(state.key);
          continue;
        }
        const message = host.handOut(item);
        const task = (async () => {
          try {
            await handler(message);
            state.markProcessed(message.offset + 1, item.seq);
          } catch (err) {
            failure ??= { error: err };
          } finally {
            queue.done(state.key);
          }
        })();
        active.add(task);
        void task.then(() => active.delete(task));
        // Asked again before each hand-out: a process frozen mid-loop (SIGSTOP, a long pause) wakes up
        // here, and must not go on handing out what its group may have given to another member.
        suspended = host.suspended();
      }
      const room = queue.size < capacity;
      if (room && !suspended) {
        let items: Fetched[];
        try {
          items = host.take(capacity - queue.size);
        } catch (err) {
          failure ??= { error: err };
          break;
        }
        for (const item of items) queue.push(item);
        if (items.length > 0) continue;
      }
      // Wait for a handler to finish, or for messages when there is room for them.
      const waitAbort = new AbortController();
      const waitSignal = AbortSignal.any([stop, waitAbort.signal]);
      const waits: Array<Promise<unknown>> = [...active];
      if (suspended) waits.push(host.whenResumed(waitSignal));
      else if (room) waits.push(host.whenAvailable(waitSignal).catch(() => undefined));
      if (waits.length === 0) break;
      await Promise.race(waits);
      waitAbort.abort();
    }
    await Promise.allSettled(active);
  } finally {
    for (const key of queue.keys()) {
      const leftover = queue.drain(key).filter((item) => host.deliverable(item));
      if (leftover.length > 0 && !host.closed()) host.refetch(key);
    }
  }
  if (failure !== undefined) throw failure.error;
}
