import { FailedPreconditionError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { ResolvedPartitionLogOptions } from "./partition-log-options.js";
import type { Segment } from "./segment.js";
import type { VolumeSyncCompletion, VolumeSyncMember } from "./volume-sync.js";
import type { AppendResult } from "./write-group.js";

/** Everything before this point of the active segment is known to be on disk. */
export interface DurablePoint {
  segment: Segment;
  size: number;
  offset: number;
}

/** An append (or flush) waiting for the fsync that covers write number `seq`. */
interface Waiter {
  seq: number;
  result: AppendResult;
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

/** What an fsync (of the file, or of the volume) will cover, taken when it starts. */
interface SyncCapture {
  seq: number;
  /** performance.now() ms when the sync started. */
  started: number;
  point: DurablePoint;
  generation: number;
}

/** A caller of append: told when its records are durable per the fsync policy, or why not. */
export interface DurabilityCaller {
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

/** What the loop needs from the log it makes durable. */
export interface DurabilityHost {
  /** The segment being written. */
  readonly active: Segment;
  /** Bumped by every cut: an fsync started before it says nothing about what is there now. */
  readonly generation: number;
  readonly closing: boolean;
  /** An fsync failed: the writer must roll back to the durable point before its next job. */
  syncFailed(err: unknown): void;
}

export interface DurabilityCounters {
  fsyncs: number;
  fsyncSeconds: number;
  fsyncErrors: number;
}

/**
 * The fsync policy of a partition log. Writes are numbered; a caller is answered once an fsync covers
 * its write ("always") or at once, with an fsync at most `fsyncIntervalMs` later ("interval"). Group
 * commit: at most one fsync runs at a time, and writes that land while it runs are covered by the
 * single next one, however many appends they carry. With a broker's volume sync ("interval" only), the
 * log joins its one filesystem sync per interval instead of running a timer and an fsync of its own.
 */
export class DurabilityLoop implements VolumeSyncMember {
  /** Numbers the data writes; a waiter is durable once durableSeq reaches its write's number. */
  #writtenSeq = 0;
  #durableSeq = 0;
  #waiters: Waiter[] = [];
  #syncRunning = false;
  #syncAgain = false;
  #syncDone: Promise<void> = Promise.resolve();
  #durable: DurablePoint;
  /** fsync "interval": armed by the first write after a sync, so an idle log has no timer at all. */
  #syncTimer: NodeJS.Timeout | undefined;
  /**
   * When the oldest write not yet covered by an fsync was made (performance.now() ms; undefined when
   * every write is). After an fsync that leaves later writes pending it is that fsync's start: those
   * writes came no earlier, so the age reported is never less than the true one.
   */
  #unsyncedSince: number | undefined;

  constructor(
    private readonly options: Pick<
      ResolvedPartitionLogOptions,
      "fsync" | "fsyncIntervalMs" | "onFsync" | "volumeSync"
    >,
    private readonly counters: DurabilityCounters,
    private readonly logger: Logger,
    private readonly host: DurabilityHost,
  ) {
    const active = host.active;
    this.#durable = { segment: active, size: active.size, offset: active.nextOffset };
  }

  /** Every record below it has been fsynced. */
  get durable(): DurablePoint {
    return this.#durable;
  }

  /** True when some write is not known to be on disk yet. */
  get pending(): boolean {
    return this.#writtenSeq > this.#durableSeq;
  }

  /**
   * How long the oldest write not on disk yet has waited for its fsync (ms; 0 when every write is on
   * disk). With "interval" it stays below the interval while the disk keeps up with the fsyncs asked of it.
   */
  unsyncedAgeMs(now = performance.now()): number {
    return this.pending && this.#unsyncedSince !== undefined ? Math.max(0, now - this.#unsyncedSince) : 0;
  }

  /** A write of `callers`' records (their `results`) is complete: answer them per the policy. */
  written(callers: readonly DurabilityCaller[], results: readonly AppendResult[]): void {
    if (!this.pending) this.#unsyncedSince = performance.now();
    this.#writtenSeq++;
    if (this.options.fsync === "always") {
      const seq = this.#writtenSeq;
      callers.forEach((caller, i) => {
        this.#waiters.push({
          seq,
          result: results[i] as AppendResult,
          resolve: caller.resolve,
          reject: caller.reject,
        });
      });
      this.requestSync();
    } else {
      callers.forEach((caller, i) => caller.resolve(results[i] as AppendResult));
      this.#armSyncTimer();
    }
  }

  /** Resolves once everything written so far is fsynced. */
  async flush(logEndOffset: number): Promise<void> {
    if (!this.pending) return;
    await new Promise<AppendResult>((resolve, reject) => {
      this.#waiters.push({
        seq: this.#writtenSeq,
        result: { baseOffset: logEndOffset, lastOffset: logEndOffset - 1 },
        resolve,
        reject,
      });
      this.requestSync();
    });
  }

  /** fsync "interval": the written data is fsynced at most --fsync-interval ms after its write. */
  #armSyncTimer(): void {
    if (this.host.closing) return;
    const volume = this.options.volumeSync;
    if (volume?.available) {
      volume.enlist(this);
      return;
    }
    if (this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      if (this.pending && !this.host.closing) this.requestSync();
    }, this.options.fsyncIntervalMs);
    this.#syncTimer.unref();
  }

  /** The broker's volume sync starts: what it covers of this log, and what to do once it ended. */
  volumeSyncStarting(): VolumeSyncCompletion | undefined {
    if (!this.pending || this.host.closing) return undefined;
    const capture = this.#capture();
    return {
      synced: () => this.#covered(capture),
      failed: (err) => {
        this.counters.fsyncErrors++;
        this.host.syncFailed(err);
      },
      // The interval has passed already: the file is fsynced now, and by a timer of its own from then on.
      unavailable: () => {
        if (this.pending && !this.host.closing) this.requestSync();
      },
    };
  }

  #capture(): SyncCapture {
    const segment = this.host.active;
    return {
      seq: this.#writtenSeq,
      started: performance.now(),
      point: { segment, size: segment.size, offset: segment.nextOffset },
      generation: this.host.generation,
    };
  }

  /** A sync that started at `capture` succeeded: what it covered is durable, unless a cut came since. */
  #covered(capture: SyncCapture): void {
    if (capture.generation !== this.host.generation) return;
    if (capture.seq > this.#durableSeq) this.#durableSeq = capture.seq;
    this.#unsyncedSince = this.pending ? capture.started : undefined;
    const { point } = capture;
    if (point.segment === this.host.active && point.offset > this.#durable.offset) this.#durable = point;
    this.#resolveWaiters();
  }

  requestSync(): void {
    this.#syncAgain = true;
    if (this.#syncRunning) return;
    this.#syncRunning = true;
    this.#syncDone = this.#syncLoop();
  }

  async #syncLoop(): Promise<void> {
    while (this.#syncAgain) {
      this.#syncAgain = false;
      const capture = this.#capture();
      const segment = capture.point.segment;
      segment.acquire();
      try {
        await this.syncData(segment);
      } catch (err) {
        this.#syncRunning = false;
        this.host.syncFailed(err);
        return;
      } finally {
        segment.release();
      }
      this.#covered(capture);
    }
    this.#syncRunning = false;
  }

  /** fsyncs the segment's data, counted and timed. */
  async syncData(segment: Segment): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      await segment.file.datasync();
    } catch (err) {
      this.counters.fsyncErrors++;
      throw err;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.counters.fsyncs++;
    this.counters.fsyncSeconds += seconds;
    try {
      this.options.onFsync?.(seconds);
    } catch (err) {
      this.logger.error({ err }, "onFsync callback threw");
    }
  }

  /**
   * Everything written so far is on disk up to `point` (a roll, a cut or a close just synced it):
   * every waiter is answered.
   */
  allDurable(point: DurablePoint): void {
    this.#durableSeq = this.#writtenSeq;
    this.#unsyncedSince = undefined;
    this.#durable = point;
    this.#resolveWaiters();
  }

  /** Moves the durable point (a cut below it, or a new segment) without answering anyone. */
  moveDurablePoint(point: DurablePoint): void {
    this.#durable = point;
  }

  /** Nothing written so far is waited for any more (a rollback or reset answered it all). */
  forgetWrites(): void {
    this.#durableSeq = this.#writtenSeq;
    this.#unsyncedSince = undefined;
  }

  #resolveWaiters(): void {
    let n = 0;
    while (n < this.#waiters.length && (this.#waiters[n] as Waiter).seq <= this.#durableSeq) n++;
    if (n === 0) return;
    for (const waiter of this.#waiters.splice(0, n)) waiter.resolve(waiter.result);
  }

  /** Rejects the waiters whose records start at or after `offset`: they were cut before becoming durable. */
  rejectWaitersFrom(offset: number): void {
    const kept: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.result.lastOffset >= offset) {
        waiter.reject(
          new FailedPreconditionError(
            `records ${waiter.result.baseOffset}..${waiter.result.lastOffset} were truncated before they became durable`,
          ),
        );
      } else {
        kept.push(waiter);
      }
    }
    this.#waiters = kept;
  }

  /** Rejects every waiter with `error`. */
  rejectAll(error: unknown): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  /** Stops the interval timer and waits for the fsync in flight (closing). */
  async settle(): Promise<void> {
    clearTimeout(this.#syncTimer);
    this.options.volumeSync?.withdraw(this);
    while (this.#syncRunning) await this.#syncDone;
  }
}
