/** Prometheus histograms read from a scrape: cumulative buckets, and quantiles between two readings. */

/** Cumulative bucket counts by upper bound (Infinity for +Inf). */
export type Buckets = Map<number, number>;

/**
 * The cumulative buckets of histogram `name` in the exposition text `text`, summed over the series whose
 * labels include `labels`.
 */
export function histogramBuckets(text: string, name: string, labels: Record<string, string> = {}): Buckets {
  const buckets: Buckets = new Map();
  const prefix = `${name}_bucket{`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const labelText = line.slice(prefix.length, line.indexOf("}"));
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
    const le = /(?:^|,)le="([^"]+)"/.exec(labelText)?.[1];
    if (le === undefined) continue;
    const bound = le === "+Inf" ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return buckets;
}

/** Adds `more` into `into` (bucket by bucket), for sums over several processes. */
export function addBuckets(into: Buckets, more: Buckets): void {
  for (const [bound, count] of more) into.set(bound, (into.get(bound) ?? 0) + count);
}

/**
 * The q-quantile (in the histogram's unit) of the observations between two readings of cumulative
 * buckets, found as Prometheus' histogram_quantile does: linear within the bucket it falls in.
 * Undefined without observations.
 */
export function bucketQuantile(before: Buckets, after: Buckets, q: number): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((bound) => (after.get(bound) ?? 0) - (before.get(bound) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    const count = counts[i] as number;
    if (count < rank) continue;
    const upper = bounds[i] as number;
    const lower = i === 0 ? 0 : (bounds[i - 1] as number);
    if (!Number.isFinite(upper)) return lower; // past the largest bound: the bound is all we know
    const below = i === 0 ? 0 : (counts[i - 1] as number);
    return lower + ((upper - lower) * (rank - below)) / Math.max(count - below, 1e-9);
  }
  return undefined;
}
