import type { Metric, Registry } from "prom-client";

export interface WeightedHistogramConfiguration<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  /** Upper bounds, ascending; +Inf is implied. */
  buckets: readonly number[];
  registers: Registry[];
}

/** One exported sample, in the shape prom-client's registry formats. */
export interface HistogramSample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

interface Series {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}
/**
 * A Prometheus histogram that records n observations of one value in one call. The messages of one
 * produce request are acknowledged together and so share one latency: one weighted observation per
 * request instead of one prom-client `observe` (about 0.4 µs) per message on the produce path.
 * It registers like prom-client's own metrics: a registry only reads `name` and calls `get()` and
 * `reset()`.
 */
export class WeightedHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #labelNames: readonly T[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(config: WeightedHistogramConfiguration<T>) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames;
    this.#bounds = config.buckets;
    for (let i = 1; i < this.#bounds.length; i++) {
      if ((this.#bounds[i] as number) <= (this.#bounds[i - 1] as number)) {
        throw new Error(`${config.name}: buckets must be ascending`);
      }
    }
    // The registry's type admits prom-client's classes only; it uses nothing but the members above.
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** Records `count` observations of `value` (seconds), as `count` calls of a histogram's observe. */
  observe(labels: Record<T, string>, value: number, count = 1): void {
    if (!(count > 0) || !Number.isFinite(value)) return;
    const key = this.#labelNames.map((name) => labels[name]).join("\u0000");
    let series = this.#series.get(key);
    if (series === undefined) {
      const copy: Record<string, string> = {};
      for (const name of this.#labelNames) copy[name] = labels[name];
      series = {
        labels: copy,
        buckets: new Array<number>(this.#bounds.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      this.#series.set(key, series);
    }
    let i = 0;
    while (i < this.#bounds.length && value > (this.#bounds[i] as number)) i++;
    series.buckets[i] = (series.buckets[i] as number) + count;
    series.sum += value * count;
    series.count += count;
  }

  /** The exported samples: cumulative `_bucket` per bound and +Inf, `_sum` and `_count` per series. */
  async get(): Promise<{
    name: string;
    help: string;
    type: "histogram";
    aggregator: "sum";
    values: HistogramSample[];
  }> {
    const values: HistogramSample[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.#bounds.length; i++) {
        cumulative += series.buckets[i] as number;
        const le = i < this.#bounds.length ? (this.#bounds[i] as number) : "+Inf";
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...series.labels, le },
          value: cumulative,
        });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...series.labels }, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...series.labels }, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#series.clear();
  }
}
