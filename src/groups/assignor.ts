import { partitionKey, type MemberRecord, type PartitionKey } from "./model.js";

/** Partitions of a topic, or undefined while it does not exist (its partitions join when it is created). */
export type PartitionCounts = (topic: string) => number | undefined;

/**
 * The balanced, sticky assignor (pure): where each partition of the group's subscribed topics should
 * be. A partition keeps its previous target while that member lives and subscribes to the topic;
 * unplaced partitions go to the least-loaded subscriber (ties: fewest partitions of that topic, then
 * member id). Then, while a member can pass load to one with at least two fewer partitions, the most
 * loaded such member passes one along the shortest chain of hand-offs (A gives B a partition of a topic
 * B subscribes to, B gives C one, …; with the same subscriptions always a direct move) to the least
 * loaded member it reaches at that distance. So loads differ by at most one wherever subscriptions
 * allow, and a membership change moves only what balance requires: a departed member's partitions, or
 * a newcomer's fair share. A hand-off gives a partition of the topic the giver has most of compared
 * with the receiver (so each member keeps a spread of the topics), the one the giver got last. The
 * answer depends only on the inputs, not on the order of `members`.
 */
export function assignTargets(
  members: readonly MemberRecord[],
  partitionCounts: PartitionCounts,
  previous: Readonly<Record<PartitionKey, string>>,
): Record<PartitionKey, string> {
  // Members and topics by index, both sorted: every loop below runs in that order.
  const ids = [...new Set(members.map((m) => m.memberId))].sort(compare);
  const memberIndex = new Map(ids.map((id, i) => [id, i]));
  const topicSet = new Set<string>();
  for (const m of members) for (const t of m.topics) topicSet.add(t);
  const topics = [...topicSet].sort(compare);
  const topicIndex = new Map(topics.map((t, j) => [t, j]));
  const N = ids.length;
  const T = topics.length;
  /** Topic indexes a member subscribes to, and the subscribers of each topic (member indexes, sorted). */
  const topicsOf: number[][] = ids.map(() => []);
  const subscribes = new Uint8Array(N * T);
  for (const m of members) {
    const i = memberIndex.get(m.memberId) as number;
    for (const t of m.topics) subscribes[i * T + (topicIndex.get(t) as number)] = 1;
  }
  const subscribersOf: number[][] = topics.map(() => []);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < T; j++) {
      if (subscribes[i * T + j] === 1) {
        topicsOf[i]?.push(j);
        subscribersOf[j]?.push(i);
      }
    }
  }

  const load = new Int32Array(N);
  /** Partitions of topic j a member i is given (a stack: the last given is handed off first), at i*T+j. */
  const held = new Map<number, number[]>();
  const count = (i: number, j: number) => held.get(i * T + j)?.length ?? 0;
  const give = (i: number, j: number, partition: number) => {
    const stack = held.get(i * T + j);
    if (stack === undefined) held.set(i * T + j, [partition]);
    else stack.push(partition);
    load[i] = (load[i] as number) + 1;
  };

  // Sticky: a partition stays with its previous target while that member lives and subscribes.
  const partitionsOf = topics.map((t) => Math.max(0, Math.floor(partitionCounts(t) ?? 0)));
  const unplaced: number[][] = topics.map(() => []);
  for (let j = 0; j < T; j++) {
    for (let p = 0; p < (partitionsOf[j] as number); p++) {
      const before = memberIndex.get(previous[partitionKey(topics[j] as string, p)] as string);
      if (before !== undefined && subscribes[before * T + j] === 1) give(before, j, p);
      else unplaced[j]?.push(p);
    }
  }

  // The rest: to the least-loaded subscriber; ties: fewest partitions of that topic, then member id.
  for (let j = 0; j < T; j++) {
    const partitions = unplaced[j] as number[];
    if (partitions.length === 0) continue;
    const lighter = (a: number, b: number) =>
      load[a] !== load[b]
        ? (load[a] as number) < (load[b] as number)
        : count(a, j) !== count(b, j)
          ? count(a, j) < count(b, j)
          : a < b;
    const heap = new MinHeap(lighter);
    for (const i of subscribersOf[j] as number[]) heap.push(i);
    for (const p of partitions) {
      const i = heap.pop() as number;
      give(i, j, p);
      heap.push(i);
    }
  }

  // Balance. Each chain takes one partition's worth of load from a member with L to one with at most
  // L - 2 (the members in between give one and get one), so the sum of squared loads falls by at least
  // two each time: this ends, and when it does no member can pass load to one with two fewer.
  for (;;) {
    let minLoad = Infinity;
    for (let i = 0; i < N; i++) minLoad = Math.min(minLoad, load[i] as number);
    const sources: number[] = [];
    for (let i = 0; i < N; i++) if ((load[i] as number) >= minLoad + 2) sources.push(i);
    sources.sort((a, b) => (load[b] as number) - (load[a] as number) || a - b);
    // One search per round, shared by the sources tried in turn: whatever an earlier source reaches
    // has no member below its load - 1, so a later (no more loaded) source finds nothing through it.
    const parent = new Int32Array(N).fill(-1);
    const expanded = new Uint8Array(T);
    let chain: number[] | undefined;
    for (const source of sources) {
      if (parent[source] !== -1) continue;
      parent[source] = source;
      const limit = (load[source] as number) - 2;
      let frontier = [source];
      while (chain === undefined && frontier.length > 0) {
        const next: number[] = [];
        for (const from of frontier) {
          for (const j of topicsOf[from] as number[]) {
            if (expanded[j] === 1 || count(from, j) === 0) continue;
            expanded[j] = 1; // every subscriber of j is reached now, at this distance
            for (const to of subscribersOf[j] as number[]) {
              if (parent[to] !== -1) continue;
              parent[to] = from;
              next.push(to);
            }
          }
        }
        let end = -1;
        for (const i of next) {
          if (
            (load[i] as number) <= limit &&
            (end === -1 || (load[i] as number) < (load[end] as number) || (load[i] === load[end] && i < end))
          )
            end = i;
        }
        if (end !== -1) {
          chain = [end];
          while (chain[0] !== source) chain.unshift(parent[chain[0] as number] as number);
        }
        frontier = next;
      }
      if (chain !== undefined) break;
    }
    if (chain === undefined) break;
    for (let k = 1; k < chain.length; k++) handOff(chain[k - 1] as number, chain[k] as number);
  }

  /** One hand-off: the topic `from` has most of compared with `to` (then the first), its last-given partition. */
  function handOff(from: number, to: number) {
    let best = -1;
    let bestSurplus = -Infinity;
    for (const j of topicsOf[to] as number[]) {
      const have = count(from, j);
      if (have === 0) continue;
      const surplus = have - count(to, j);
      if (surplus > bestSurplus) [best, bestSurplus] = [j, surplus];
    }
    const partition = (held.get(from * T + best) as number[]).pop() as number;
    load[from] = (load[from] as number) - 1;
    give(to, best, partition);
  }

  const ownerOf = partitionsOf.map((n) => new Int32Array(n));
  for (const [slot, partitions] of held) {
    const owners = ownerOf[slot % T] as Int32Array;
    for (const p of partitions) owners[p] = Math.floor(slot / T);
  }
  const targets: Record<PartitionKey, string> = {};
  for (let j = 0; j < T; j++) {
    if ((subscribersOf[j] as number[]).length === 0) continue;
    const owners = ownerOf[j] as Int32Array;
    for (let p = 0; p < owners.length; p++)
      targets[partitionKey(topics[j] as string, p)] = ids[owners[p] as number] as string;
  }
  return targets;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A binary heap of member indexes; `before(a, b)` is read when an entry is pushed or sifted. */
class MinHeap {
  readonly #items: number[] = [];
  constructor(private readonly before: (a: number, b: number) => boolean) {}

  push(item: number): void {
    const items = this.#items;
    items.push(item);
    for (let k = items.length - 1; k > 0;) {
      const up = (k - 1) >> 1;
      if (!this.before(items[k] as number, items[up] as number)) break;
      [items[k], items[up]] = [items[up] as number, items[k] as number];
      k = up;
    }
  }

  pop(): number | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let k = 0; ;) {
      const l = 2 * k + 1;
      const r = l + 1;
      let m = k;
      if (l < items.length && this.before(items[l] as number, items[m] as number)) m = l;
      if (r < items.length && this.before(items[r] as number, items[m] as number)) m = r;
      if (m === k) break;
      [items[k], items[m]] = [items[m] as number, items[k] as number];
      k = m;
    }
    return top;
  }
}
