import path from "node:path";
import { FailedPreconditionError } from "../errors.js";
import { readFileIfExists, writeFileAtomic } from "./atomic-file.js";
import { FencedMemberError, TooManyConsumerGroupsError } from "./errors.js";

/** "No committed offset": what GetCommittedOffset answers, and the offset of a group that is only fenced. */
export const NO_OFFSET = -1;
/** Groups one partition keeps by default; a commit or fence for a new group beyond it is refused. */
export const MAX_GROUPS_PER_PARTITION = 10_000;

/**
 * One change of the table, as replicated: the group's entry becomes `(offset, fence)`. `offset` is
 * NO_OFFSET for a group that is fenced but never committed; `(NO_OFFSET, 0)` is the empty entry, i.e.
 * the group is forgotten (DeleteCommittedOffset). `version` orders the changes of a leader.
 */
export interface OffsetChange {
  group: string;
  offset: number;
  fence: number;
  version: number;
}

interface Entry {
  offset: number;
  /** Highest member epoch seen for the group (0 = never fenced). */
  fence: number;
  /** Table version of the entry's last change (what a reader of it waits to be replicated). */
  version: number;
}

export interface ConsumerOffsetsOptions {
  /** The partition, for error messages. */
  topic: string;
  partition: number;
  /** Groups kept at most (default MAX_GROUPS_PER_PARTITION). */
  maxGroups?: number;
}

const FILE_NAME = "consumer-offsets.json";
/** Recent changes kept for replication deltas; a follower further behind gets the whole table. */
const MAX_RECENT_CHANGES = 4096;

/**
 * Consumer-group offsets of one partition: a small table (group → next offset to consume, and the
 * group's commit fence) kept by every replica. The leader applies commits, fence raises and deletions
 * and numbers them with a version; followers receive the changes on the Replicate stream (the whole
 * table on a new stream) and store them before they ask for more, so a change acknowledged by every
 * in-sync replica survives a leadership change.
 *
 * The fence is the highest member epoch seen for the group: a commit with a non-zero epoch below it
 * comes from a member the partition was taken from, and is refused. Epoch 0 is never fenced.
 *
 * On disk it is one compact JSON file rewritten atomically (temp + fsync + rename):
 * `{"version": n, "offsets": {group: offset}, "fences": {group: fence}}`. Groups without a committed
 * offset are absent from `offsets`, unfenced ones from `fences`; a file without `fences` (written
 * before fences existed) reads as "no group fenced". Writes issued while one is running are coalesced
 * into the next, so a burst of commits costs a couple of fsyncs.
 */
export class ConsumerOffsets {
  #entries = new Map<string, Entry>();
  #version = 0;
  #recent: OffsetChange[] = [];
  #writing: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;
  /** What the file holds (the empty table when there is none): an identical table is not written again. */
  #stored = "";
  readonly #maxGroups: number;

  private constructor(
    private readonly file: string,
    private readonly options: ConsumerOffsetsOptions,
  ) {
    this.#maxGroups = options.maxGroups ?? MAX_GROUPS_PER_PARTITION;
  }

  static async open(dir: string, options: ConsumerOffsetsOptions): Promise<ConsumerOffsets> {
    const store = new ConsumerOffsets(path.join(dir, FILE_NAME), options);
    const text = await readFileIfExists(store.file);
    if (text !== undefined) store.#load(text);
    store.#stored = store.#serialize();
    return store;
  }

  #load(text: string): void {
    const parsed = JSON.parse(text) as { version?: unknown; offsets?: unknown; fences?: unknown };
    const { version, offsets, fences = {} } = parsed;
    if (
      typeof version !== "number" ||
      typeof offsets !== "object" ||
      offsets === null ||
      typeof fences !== "object" ||
      fences === null
    ) {
      throw new FailedPreconditionError(`${this.file} is not a consumer-offset table`);
    }
    this.#version = version;
    // Nothing is known to be replicated yet: a reader waits for the whole table version.
    const entry = (group: string): Entry => {
      let e = this.#entries.get(group);
      if (e === undefined) {
        e = { offset: NO_OFFSET, fence: 0, version };
        this.#entries.set(group, e);
      }
      return e;
    };
    for (const [group, offset] of Object.entries(offsets as Record<string, unknown>)) {
      if (typeof offset === "number" && offset >= 0) entry(group).offset = offset;
    }
    for (const [group, fence] of Object.entries(fences as Record<string, unknown>)) {
      if (typeof fence === "number" && fence > 0) entry(group).fence = fence;
    }
  }

  get version(): number {
    return this.#version;
  }

  /** Groups kept (committed or fenced). */
  get size(): number {
    return this.#entries.size;
  }

  /** The group's committed offset; undefined when it has none. */
  get(group: string): number | undefined {
    const offset = this.#entries.get(group)?.offset;
    return offset === undefined || offset === NO_OFFSET ? undefined : offset;
  }

  /** The group's fence: the highest member epoch seen (0 = never fenced). */
  fence(group: string): number {
    return this.#entries.get(group)?.fence ?? 0;
  }

  /** [group, committed offset] of every group that committed. */
  *committed(): IterableIterator<[string, number]> {
    for (const [group, e] of this.#entries) if (e.offset !== NO_OFFSET) yield [group, e.offset];
  }

  /**
   * Leader: applies a commit and resolves with its version once it is stored. A non-zero `memberEpoch`
   * below the group's fence is refused (FencedMemberError); a higher one raises the fence with the
   * offset. Checked and applied synchronously, so nothing interleaves between the check and the change.
   */
  async commit(group: string, offset: number, memberEpoch: number): Promise<number> {
    const e = this.#entries.get(group);
    const fence = e?.fence ?? 0;
    if (memberEpoch !== 0 && memberEpoch < fence) throw this.#fenced("commit", group, fence, memberEpoch);
    if (e === undefined && this.#entries.size >= this.#maxGroups) throw this.#full();
    return this.#change(group, offset, Math.max(fence, memberEpoch));
  }

  /**
   * Leader: a member takes the partition over with `memberEpoch` (> 0). Below the fence: refused
   * (FencedMemberError). Above it: the fence is raised (the offset unchanged). Resolves with the version
   * a reader must wait to be replicated before it answers: the raise, or the fence's last change.
   */
  async raiseFence(group: string, memberEpoch: number): Promise<number> {
    if (memberEpoch <= 0) throw new RangeError(`a fence is a member epoch > 0, got ${memberEpoch}`);
    const e = this.#entries.get(group);
    const fence = e?.fence ?? 0;
    if (memberEpoch < fence) throw this.#fenced("offset fetch", group, fence, memberEpoch);
    if (e !== undefined && memberEpoch === fence) {
      // Already raised (e.g. a retry): its write may still be running.
      await (this.#queued ?? this.#writing);
      return e.version;
    }
    if (e === undefined && this.#entries.size >= this.#maxGroups) throw this.#full();
    return this.#change(group, e?.offset ?? NO_OFFSET, memberEpoch);
  }

  /**
   * Leader: forgets the group's offset and fence. `deleted` says whether it had a committed offset;
   * `version` is the deletion's (undefined when the group was not kept: nothing to replicate).
   */
  async delete(group: string): Promise<{ deleted: boolean; version: number | undefined }> {
    const e = this.#entries.get(group);
    if (e === undefined) return { deleted: false, version: undefined };
    const version = await this.#change(group, NO_OFFSET, 0);
    return { deleted: e.offset !== NO_OFFSET, version };
  }

  /** Sets the group's entry (the empty entry removes it), numbers the change, stores the table. */
  async #change(group: string, offset: number, fence: number): Promise<number> {
    const version = ++this.#version;
    this.#set(group, offset, fence, version);
    this.#recent.push({ group, offset, fence, version });
    if (this.#recent.length > MAX_RECENT_CHANGES) this.#recent.splice(0, this.#recent.length / 2);
    await this.#persist();
    return version;
  }

  #set(group: string, offset: number, fence: number, version: number): void {
    if (offset === NO_OFFSET && fence === 0) this.#entries.delete(group);
    else this.#entries.set(group, { offset, fence, version });
  }

  #fenced(what: "commit" | "offset fetch", group: string, fence: number, memberEpoch: number) {
    return new FencedMemberError(what, this.options.topic, this.options.partition, group, fence, memberEpoch);
  }

  #full(): TooManyConsumerGroupsError {
    return new TooManyConsumerGroupsError(this.options.topic, this.options.partition, this.#maxGroups);
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
    for (const [group, e] of this.#entries) {
      changes.push({ group, offset: e.offset, fence: e.fence, version: this.#version });
    }
    return { changes, snapshot: true };
  }

  /** Follower: applies the leader's changes (or its whole table) and resolves once they are stored. */
  async apply(changes: readonly OffsetChange[], version: number, snapshot: boolean): Promise<void> {
    if (snapshot) this.#entries.clear();
    for (const c of changes) this.#set(c.group, c.offset, c.fence, c.version);
    this.#version = version;
    // A follower that becomes leader numbers its own changes after the old leader's.
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
        const text = this.#serialize();
        // A follower gets the whole table each time it starts replicating a partition: with thousands
        // of partitions, rewriting identical files is most of what a (re)start costs.
        if (text === this.#stored) return;
        this.#writing = writeFileAtomic(this.file, text).then(() => {
          this.#stored = text;
        });
        return this.#writing;
      });
    this.#queued = queued;
    return queued;
  }

  #serialize(): string {
    // Object.fromEntries defines own properties, so a group named "__proto__" is kept like any other.
    const offsets: [string, number][] = [];
    const fences: [string, number][] = [];
    for (const [group, e] of this.#entries) {
      if (e.offset !== NO_OFFSET) offsets.push([group, e.offset]);
      if (e.fence !== 0) fences.push([group, e.fence]);
    }
    return JSON.stringify({
      version: this.#version,
      offsets: Object.fromEntries(offsets),
      fences: Object.fromEntries(fences),
    });
  }
}
