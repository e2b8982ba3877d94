import { EventEmitter } from "node:events";
import type { Watcher } from "etcd3";
import type { Logger } from "../observability/logger.js";
import type { GroupEvent, GroupStore, StoredState } from "./group-store.js";
import { emptyGroupState, type GroupSnapshot, type MemberRecord } from "./model.js";

/** How long a departed member's last revision is kept to ignore its older, late events. */
const TOMBSTONE_MS = 5 * 60_000;

interface Entry {
  members: Map<string, MemberRecord>;
  stored: StoredState | undefined;
}

/**
 * Every sentinel's mirror of `<prefix>/groups/`: loaded once, then kept by a watch. The leader also
 * applies its own writes as soon as etcd accepted them (`applyLocal*`), so it decides from them before
 * the watch echoes them; per key, an event older than what the mirror holds is ignored.
 *
 * Emits "changed" (group) after every change.
 */
export class GroupView extends EventEmitter<{ changed: [group: string] }> {
  readonly #groups = new Map<string, Entry>();
  /** Newest etcd revision applied per key ("<group>\0<member id>", or "<group>" for the state). */
  readonly #revisions = new Map<string, bigint>();
  #watcher: Watcher | undefined;
  #restarting: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly store: GroupStore,
    private readonly logger: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const snapshot = await this.store.load();
    const revision = BigInt(snapshot.revision);
    const seen = new Set<string>();
    for (const [group, loaded] of snapshot.groups) {
      seen.add(group);
      const entry = this.#entry(group);
      entry.members = loaded.members;
      if (loaded.state) entry.stored = loaded.state;
      for (const id of loaded.members.keys()) this.#revisions.set(memberSlot(group, id), revision);
      this.#revisions.set(group, revision);
      this.emit("changed", group);
    }
    // A reload (after a broken watch) forgets members that expired meanwhile.
    for (const [group, entry] of this.#groups) {
      if (seen.has(group)) continue;
      if (entry.members.size > 0) {
        entry.members.clear();
        this.emit("changed", group);
      }
    }
    await this.#watcher?.cancel().catch(() => undefined);
    this.#watcher = await this.store.watch(
      snapshot.revision,
      (event) => this.#apply(event),
      (err) => this.#onWatchError(err),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#watcher?.cancel().catch(() => undefined);
  }

  groups(): string[] {
    return [...this.#groups.keys()].sort();
  }

  get(group: string): GroupSnapshot {
    const entry = this.#groups.get(group);
    return {
      group,
      members: entry?.members ?? new Map(),
      state: entry?.stored?.state ?? emptyGroupState(),
    };
  }

  /** The revision of the group's state key ("0": never written), the compare of the leader's write. */
  stateRevision(group: string): string {
    return this.#groups.get(group)?.stored?.modRevision ?? "0";
  }

  member(group: string, memberId: string): MemberRecord | undefined {
    return this.#groups.get(group)?.members.get(memberId);
  }

  /** Reads the group's state key again (after a write lost a race with one the watch has not shown). */
  async reloadState(group: string): Promise<void> {
    const stored = await this.store.readState(group);
    if (stored) this.#apply({ kind: "state", group, stored });
  }

  applyLocalState(group: string, stored: StoredState): void {
    this.#apply({ kind: "state", group, stored });
  }

  applyLocalMember(group: string, member: MemberRecord, revision: string): void {
    this.#apply({ kind: "member", group, member, revision });
  }

  applyLocalMemberGone(group: string, memberId: string, revision: string): void {
    this.#apply({ kind: "member-gone", group, memberId, revision });
  }

  #apply(event: GroupEvent): void {
    const revision = BigInt(event.kind === "state" ? event.stored.modRevision : event.revision);
    const slot =
      event.kind === "state"
        ? event.group
        : memberSlot(event.group, event.kind === "member" ? event.member.memberId : event.memberId);
    if ((this.#revisions.get(slot) ?? -1n) >= revision) return;
    this.#revisions.set(slot, revision);
    const entry = this.#entry(event.group);
    if (event.kind === "state") entry.stored = event.stored;
    else if (event.kind === "member") entry.members.set(event.member.memberId, event.member);
    else {
      if (!entry.members.delete(event.memberId)) return;
      // Keep the tombstone a while (late puts of an older heartbeat are ignored), then forget it.
      setTimeout(() => this.#revisions.delete(slot), TOMBSTONE_MS).unref();
    }
    this.emit("changed", event.group);
  }

  #entry(group: string): Entry {
    let entry = this.#groups.get(group);
    if (!entry) {
      entry = { members: new Map(), stored: undefined };
      this.#groups.set(group, entry);
    }
    return entry;
  }

  #onWatchError(err: Error): void {
    if (this.#stopped || this.#restarting) return;
    this.logger.warn({ err: err.message }, "consumer-group watch failed; reloading groups from etcd");
    this.#restarting = (async () => {
      for (let attempt = 0; !this.#stopped; attempt++) {
        try {
          await this.start();
          return;
        } catch (e) {
          this.logger.warn({ err: (e as Error).message, attempt }, "reloading consumer groups failed");
          await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)));
        }
      }
    })().finally(() => (this.#restarting = undefined));
  }
}

function memberSlot(group: string, memberId: string): string {
  return `${group}\0${memberId}`;
}
