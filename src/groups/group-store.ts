import type { Etcd3, Watcher } from "etcd3";
import { NotFoundError, UnavailableError } from "../errors.js";
import type { Keyspace } from "../coordination/keyspace.js";
import { emptyGroupState, type GroupState, type MemberRecord } from "./model.js";

/** A stored group state and the etcd revision that wrote it (the compare of the next write). */
export interface StoredState {
  state: GroupState;
  modRevision: string;
}

/** Everything under `<prefix>/groups/`, as read at `revision`. */
export interface GroupsSnapshot {
  revision: string;
  groups: Map<string, { members: Map<string, MemberRecord>; state: StoredState | undefined }>;
}

export type GroupEvent =
  | { kind: "member"; group: string; member: MemberRecord; revision: string }
  | { kind: "member-gone"; group: string; memberId: string; revision: string }
  | { kind: "state"; group: string; stored: StoredState };

/** The leader's state write lost a race (another leader, or a write it has not seen yet). */
export class StateConflictError extends UnavailableError {
  constructor(group: string) {
    super(`the state of group ${group} changed under this write (a leader change?); retry`);
  }
}

/**
 * Consumer groups in etcd (docs/architecture.md, "Consumer groups"): member keys bound to leases of
 * their session timeout, renewed by rewriting them under a fresh lease (so any sentinel can renew any
 * member, as with broker heartbeats), and one state key per group written by the leader only.
 */
export class GroupStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keyspace,
  ) {}

  /** Creates or replaces a member under a fresh lease of its session timeout; answers the revision. */
  async putMember(group: string, member: MemberRecord): Promise<string> {
    const lease = this.etcd.lease(leaseTtlSeconds(member.sessionTimeoutMs), { autoKeepAlive: false });
    try {
      const res = await lease
        .put(this.keys.groupMember(group, member.memberId))
        .value(JSON.stringify(member));
      return res.header.revision;
    } finally {
      lease.release();
    }
  }

  /**
   * Renews a member's session: rewrites its key under a fresh lease, only if the key still exists — a
   * member whose session already expired must rejoin, never come back by a late heartbeat.
   */
  async renewMember(group: string, member: MemberRecord): Promise<string> {
    const key = this.keys.groupMember(group, member.memberId);
    const lease = this.etcd.lease(leaseTtlSeconds(member.sessionTimeoutMs), { autoKeepAlive: false });
    try {
      const id = await lease.grant();
      const result = await this.etcd
        .if(key, "Version", ">", 0)
        .then(this.etcd.put(key).value(JSON.stringify(member)).lease(id))
        .commit();
      if (!result.succeeded) {
        await lease.revoke().catch(() => undefined);
        throw new NotFoundError(
          `member ${member.memberId} is not in group ${group} (its session expired or it left): rejoin`,
        );
      }
      return result.header.revision;
    } finally {
      lease.release();
    }
  }

  async deleteMember(group: string, memberId: string): Promise<string> {
    const res = await this.etcd.delete().key(this.keys.groupMember(group, memberId));
    return res.header.revision;
  }

  /**
   * Writes a group's state if this sentinel still leads (`fenceKey` exists) and the state key is
   * still the one the leader decided from (`expectedRevision`, "0" when absent). Answers the new
   * revision.
   */
  async writeState(
    group: string,
    state: GroupState,
    fenceKey: string,
    expectedRevision: string,
  ): Promise<string> {
    const key = this.keys.groupState(group);
    const result = await this.etcd
      .if(fenceKey, "Create", ">", 0)
      .and(key, "Mod", "==", expectedRevision)
      .then(this.etcd.put(key).value(JSON.stringify(state)))
      .commit();
    if (!result.succeeded) throw new StateConflictError(group);
    return result.header.revision;
  }

  async readState(group: string): Promise<StoredState | undefined> {
    const res = await this.etcd.get(this.keys.groupState(group)).exec();
    const kv = res.kvs[0];
    if (!kv) return undefined;
    const event = this.#decode(kv.key.toString(), kv.value.toString(), kv.mod_revision);
    return event?.kind === "state" ? event.stored : undefined;
  }

  async load(): Promise<GroupsSnapshot> {
    const res = await this.etcd.getAll().prefix(this.keys.groupsPrefix).exec();
    const groups: GroupsSnapshot["groups"] = new Map();
    for (const kv of res.kvs) {
      const event = this.#decode(kv.key.toString(), kv.value.toString(), kv.mod_revision);
      if (!event) continue;
      const entry = groups.get(event.group) ?? { members: new Map(), state: undefined };
      groups.set(event.group, entry);
      if (event.kind === "member") entry.members.set(event.member.memberId, event.member);
      else if (event.kind === "state") entry.state = event.stored;
    }
    return { revision: res.header.revision, groups };
  }

  /** Every change after `revision`, in order. */
  async watch(
    revision: string,
    onEvent: (event: GroupEvent) => void,
    onError: (err: Error) => void,
  ): Promise<Watcher> {
    const watcher = await this.etcd
      .watch()
      .prefix(this.keys.groupsPrefix)
      .startRevision(String(BigInt(revision) + 1n))
      .create();
    watcher.on("put", (kv) => {
      const event = this.#decode(kv.key.toString(), kv.value.toString(), kv.mod_revision);
      if (event) onEvent(event);
    });
    watcher.on("delete", (kv) => {
      const parsed = this.#parseKey(kv.key.toString());
      if (parsed?.memberId !== undefined) {
        onEvent({
          kind: "member-gone",
          group: parsed.group,
          memberId: parsed.memberId,
          revision: kv.mod_revision,
        });
      }
    });
    watcher.on("error", onError);
    return watcher;
  }

  #parseKey(key: string): { group: string; memberId?: string; state?: true } | undefined {
    if (!key.startsWith(this.keys.groupsPrefix)) return undefined;
    const parts = key.slice(this.keys.groupsPrefix.length).split("/");
    if (parts.length === 3 && parts[1] === "members")
      return { group: parts[0] as string, memberId: parts[2] };
    if (parts.length === 2 && parts[1] === "state") return { group: parts[0] as string, state: true };
    return undefined;
  }

  #decode(key: string, value: string, modRevision: string): GroupEvent | undefined {
    const parsed = this.#parseKey(key);
    if (!parsed) return undefined;
    if (parsed.memberId !== undefined) {
      const member = JSON.parse(value) as MemberRecord;
      return { kind: "member", group: parsed.group, member, revision: modRevision };
    }
    const state = { ...emptyGroupState(), ...(JSON.parse(value) as Partial<GroupState>) };
    return { kind: "state", group: parsed.group, stored: { state, modRevision } };
  }
}

/** etcd leases count whole seconds: a session of 2.5 s lives 3 s at most after its last heartbeat. */
export function leaseTtlSeconds(sessionTimeoutMs: number): number {
  return Math.max(1, Math.ceil(sessionTimeoutMs / 1000));
}
