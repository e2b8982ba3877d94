import type { RunningPartition } from "./assignment-diff.js";
import type { ConsumedMessage } from "./messages.js";
import type { PartitionFetcher, StartAt } from "./partition-fetcher.js";
import { partitionKey, type AssignedPartition } from "./topic-partition.js";

/** One FetchMessages reader of a partition, from one (re)start to its stop. */
export interface FetchRun {
  readonly state: PartitionState;
  readonly abort: AbortController;
  readonly fetcher: PartitionFetcher;
  done: Promise<void>;
}

/**
 * A fetched message in the consumer's buffer, with the run that fetched it: once that run stopped
 * (pause, seek, revocation, loss), the message is not handed out.
 */
export interface Fetched {
  readonly message: ConsumedMessage;
  readonly run: FetchRun;
  /** The partition's seek count when handed out (set then). */
  seq: number;
}

/**
 * What a consumer knows about one partition it reads: the fetch running now, where the application is
 * (handed out, processed), what was committed, and whether it is paused or being revoked. Offsets are
 * "the next offset" (one past the message), like committed offsets.
 */
export class PartitionState implements RunningPartition {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  /** The member epoch its commits carry (0 outside a group). */
  epoch: number;
  revoking = false;
  paused = false;
  /** The fetch running now; undefined while stopped. */
  run: FetchRun | undefined;
  /** The next offset to hand out (undefined until the start is resolved). */
  position: number | undefined;
  /** A seek made while paused: where resume() starts. */
  pendingStart: StartAt | undefined;
  /** One past the last message handed out since the last seek. */
  delivered: number | undefined;
  /** One past the last message processed: what a commit stores. */
  processed: number | undefined;
  /** What this consumer last committed for it, and at which seek count. */
  committed: { offset: number; seq: number } | undefined;
  /** Seek count: messages handed out before a seek no longer move `processed`. */
  seq = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(p: AssignedPartition) {
    this.topic = p.topic;
    this.partition = p.partition;
    this.key = partitionKey(p);
    this.epoch = p.epoch;
  }

  /** Every message handed out is processed. */
  get idle(): boolean {
    return this.delivered === undefined || (this.processed ?? -1) >= this.delivered;
  }

  handedOut(offset: number): void {
    this.position = offset + 1;
    this.delivered = offset + 1;
  }

  /** The application finished the messages up to `next` (exclusive) handed out at seek count `seq`. */
  markProcessed(next: number, seq: number): void {
    if (seq !== this.seq) return;
    if ((this.processed ?? -1) < next) this.processed = next;
    if (this.#idleWaiters.length > 0 && this.idle) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** A seek: the position (and, where known, the processed offset) move; handed-out messages no longer count. */
  seekTo(offset: number | undefined): void {
    this.seq++;
    this.delivered = undefined;
    this.committed = undefined;
    this.position = offset;
    if (offset !== undefined) this.processed = offset;
    for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** The partition is no longer this consumer's: whoever waits for it to be idle stops waiting. */
  abandon(): void {
    for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** Resolves true once idle, false after `timeoutMs` or when `signal` fires. */
  whenIdle(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.idle) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const finish = (value: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        const i = this.#idleWaiters.indexOf(onIdle);
        if (i !== -1) this.#idleWaiters.splice(i, 1);
        resolve(value);
      };
      const onIdle = () => finish(this.idle);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#idleWaiters.push(onIdle);
    });
  }
}
