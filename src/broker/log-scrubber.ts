import type { Logger } from "../observability/logger.js";
import type { ReplicatedRecord, SegmentDamage } from "../storage/index.js";
import type { Partition } from "./partition.js";

export interface LogScrubberOptions {
  /** The partitions to verify, asked at the start of every pass. */
  partitions: () => Partition[];
  /** From the start of one pass to the start of the next (ms). */
  intervalMs: number;
  /** Before the first pass (ms): soon after start-up, when damage from a crash is likeliest. */
  firstPassDelayMs: number;
  /** Read rate bound across the whole broker (the scrub verifies one segment at a time). */
  bytesPerSecond: number;
  /** The damaged range's records from the partition's leader (an in-sync replica by definition). */
  fetchRange: (p: Partition, damage: SegmentDamage) => Promise<ReplicatedRecord[]>;
  /** Between attempts to repair damage found (the leader may be unreachable for a while) (ms). */
  repairRetryMs?: number;
  /** Bytes of each segment verified (a metric). */
  onVerified?: (bytes: number) => void;
  logger: Logger;
}

export interface ScrubPassResult {
  segmentsVerified: number;
  damageFound: number;
  repaired: number;
}

/**
 * The background scrub of sealed segments: a bit flip or a lost block in a segment the log rolled past
 * is found by nothing else until a consumer or a new follower reads it, perhaps after the other
 * replicas lost their copies. Each pass reads every sealed segment of every partition again at a
 * bounded rate (see storage/segment-verify.ts); a damaged range marks the partition damaged (it
 * refuses to lead) and, on a follower, is fetched again from the leader and replaced atomically.
 * A leader with another replica in sync steps down and asks the sentinels to hand its leadership over
 * (Partition.refusesLeadership, HandOverLeadership), then repairs the range as a follower.
 */
export class LogScrubber {
  readonly #options: LogScrubberOptions;
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<ScrubPassResult> | undefined;

  constructor(options: LogScrubberOptions) {
    this.#options = options;
  }

  start(): void {
    this.#schedule(this.#options.firstPassDelayMs);
    this.#retryTimer = setInterval(() => {
      if (this.#running !== undefined) return;
      const pending = this.#options.partitions().filter((p) => p.sealedDamage.length > 0);
      if (pending.length === 0) return;
      this.#running = (async () => {
        let repaired = 0;
        for (const p of pending) repaired += await this.#repair(p);
        return { segmentsVerified: 0, damageFound: 0, repaired };
      })().finally(() => {
        this.#running = undefined;
      });
    }, this.#options.repairRetryMs ?? 5_000);
    this.#retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#retryTimer);
    await this.#running?.catch(() => undefined);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      const started = performance.now();
      void this.runPass().finally(() => {
        this.#schedule(Math.max(0, this.#options.intervalMs - (performance.now() - started)));
      });
    }, delayMs);
    this.#timer.unref();
  }

  /** One pass over every partition (also what tests call directly). */
  runPass(): Promise<ScrubPassResult> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<ScrubPassResult> {
    const result: ScrubPassResult = { segmentsVerified: 0, damageFound: 0, repaired: 0 };
    const { logger } = this.#options;
    const pace = { bytesPerSecond: this.#options.bytesPerSecond, stopped: () => this.#stopped };
    for (const p of this.#options.partitions()) {
      if (this.#stopped) break;
      if (p.closed) continue;
      for (const segment of p.log.segments().slice(0, -1)) {
        if (this.#stopped || p.closed) break;
        let verdict;
        try {
          verdict = await p.log.verifySegment(segment.baseOffset, pace);
        } catch (err) {
          logger.warn({ err, partition: p.key, segment: segment.path }, "scrub could not read a segment");
          continue;
        }
        if (verdict === "gone" || verdict === "stopped") continue;
        result.segmentsVerified++;
        this.#options.onVerified?.(segment.sizeBytes);
        if (verdict !== "clean" && p.reportSealedDamage(verdict)) result.damageFound++;
      }
      result.repaired += await this.#repair(p);
    }
    if (result.damageFound > 0 || result.repaired > 0) logger.info({ ...result }, "scrub pass done");
    return result;
  }

  /** Fetches each damaged range of a follower again from its leader; a failure is retried next pass. */
  async #repair(p: Partition): Promise<number> {
    let repaired = 0;
    for (const damage of p.sealedDamage) {
      if (p.role !== "follower" || p.closed) break;
      try {
        const records = await this.#options.fetchRange(p, damage);
        await p.repairSealed(damage, records);
        repaired++;
      } catch (err) {
        this.#options.logger.warn(
          { err, partition: p.key, ...damage },
          "cannot repair a damaged sealed segment yet; retrying at the next scrub pass",
        );
      }
    }
    return repaired;
  }
}
