import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Histogram, Registry } from "prom-client";
import { WeightedHistogram } from "../../src/observability/weighted-histogram.js";

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** The exposition text of one registry, default labels and all, each line's labels sorted by name. */
async function exposition(registry: Registry): Promise<string> {
  const text = (await registry.metrics()).trim();
  return text.replace(/\{([^}]*)\}/g, (_, labels: string) => `{${labels.split(",").sort().join(",")}}`);
}

describe("WeightedHistogram", () => {
  it("exports what prom-client's Histogram exports for the same observations, one call per weight", async () => {
    const weightedRegistry = new Registry();
    const plainRegistry = new Registry();
    for (const r of [weightedRegistry, plainRegistry]) r.setDefaultLabels({ component: "broker" });
    const config = { name: "h_seconds", help: "latency", labelNames: ["acks"] as const, buckets: BUCKETS };
    const weighted = new WeightedHistogram({ ...config, registers: [weightedRegistry] });
    const plain = new Histogram({ ...config, labelNames: ["acks"], registers: [plainRegistry] });
    const observations: [string, number, number][] = [
      ["all", 0.005, 3],
      ["all", 0.001, 2], // on a bound: counted in that bucket (le is "less or equal")
      ["leader", 0.5, 4],
      ["leader", 7, 1], // above every bound: only +Inf
      ["all", 0.05, 1],
    ];
    for (const [acks, value, count] of observations) {
      weighted.observe({ acks }, value, count);
      for (let i = 0; i < count; i++) plain.observe({ acks }, value);
    }
    assert.equal(await exposition(weightedRegistry), await exposition(plainRegistry));
  });

  it("reports through getMetricsAsJSON with the registry's default labels, and resets", async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ broker: "b0" });
    const h = new WeightedHistogram({
      name: "x_seconds",
      help: "x",
      labelNames: ["stream"],
      buckets: BUCKETS,
      registers: [registry],
    });
    h.observe({ stream: "fetch" }, 0.02, 10);
    const [json] = await registry.getMetricsAsJSON();
    assert.equal(json?.type, "histogram");
    const count = json?.values.find((v) => (v as { metricName?: string }).metricName === "x_seconds_count");
    assert.deepEqual(count?.labels, { stream: "fetch", broker: "b0" });
    assert.equal(count?.value, 10);
    const sum = json?.values.find((v) => (v as { metricName?: string }).metricName === "x_seconds_sum");
    assert.ok(Math.abs((sum?.value ?? 0) - 0.2) < 1e-12);
    registry.resetMetrics();
    assert.deepEqual((await registry.getMetricsAsJSON())[0]?.values, []);
  });

  it("ignores empty weights and non-finite values, and refuses unsorted buckets", () => {
    const registry = new Registry();
    const h = new WeightedHistogram({
      name: "y",
      help: "y",
      labelNames: ["acks"],
      buckets: BUCKETS,
      registers: [registry],
    });
    h.observe({ acks: "all" }, 0.1, 0);
    h.observe({ acks: "all" }, Number.NaN, 5);
    return h.get().then((data) => {
      assert.deepEqual(data.values, []);
      assert.throws(
        () =>
          new WeightedHistogram({ name: "z", help: "z", labelNames: [], buckets: [1, 0.5], registers: [] }),
        /ascending/,
      );
    });
  });
});
