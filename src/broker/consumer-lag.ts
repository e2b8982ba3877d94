import { consumerLag } from "../common/consumer-lag.js";

/** Consumer lag of one group on one topic, summed over the partitions this broker leads. */
export interface GroupLag {
  group: string;
  topic: string;
  lag: number;
}

/** What the lag of a led partition is computed from. */
export interface LedPartitionOffsets {
  topic: string;
  highWatermark: number;
  /** Records below it are gone (retention, DeleteRecords): a group committed below reads from here. */
  logStartOffset: number;
  /** [group, committed offset] of every group that committed. */
  committed: Iterable<[string, number]>;
}

/** The label value that collects the series beyond the bound. */
export const OTHER = "_other";

/**
 * Σ (high watermark − committed offset) per (group, topic), at most `maxSeries` series; a commit below
 * the log start counts from the log start (the records below it will never be read). Beyond the
 * bound the largest lags keep their own series and the rest is summed into `group="_other"` per topic
 * (counted within the bound); when even the topics of the rest do not fit, into one
 * `{group="_other", topic="_other"}`. The sum over all series is always the broker's total lag.
 */
export function consumerGroupLag(partitions: Iterable<LedPartitionOffsets>, maxSeries: number): GroupLag[] {
  const byTopic = new Map<string, Map<string, number>>();
  for (const p of partitions) {
    let groups = byTopic.get(p.topic);
    for (const [group, committed] of p.committed) {
      if (groups === undefined) byTopic.set(p.topic, (groups = new Map()));
      groups.set(group, (groups.get(group) ?? 0) + consumerLag(committed, p.logStartOffset, p.highWatermark));
    }
  }
  const all: GroupLag[] = [];
  for (const [topic, groups] of byTopic) for (const [group, lag] of groups) all.push({ group, topic, lag });
  if (all.length <= maxSeries) return all;

  // Largest lags first (ties by name, so the choice is stable between scrapes).
  all.sort((a, b) => b.lag - a.lag || cmp(a.topic, b.topic) || cmp(a.group, b.group));
  // restTopics[k]: distinct topics among all[k..]; keep the longest head whose rest fits per topic.
  const restTopics = new Array<number>(all.length + 1).fill(0);
  const seen = new Set<string>();
  for (let i = all.length - 1; i >= 0; i--) {
    seen.add((all[i] as GroupLag).topic);
    restTopics[i] = seen.size;
  }
  let keep = Math.min(all.length, maxSeries) - 1;
  while (keep >= 0 && keep + (restTopics[keep] as number) > maxSeries) keep--;
  if (keep < 0) {
    // More topics than series: one series for everything beyond the largest maxSeries - 1.
    const head = all.slice(0, maxSeries - 1);
    const rest = all.slice(maxSeries - 1).reduce((sum, s) => sum + s.lag, 0);
    return [...head, { group: OTHER, topic: OTHER, lag: rest }];
  }
  const head = all.slice(0, keep);
  const other = new Map<string, number>();
  for (const s of all.slice(keep)) other.set(s.topic, (other.get(s.topic) ?? 0) + s.lag);
  return [...head, ...[...other].map(([topic, lag]) => ({ group: OTHER, topic, lag }))];
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
