import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { WeightedHistogram } from "../../src/observability/weighted-histogram.js";
import { addBuckets, bucketQuantile, histogramBuckets } from "../../bench/lib/histogram.js";

/** A histogram as a broker exports it, scraped as text. */
function exported(observations: Array<[stage: string, seconds: number, count: number]>): Promise<string> {
  const registry = new Registry();
  const h = new WeightedHistogram({
    name: "stage_seconds",
    help: "test",
    labelNames: ["stage"],
    buckets: [0.01, 0.1, 1],
    registers: [registry],
  });
  for (const [stage, seconds, count] of observations) h.observe({ stage }, seconds, count);
  return registry.metrics();
}

describe("bench histograms read from a scrape", () => {
  it("takes one label set's buckets, and quantiles of what was observed between two readings", async () => {
    const before = histogramBuckets(await exported([["a", 0.05, 10]]), "stage_seconds", { stage: "a" });
    const text = await exported([
      ["a", 0.05, 10],
      ["a", 0.005, 90],
      ["a", 0.5, 10],
      ["b", 5, 1000],
    ]);
    const after = histogramBuckets(text, "stage_seconds", { stage: "a" });
    assert.deepEqual(
      [...after],
      [
        [0.01, 90],
        [0.1, 100],
        [1, 110],
        [Infinity, 110],
      ],
    );
    // Between the readings: 90 at ≤ 10 ms, 10 at ≤ 1 s (stage b is another series).
    assert.equal(bucketQuantile(before, after, 0.5), 0.01 * (50 / 90));
    assert.ok(Math.abs((bucketQuantile(before, after, 0.99) as number) - (0.1 + 0.9 * 0.9)) < 1e-9);
    assert.equal(bucketQuantile(after, after, 0.5), undefined, "no observations between equal readings");
    const both = histogramBuckets(text, "stage_seconds");
    assert.equal(both.get(Infinity), 1110);
    assert.equal(bucketQuantile(new Map(), both, 0.99), 1, "past the largest bound: that bound");
    const sum = new Map(after);
    addBuckets(sum, after);
    assert.equal(sum.get(0.01), 180);
  });
});
