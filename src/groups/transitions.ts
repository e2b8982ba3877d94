import { assignTargets, type PartitionCounts } from "./assignor.js";
import {
  parsePartitionKey,
  type GroupPhase,
  type GroupState,
  type MemberRecord,
  type MemberView,
  type Owner,
  type PartitionKey,
} from "./model.js";

/**
 * Pure state transitions of one group (docs/architecture.md, "Consumer groups"). The leader computes
 * the next state from the stored one and the live members, and writes it only when it differs.
 */

/** What a member said in a heartbeat: the partitions it consumes now. */
export interface OwnedReport {
  member: string;
  owned: ReadonlySet<PartitionKey>;
  /**
   * The newest generation the member had applied when it listed `owned` (0 or absent: unknown). A
   * partition it was given later is missing from `owned` because it had not heard of it, not because
   * it let it go.
   */
  generation?: number;
}

/**
 * The next state: targets recomputed for `members`, owners of departed members dropped, partitions
 * the reporting member released (owned by it, no longer its target, absent from its report) freed,
 * and every free partition handed to its target at a new generation. Returns `current` itself when
 * nothing changes.
 */
export function nextGroupState(
  current: GroupState,
  members: ReadonlyMap<string, MemberRecord>,
  partitionCounts: PartitionCounts,
  report?: OwnedReport,
): GroupState {
  const targets = assignTargets([...members.values()], partitionCounts, current.targets);
  const owners: Record<PartitionKey, Owner> = {};
  for (const [key, owner] of Object.entries(current.owners)) {
    if (!members.has(owner.member)) continue; // its session ended: the partition is free
    const released =
      report !== undefined &&
      owner.member === report.member &&
      targets[key] !== owner.member &&
      !report.owned.has(key) &&
      (!report.generation || report.generation >= owner.epoch);
    if (!released) owners[key] = owner;
  }
  const handOvers = Object.keys(targets)
    .filter((key) => owners[key] === undefined)
    .sort();
  // Any change — a target moved, an owner left or released, a hand-over — is a new generation, so a
  // member can tell a newer assignment from an older one by the number alone.
  const generation = current.generation + 1;
  for (const key of handOvers) owners[key] = { member: targets[key] as string, epoch: generation };
  // An owner of a partition that left the subscription (no target) keeps it until it releases it.
  if (sameRecord(current.targets, targets) && sameOwners(current.owners, owners)) return current;
  return { generation, targets, owners };
}

/**
 * A static member's new session (the same instance restarted): same partitions, new epochs, so the
 * previous process can no longer commit.
 */
export function renewEpochs(current: GroupState, member: string): GroupState {
  const generation = current.generation + 1;
  const owners: Record<PartitionKey, Owner> = {};
  for (const [key, owner] of Object.entries(current.owners)) {
    owners[key] = owner.member === member ? { member, epoch: generation } : owner;
  }
  return { generation, targets: { ...current.targets }, owners };
}

export function sameGroupState(a: GroupState, b: GroupState): boolean {
  return a.generation === b.generation && sameRecord(a.targets, b.targets) && sameOwners(a.owners, b.owners);
}

/** What one member is told: consume, release, or wait for. */
export function memberView(state: GroupState, member: string): MemberView {
  const view: MemberView = { generation: state.generation, partitions: [], revoking: [], pending: [] };
  for (const key of Object.keys(state.owners).sort()) {
    const owner = state.owners[key] as Owner;
    if (owner.member !== member) continue;
    const tp = parsePartitionKey(key);
    if (state.targets[key] === member) view.partitions.push({ ...tp, epoch: owner.epoch });
    else view.revoking.push(tp);
  }
  for (const key of Object.keys(state.targets).sort()) {
    if (state.targets[key] === member && state.owners[key]?.member !== member) {
      view.pending.push(parsePartitionKey(key));
    }
  }
  return view;
}

export function groupPhase(state: GroupState, members: ReadonlyMap<string, unknown>): GroupPhase {
  if (members.size === 0) return "empty";
  const keys = new Set([...Object.keys(state.targets), ...Object.keys(state.owners)]);
  for (const key of keys) if (state.targets[key] !== state.owners[key]?.member) return "rebalancing";
  return "stable";
}

function sameOwners(a: Record<PartitionKey, Owner>, b: Record<PartitionKey, Owner>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k]?.member === b[k]?.member && a[k]?.epoch === b[k]?.epoch);
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
