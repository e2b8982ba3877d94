/**
 * Which replica leads each partition of a topic, so that within the topic the number of partitions each
 * broker leads differs by at most one wherever the replica sets allow it. The ring decides the replica
 * sets (minimal movement when brokers come and go); this only chooses, inside each set, who leads. Pure
 * and deterministic: the result is part of an operation the leader proposes, and replays as recorded.
 *
 * The method is the classic one for balanced bipartite assignment: start from the current leaders and,
 * while some broker leads at least two more partitions than another broker it can hand leadership to
 * (directly, or along a chain of partitions each passing leadership to the next broker), move leadership
 * along the shortest such chain. Each move lowers the sum of squared counts, so it ends; when it ends no
 * chain exists, which is exactly "balanced as far as the replica sets allow". Starting from the current
 * leaders keeps the number of leadership moves small.
 */

/** One partition's candidates: its replicas in ring order, and who leads it now (if anyone). */
export interface LeaderCandidates {
  /** Replica set in its current order; replicas[0] leads unless `leader` says otherwise. */
  replicas: readonly string[];
  /** Brokers that may lead this partition (default: every replica). */
  eligible?: readonly string[];
}

/**
 * The leader of each partition (same order as `partitions`), balanced within the topic. A partition's
 * first eligible replica leads initially, so with `replicas[0]` eligible the choice starts from today's
 * leader. A partition without an eligible replica keeps `replicas[0]` and takes no part in balancing.
 */
export function balanceLeaders(partitions: readonly LeaderCandidates[]): string[] {
  const candidates = partitions.map((p) => {
    const eligible = new Set(p.eligible ?? p.replicas);
    return p.replicas.filter((id) => eligible.has(id));
  });
  const leaders = partitions.map((p, i) => candidates[i]![0] ?? p.replicas[0] ?? "");
  const count = new Map<string, number>();
  const ledBy = new Map<string, number[]>();
  candidates.forEach((ids, i) => {
    for (const id of ids) if (!count.has(id)) count.set(id, 0);
    if (ids.length === 0) return;
    const leader = leaders[i]!;
    count.set(leader, (count.get(leader) ?? 0) + 1);
    ledBy.set(leader, [...(ledBy.get(leader) ?? []), i]);
  });
  const brokers = [...count.keys()].sort();

  // Shortest chain of leadership hand-overs from `from` to a broker leading ≤ count(from) − 2 partitions.
  const findChain = (from: string): Array<{ partition: number; to: string }> | undefined => {
    const limit = count.get(from)! - 2;
    const cameFrom = new Map<string, { broker: string; partition: number }>();
    const queue = [from];
    const seen = new Set([from]);
    for (let head = 0; head < queue.length; head++) {
      const broker = queue[head]!;
      for (const partition of ledBy.get(broker) ?? []) {
        for (const to of candidates[partition]!) {
          if (seen.has(to)) continue;
          seen.add(to);
          cameFrom.set(to, { broker, partition });
          if (count.get(to)! <= limit) {
            const chain: Array<{ partition: number; to: string }> = [];
            for (let at = to; at !== from;) {
              const step = cameFrom.get(at)!;
              chain.unshift({ partition: step.partition, to: at });
              at = step.broker;
            }
            return chain;
          }
          queue.push(to);
        }
      }
    }
    return undefined;
  };

  for (;;) {
    const byLoad = [...brokers].sort((a, b) => count.get(b)! - count.get(a)! || (a < b ? -1 : 1));
    let moved = false;
    for (const from of byLoad) {
      if (count.get(from)! < 2) break;
      const chain = findChain(from);
      if (!chain) continue;
      for (const { partition, to } of chain) {
        const previous = leaders[partition]!;
        ledBy.set(
          previous,
          ledBy.get(previous)!.filter((i) => i !== partition),
        );
        ledBy.set(
          to,
          [...(ledBy.get(to) ?? []), partition].sort((a, b) => a - b),
        );
        leaders[partition] = to;
      }
      count.set(from, count.get(from)! - 1);
      count.set(chain[chain.length - 1]!.to, count.get(chain[chain.length - 1]!.to)! + 1);
      moved = true;
      break;
    }
    if (!moved) return leaders;
  }
}

/** `replicas` with `leader` first and the others in their order (a reordering moves no data). */
export function leaderFirst(replicas: readonly string[], leader: string): string[] {
  return replicas.includes(leader) ? [leader, ...replicas.filter((id) => id !== leader)] : [...replicas];
}

/** How many partitions each broker leads, from replica lists whose first entry leads. */
export function leaderCounts(
  partitions: ReadonlyArray<{ replicas: readonly string[] }>,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const p of partitions) {
    for (const id of p.replicas) if (!counts.has(id)) counts.set(id, 0);
    const leader = p.replicas[0];
    if (leader !== undefined) counts.set(leader, counts.get(leader)! + 1);
  }
  return counts;
}
