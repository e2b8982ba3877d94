import type { GroupState, Owner, PartitionKey } from "./model.js";

/**
 * A static member's new session (the same instance id, restarted within its session timeout): the new
 * member id takes the previous one's targets and partitions at a new generation, so the previous
 * process — if it still runs — can neither commit (its epochs are older) nor heartbeat (its member id
 * is gone). Pure.
 */
export function transferMember(current: GroupState, from: string, to: string): GroupState {
  const generation = current.generation + 1;
  const targets: Record<PartitionKey, string> = {};
  for (const [key, member] of Object.entries(current.targets)) targets[key] = member === from ? to : member;
  const owners: Record<PartitionKey, Owner> = {};
  for (const [key, owner] of Object.entries(current.owners)) {
    owners[key] = owner.member === from ? { member: to, epoch: generation } : owner;
  }
  return { generation, targets, owners };
}
