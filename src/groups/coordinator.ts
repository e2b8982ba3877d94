import { randomUUID } from "node:crypto";
import { FailedPreconditionError, NotFoundError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { PartitionCounts } from "./assignor.js";
import { StateConflictError, type GroupStore } from "./group-store.js";
import type { GroupView } from "./group-view.js";
import type { GroupState, MemberRecord, MemberView, PartitionKey } from "./model.js";
import { transferMember } from "./static-membership.js";
import { memberView, nextGroupState, type OwnedReport } from "./transitions.js";

/** One GroupHeartbeat, validated. */
export interface HeartbeatInput {
  group: string;
  /** "" to join. */
  memberId: string;
  instanceId: string;
  clientId: string;
  /** Sorted subscription; [] = unchanged (heartbeats need not repeat it). */
  topics: string[];
  sessionTimeoutMs: number;
  owned: ReadonlySet<PartitionKey>;
  /** The generation `owned` was computed at (0: unknown). */
  generation: number;
  leave: boolean;
}

export interface HeartbeatResult {
  memberId: string;
  view: MemberView;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
}

export interface GroupCoordinatorOptions {
  store: GroupStore;
  view: GroupView;
  /** Partitions of an existing topic (the applied control-plane state). */
  partitionCounts: PartitionCounts;
  /** The election key proving this sentinel leads (undefined when it does not). */
  fenceKey: () => string | undefined;
  /** Members one group may have. */
  maxMembers: number;
  logger: Logger;
  /** Called after every state the leader wrote: the generation moved. */
  onRebalance?: (group: string, reason: string) => void;
  now?: () => number;
}

/** How often the leader re-checks every group even without events (topics created, missed events). */
const SWEEP_INTERVAL_MS = 5_000;
/** State writes that lost a race are retried this often before the caller gets the error. */
const MAX_CONFLICT_RETRIES = 3;

/**
 * The consumer-group coordinator (docs/architecture.md, "Consumer groups"). Any sentinel renews a
 * member's session and answers a heartbeat that changes nothing (`tryLocal`); the leader decides
 * everything else — joins, leaves, subscription changes, releases, departed members, new topics — one
 * group at a time, from the stored state, and writes the next state fenced by its election key.
 */
export class GroupCoordinator {
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #dirty = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweepScheduled = false;
  #leading = false;
  readonly #now: () => number;

  constructor(private readonly options: GroupCoordinatorOptions) {
    this.#now = options.now ?? Date.now;
    options.view.on("changed", (group) => {
      if (!this.#leading) return;
      this.#dirty.add(group);
      this.#scheduleSweep();
    });
  }

  /** Leadership gained: re-check every group (members may have expired while no one led). */
  startLeading(): void {
    if (this.#leading) return;
    this.#leading = true;
    for (const group of this.options.view.groups()) this.#dirty.add(group);
    this.#scheduleSweep();
    this.#sweepTimer = setInterval(() => {
      for (const group of this.options.view.groups()) this.#dirty.add(group);
      this.#scheduleSweep();
    }, SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
  }

  stopLeading(): void {
    this.#leading = false;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#dirty.clear();
  }

  /** Topics were created: groups subscribing to them get their partitions. */
  topicsChanged(): void {
    if (!this.#leading) return;
    for (const group of this.options.view.groups()) this.#dirty.add(group);
    this.#scheduleSweep();
  }

  /**
   * A heartbeat any sentinel can answer: the member is known here, keeps its subscription, and its
   * report changes nothing. Renews the session; undefined when the leader must decide.
   */
  async tryLocal(input: HeartbeatInput): Promise<HeartbeatResult | undefined> {
    if (input.leave || input.memberId === "") return undefined;
    const snapshot = this.options.view.get(input.group);
    const member = snapshot.members.get(input.memberId);
    if (!member) return undefined;
    if (input.topics.length > 0 && !sameList(input.topics, member.topics)) return undefined;
    const next = nextGroupState(snapshot.state, snapshot.members, this.options.partitionCounts, {
      member: input.memberId,
      owned: input.owned,
      generation: input.generation,
    });
    if (next !== snapshot.state) return undefined;
    await this.#renew(input.group, member, input);
    return this.#result(input.memberId, snapshot.state, member.sessionTimeoutMs);
  }

  /** Leader: carries out a heartbeat (join, leave, report, subscription change). */
  decide(input: HeartbeatInput): Promise<HeartbeatResult> {
    return this.#locked(input.group, async () => {
      if (input.leave) return this.#leave(input);
      if (input.memberId === "") return this.#join(input);
      const snapshot = this.options.view.get(input.group);
      const member = snapshot.members.get(input.memberId);
      if (!member) throw notAMember(input.group, input.memberId);
      const renewed = await this.#renew(input.group, member, input);
      const state = await this.#advance(input.group, "release", {
        member: input.memberId,
        owned: input.owned,
        generation: input.generation,
      });
      return this.#result(input.memberId, state, renewed.sessionTimeoutMs);
    });
  }

  async #join(input: HeartbeatInput): Promise<HeartbeatResult> {
    const { group, instanceId } = input;
    const snapshot = this.options.view.get(group);
    const now = this.#now();
    const previous =
      instanceId === "" ? undefined : [...snapshot.members.values()].find((m) => m.instanceId === instanceId);
    if (!previous && snapshot.members.size >= this.options.maxMembers) {
      throw new FailedPreconditionError(
        `group ${group} already has ${snapshot.members.size} members, the limit (--max-group-members ` +
          `${this.options.maxMembers}); nothing was stored`,
      );
    }
    const record: MemberRecord = {
      memberId: randomUUID(),
      instanceId,
      clientId: input.clientId,
      topics: input.topics,
      sessionTimeoutMs: input.sessionTimeoutMs,
      joinedAt: previous?.joinedAt ?? now,
      lastHeartbeat: now,
    };
    const revision = await this.options.store.putMember(group, record);
    this.options.view.applyLocalMember(group, record, revision);
    try {
      // A static member back within its session takes over its previous self: same partitions, new
      // epochs and member id (the old process, if any, is fenced); nobody else is disturbed. The old
      // member leaves the mirror without a state change of its own.
      const transfer = previous
        ? (s: GroupState) => transferMember(s, previous.memberId, record.memberId)
        : undefined;
      if (previous) {
        const gone = await this.options.store.deleteMember(group, previous.memberId);
        this.options.view.applyLocalMemberGone(group, previous.memberId, gone);
      }
      const state = await this.#advance(group, previous ? "static rejoin" : "join", undefined, transfer);
      this.options.logger.info(
        {
          group,
          memberId: record.memberId,
          instanceId: instanceId || undefined,
          generation: state.generation,
        },
        previous ? "consumer-group member rejoined with its instance id" : "consumer-group member joined",
      );
      return this.#result(record.memberId, state, record.sessionTimeoutMs);
    } catch (err) {
      await this.options.store.deleteMember(group, record.memberId).catch(() => undefined);
      throw err;
    }
  }

  async #leave(input: HeartbeatInput): Promise<HeartbeatResult> {
    const { group, memberId } = input;
    const member = this.options.view.member(group, memberId);
    if (member) {
      const revision = await this.options.store.deleteMember(group, memberId);
      this.options.view.applyLocalMemberGone(group, memberId, revision);
      this.options.logger.info({ group, memberId }, "consumer-group member left");
    }
    const state = await this.#advance(group, "leave");
    return this.#result(memberId, state, member?.sessionTimeoutMs ?? input.sessionTimeoutMs);
  }

  async #renew(group: string, member: MemberRecord, input: HeartbeatInput): Promise<MemberRecord> {
    const record: MemberRecord = {
      ...member,
      topics: input.topics.length > 0 ? input.topics : member.topics,
      clientId: input.clientId || member.clientId,
      lastHeartbeat: this.#now(),
    };
    const revision = await this.options.store.renewMember(group, record);
    this.options.view.applyLocalMember(group, record, revision);
    return record;
  }

  /**
   * Computes the group's next state from the mirror and writes it when it changed; on a lost race
   * (the mirror was behind) waits for the mirror and tries again.
   */
  async #advance(
    group: string,
    reason: string,
    report?: OwnedReport,
    first?: (state: GroupState) => GroupState,
  ): Promise<GroupState> {
    for (let attempt = 0; ; attempt++) {
      const snapshot = this.options.view.get(group);
      const start = first ? first(snapshot.state) : snapshot.state;
      const next = nextGroupState(start, snapshot.members, this.options.partitionCounts, report);
      if (next === snapshot.state) return next;
      const fenceKey = this.options.fenceKey();
      if (!fenceKey) throw new FailedPreconditionError("this sentinel no longer leads; retry");
      try {
        const revision = await this.options.store.writeState(
          group,
          next,
          fenceKey,
          this.options.view.stateRevision(group),
        );
        this.options.view.applyLocalState(group, { state: next, modRevision: revision });
        this.options.onRebalance?.(group, reason);
        return next;
      } catch (err) {
        if (!(err instanceof StateConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw err;
        await this.options.view.reloadState(group);
      }
    }
  }

  #result(memberId: string, state: GroupState, sessionTimeoutMs: number): HeartbeatResult {
    return {
      memberId,
      view: memberView(state, memberId),
      sessionTimeoutMs,
      heartbeatIntervalMs: heartbeatIntervalOf(sessionTimeoutMs),
    };
  }

  #scheduleSweep(): void {
    if (this.#sweepScheduled) return;
    this.#sweepScheduled = true;
    setImmediate(() => {
      this.#sweepScheduled = false;
      const groups = [...this.#dirty];
      this.#dirty.clear();
      for (const group of groups) {
        void this.#locked(group, () => this.#advance(group, "membership")).catch((err: unknown) => {
          if (!this.#leading) return;
          this.options.logger.warn({ group, err: err }, "consumer-group rebalance failed; will retry");
          this.#dirty.add(group);
        });
      }
    });
  }

  /** Runs `work` after every earlier decision of the same group. */
  #locked<T>(group: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(group) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.#locks.set(group, tail);
    void tail.then(() => {
      if (this.#locks.get(group) === tail) this.#locks.delete(group);
    });
    return next;
  }
}

/** A third of the session: two heartbeats may be lost before the session expires. */
export function heartbeatIntervalOf(sessionTimeoutMs: number): number {
  return Math.max(500, Math.floor(sessionTimeoutMs / 3));
}

export function notAMember(group: string, memberId: string): NotFoundError {
  return new NotFoundError(
    `member ${memberId} is not in group ${group} (its session expired or it left): rejoin`,
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
