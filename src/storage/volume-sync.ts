/**
 * fsync "interval" for every partition log of a broker at once: one sync of the data directory's
 * filesystem per interval instead of one fdatasync per partition file written in it.
 *
 * With thousands of partitions each written a few times a second, per-file fsyncs cost thousands of
 * journal commits a second per broker (docs/benchmarks.md, "Produce spread"); one filesystem sync
 * commits them together. A log with unsynced writes enlists here (no timer of its own); when the
 * interval's timer fires, every enlisted log says what the sync will cover, the filesystem is synced
 * once, and each log is told the outcome. fsync "always", rolls, cuts and closes keep their per-file
 * fsyncs: they wait for one partition's data, not for the whole volume's.
 */
import type { Logger } from "../observability/logger.js";

/** What a log does once the volume sync it was part of ended. */
export interface VolumeSyncCompletion {
  /** Everything the log had written when the sync started is on disk. */
  synced(): void;
  /** The filesystem reported an I/O error: the log's unsynced writes are in doubt. */
  failed(err: unknown): void;
  /** The volume could not be synced at all (its helper is gone): the log syncs its own file. */
  unavailable(): void;
}

/** A partition log taking part in volume syncs. */
export interface VolumeSyncMember {
  /** A sync starts: how to finish it for this log, or undefined when the log has nothing to cover. */
  volumeSyncStarting(): VolumeSyncCompletion | undefined;
}

/** Syncs the whole filesystem (syncfs(2)); rejects with {@link VolumeSyncUnavailableError} when it cannot try. */
export type SyncVolume = () => Promise<void>;

/** The volume could not be synced at all (as opposed to a sync that reported an I/O error). */
export class VolumeSyncUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "VolumeSyncUnavailableError";
  }
}

export interface VolumeSyncOptions {
  sync: SyncVolume;
  /** At most this long between a log's first unsynced write and the sync that covers it (ms). */
  intervalMs: number;
  logger: Logger;
  /** Called with the duration (seconds) of every volume sync that ran, e.g. for a histogram. */
  onSync?: (seconds: number) => void;
}

export class VolumeSync {
  readonly #options: VolumeSyncOptions;
  #enlisted = new Set<VolumeSyncMember>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** The timer fired while a sync ran: run again as soon as it ends. */
  #again = false;
  #closed = false;
  /** Once the helper is gone every log syncs its own file: the volume is not tried again. */
  #unavailable = false;

  constructor(options: VolumeSyncOptions) {
    this.#options = options;
  }

  /** False once the volume could not be synced: logs then keep their own interval fsyncs. */
  get available(): boolean {
    return !this.#unavailable && !this.#closed;
  }

  /** `member` has writes to cover: the next sync (at most one interval away) includes it. */
  enlist(member: VolumeSyncMember): void {
    this.#enlisted.add(member);
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) this.#again = true;
      else this.#running = this.#run();
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  /** `member` closes: it syncs itself from now on, and a sync in flight no longer covers it. */
  withdraw(member: VolumeSyncMember): void {
    this.#enlisted.delete(member);
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      const completions: VolumeSyncCompletion[] = [];
      for (const member of this.#enlisted) {
        const completion = member.volumeSyncStarting();
        if (completion) completions.push(completion);
      }
      this.#enlisted.clear();
      if (completions.length > 0) await this.#syncFor(completions);
    } while (this.#again && !this.#closed);
    this.#running = undefined;
  }

  async #syncFor(completions: readonly VolumeSyncCompletion[]): Promise<void> {
    const started = process.hrtime.bigint();
    let error: unknown;
    if (this.#unavailable) error = new VolumeSyncUnavailableError("the volume sync was given up");
    else {
      try {
        await this.#options.sync();
        this.#options.onSync?.(Number(process.hrtime.bigint() - started) / 1e9);
      } catch (err) {
        error = err;
      }
    }
    if (error instanceof VolumeSyncUnavailableError) {
      if (!this.#unavailable) {
        this.#options.logger.warn(
          { err: error },
          "cannot sync the data directory's filesystem any more; each partition file is fsynced instead",
        );
      }
      this.#unavailable = true;
      for (const c of completions) c.unavailable();
    } else if (error !== undefined) {
      this.#options.logger.error({ err: error }, "sync of the data directory's filesystem failed");
      for (const c of completions) c.failed(error);
    } else {
      for (const c of completions) c.synced();
    }
  }

  /** Stops the timer and waits for the sync in flight; the logs' own closes sync what is left. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
