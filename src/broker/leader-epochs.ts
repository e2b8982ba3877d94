import path from "node:path";
import { FailedPreconditionError } from "../errors.js";
import { readFileIfExists, writeFileAtomic } from "./atomic-file.js";

/** Records from `startOffset` on (until the next entry) were written by the leader of `epoch`. */
export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

const FILE_NAME = "leader-epochs.json";

/**
 * A replica's leader-epoch history (Kafka's leader-epoch cache). The partition leader of epoch E is the
 * only broker that writes records labelled E, and a replica's labels always describe its own log, so two
 * replicas hold the same record at an offset exactly when their histories give it the same epoch. That
 * is how a follower learns where its log diverges from a new leader's (see `divergencePoint`).
 * Persisted (temp file + rename) before any record with a new label is written.
 */
export class LeaderEpochHistory {
  #entries: EpochEntry[];

  private constructor(
    private readonly file: string,
    entries: EpochEntry[],
  ) {
    this.#entries = entries;
  }

  /** Loads `<dir>/leader-epochs.json`; entries past `logEndOffset` (lost with an unsynced tail) are dropped. */
  static async open(dir: string, logEndOffset: number): Promise<LeaderEpochHistory> {
    const file = path.join(dir, FILE_NAME);
    const text = await readFileIfExists(file);
    let entries: EpochEntry[] = [];
    if (text !== undefined) {
      const parsed: unknown = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new FailedPreconditionError(`${file} is not a JSON array`);
      entries = parsed.map((item: unknown) => {
        const [epoch, startOffset] = item as [number, number];
        if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(startOffset)) {
          throw new FailedPreconditionError(`${file} holds a malformed entry ${JSON.stringify(item)}`);
        }
        return { epoch, startOffset };
      });
    }
    const history = new LeaderEpochHistory(file, entries);
    if (history.#cut(logEndOffset + 1)) await history.#save();
    return history;
  }

  get entries(): readonly EpochEntry[] {
    return this.#entries;
  }

  /** The newest epoch in the history (-1 when empty). */
  get lastEpoch(): number {
    return this.#entries[this.#entries.length - 1]?.epoch ?? -1;
  }

  /**
   * Starts epoch `epoch` at `startOffset` (a new leader at its log end). No-op when the history already
   * has this epoch or a newer one.
   */
  async begin(epoch: number, startOffset: number): Promise<void> {
    if (epoch <= this.lastEpoch) return;
    this.#cut(startOffset);
    this.#entries.push({ epoch, startOffset });
    await this.#save();
  }

  /**
   * Follower: adopts the leader's entries covering records about to be appended. The follower's log is a
   * prefix of the leader's at this point, so an entry newer than ours relabels from its start on.
   */
  async adopt(entries: readonly EpochEntry[]): Promise<void> {
    let changed = false;
    for (const entry of entries) {
      if (entry.epoch <= this.lastEpoch) continue;
      this.#cut(entry.startOffset);
      this.#entries.push({ epoch: entry.epoch, startOffset: entry.startOffset });
      changed = true;
    }
    if (changed) await this.#save();
  }

  /** The log was truncated to `offset`: entries starting at or after it describe nothing any more. */
  async truncateTo(offset: number): Promise<void> {
    if (this.#cut(offset)) await this.#save();
  }

  /** The log was emptied (behind the leader's log start): the leader's entries will label what comes. */
  async clear(): Promise<void> {
    this.#entries = [];
    await this.#save();
  }

  /** The epoch of the record at `offset` (-1 before the first entry). */
  epochAt(offset: number): number {
    return epochAt(this.#entries, offset);
  }

  /** The entries a follower needs to label records [from, to]: the one in force at `from` and any later. */
  covering(from: number, to: number): EpochEntry[] {
    const out: EpochEntry[] = [];
    for (let i = 0; i < this.#entries.length; i++) {
      const entry = this.#entries[i] as EpochEntry;
      const next = this.#entries[i + 1];
      if (entry.startOffset > to) break;
      if (next === undefined || next.startOffset > from) out.push(entry);
    }
    return out;
  }

  #cut(offset: number): boolean {
    const keep = this.#entries.filter((e) => e.startOffset < offset);
    if (keep.length === this.#entries.length) return false;
    this.#entries = keep;
    return true;
  }

  async #save(): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(this.#entries.map((e) => [e.epoch, e.startOffset])));
  }
}

/** The epoch label of `offset` in a history (-1 before its first entry). */
export function epochAt(entries: readonly EpochEntry[], offset: number): number {
  let epoch = -1;
  for (const entry of entries) {
    if (entry.startOffset > offset) break;
    epoch = entry.epoch;
  }
  return epoch;
}

/**
 * Where a follower must cut its log to become a prefix of the leader's, or undefined when it already is
 * one. The first offset below both log ends that the two histories label differently is where they
 * diverge; labels only change at entry starts, so those are the only offsets to check. A follower
 * longer than the leader without a divergence is cut to the leader's end.
 */
export function divergencePoint(
  follower: readonly EpochEntry[],
  followerEnd: number,
  leader: readonly EpochEntry[],
  leaderEnd: number,
): number | undefined {
  const end = Math.min(followerEnd, leaderEnd);
  const bounds = [...new Set([...follower, ...leader].map((e) => e.startOffset))]
    .filter((offset) => offset < end)
    .sort((a, b) => a - b);
  for (const offset of bounds) {
    if (epochAt(follower, offset) !== epochAt(leader, offset)) return offset;
  }
  return followerEnd > leaderEnd ? leaderEnd : undefined;
}
