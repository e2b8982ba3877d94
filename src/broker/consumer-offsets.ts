import path from "node:path";
import { FailedPreconditionError } from "../errors.js";
import { readFileIfExists, writeFileAtomic } from "./atomic-file.js";

/** One committed offset, as replicated: `version` orders the commits of a leader. */
export interface OffsetChange {
  group: string;
  offset: number;
  version: number;
}

const FILE_NAME = "consumer-offsets.json";
/** Recent changes kept for replication deltas; a follower further behind gets the whole table. */
const MAX_RECENT_CHANGES = 4096;

/**
 * Consumer-group offsets of one partition: a small table (group → next offset to consume) kept by every
 * replica. The leader applies commits and numbers them with a version; followers receive the changes on
 * the Replicate stream (the whole table on a new stream) and store them before they ask for more, so a
 * commit acknowledged by every in-sync replica survives a leadership change.
 *
 * On disk it is one compact JSON file rewritten atomically (temp + fsync + rename); writes issued while
 * one is running are coalesced into the next, so a burst of commits costs a couple of fsyncs.
 */
export class ConsumerOffsets {
  #offsets = new Map<string, number>();
  #version = 0;
  #recent: OffsetChange[] = [];
  #writing: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;

  private constructor(private readonly file: string) {}

  static async open(dir: string): Promise<ConsumerOffsets> {
    const store = new ConsumerOffsets(path.join(dir, FILE_NAME));
    const text = await readFileIfExists(store.file);
    if (text !== undefined) {
      const parsed = JSON.parse(text) as { version?: unknown; offsets?: unknown };
      if (typeof parsed.version !== "number" || typeof parsed.offsets !== "object" || !parsed.offsets) {
        throw new FailedPreconditionError(`${store.file} is not a consumer-offset table`);
      }
      store.#version = parsed.version;
      for (const [group, offset] of Object.entries(parsed.offsets as Record<string, unknown>)) {
        if (typeof offset === "number") store.#offsets.set(group, offset);
      }
    }
    return store;
  }

  get version(): number {
    return this.#version;
  }

  get(group: string): number | undefined {
    return this.#offsets.get(group);
  }

  entries(): IterableIterator<[string, number]> {
    return this.#offsets.entries();
  }

  /** Leader: applies a commit and resolves with its version once it is stored. */
  async commit(group: string, offset: number): Promise<number> {
    const version = ++this.#version;
    this.#offsets.set(group, offset);
    this.#recent.push({ group, offset, version });
    if (this.#recent.length > MAX_RECENT_CHANGES) this.#recent.splice(0, this.#recent.length / 2);
    await this.#persist();
    return version;
  }

  /**
   * What a follower that has `version` (received on this stream; undefined before the first response)
   * needs: the changes after it, or the whole table (snapshot) when it is new to the stream or further
   * behind than the recent changes reach.
   */
  changesSince(version: number | undefined): { changes: OffsetChange[]; snapshot: boolean } {
    if (version !== undefined) {
      if (version >= this.#version) return { changes: [], snapshot: false };
      const first = this.#recent[0];
      if (first !== undefined && first.version <= version + 1) {
        return { changes: this.#recent.filter((c) => c.version > version), snapshot: false };
      }
    }
    const changes: OffsetChange[] = [];
    for (const [group, offset] of this.#offsets) changes.push({ group, offset, version: this.#version });
    return { changes, snapshot: true };
  }

  /** Follower: applies the leader's changes (or its whole table) and resolves once they are stored. */
  async apply(changes: readonly OffsetChange[], version: number, snapshot: boolean): Promise<void> {
    if (snapshot) this.#offsets.clear();
    for (const change of changes) this.#offsets.set(change.group, change.offset);
    this.#version = version;
    // A follower that becomes leader numbers its own commits after the old leader's.
    this.#recent = [];
    await this.#persist();
  }

  /** Resolves once a write that started after this call has finished. */
  #persist(): Promise<void> {
    if (this.#queued) return this.#queued;
    const queued = this.#writing
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        const table = JSON.stringify({ version: this.#version, offsets: Object.fromEntries(this.#offsets) });
        this.#writing = writeFileAtomic(this.file, table);
        return this.#writing;
      });
    this.#queued = queued;
    return queued;
  }
}
