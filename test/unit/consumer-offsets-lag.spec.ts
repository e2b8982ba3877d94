import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { consumerGroupLag, type GroupLag, type LedPartitionOffsets } from "../../src/broker/consumer-lag.js";
import { consumerLag } from "../../src/common/consumer-lag.js";
import { createBrokerMetrics } from "../../src/observability/metrics.js";

const led = (
  topic: string,
  highWatermark: number,
  committed: Record<string, number>,
  logStartOffset = 0,
): LedPartitionOffsets => ({
  topic,
  highWatermark,
  logStartOffset,
  committed: Object.entries(committed),
});

const total = (series: GroupLag[]) => series.reduce((sum, s) => sum + s.lag, 0);
const sorted = (series: GroupLag[]) =>
  [...series].sort((a, b) => (a.topic + "\0" + a.group < b.topic + "\0" + b.group ? -1 : 1));

describe("consumer lag per group and topic", () => {
  it("sums (high watermark - committed offset) over the led partitions of a topic, never below 0", () => {
    const series = consumerGroupLag(
      [
        led("orders", 100, { billing: 40, audit: 100 }),
        led("orders", 50, { billing: 45 }),
        // A commit may be past the high watermark (up to the log end): no negative lag.
        led("payments", 10, { billing: 12 }),
        led("idle", 10, {}),
      ],
      200,
    );
    assert.deepEqual(sorted(series), [
      { group: "audit", topic: "orders", lag: 0 },
      { group: "billing", topic: "orders", lag: 65 },
      { group: "billing", topic: "payments", lag: 0 },
    ]);
  });

  it("a commit below the log start counts from it: deleted records are no lag", () => {
    const series = consumerGroupLag([led("orders", 100, { billing: 10, audit: 80 }, 60)], 200);
    assert.deepEqual(sorted(series), [
      { group: "audit", topic: "orders", lag: 20 },
      { group: "billing", topic: "orders", lag: 40 },
    ]);
    // The one formula the broker's gauges and the Admin's describeGroup share.
    assert.equal(consumerLag(10, 60, 100), 40);
    assert.equal(consumerLag(80, 60, 100), 20);
    assert.equal(consumerLag(120, 60, 100), 0, "a commit past the high watermark (a new leader) is no lag");
  });

  it("beyond the bound: the largest lags keep their series, the rest is summed into _other per topic", () => {
    const partitions = [
      led("orders", 100, { a: 0, b: 10, c: 20, d: 90, e: 95 }),
      led("payments", 100, { a: 50, b: 99 }),
    ];
    const series = consumerGroupLag(partitions, 4);
    assert.equal(series.length, 4);
    // Lags: orders a 100, b 90, c 80, d 10, e 5; payments a 50, b 1. Two kept + one _other per topic.
    assert.deepEqual(sorted(series), [
      { group: "_other", topic: "orders", lag: 80 + 10 + 5 },
      { group: "a", topic: "orders", lag: 100 },
      { group: "b", topic: "orders", lag: 90 },
      { group: "_other", topic: "payments", lag: 50 + 1 },
    ]);
    assert.equal(total(series), total(consumerGroupLag(partitions, 200)), "nothing is lost");
  });

  it("never more series than the bound, whatever the shape; the sum is always the total lag", () => {
    const partitions: LedPartitionOffsets[] = [];
    for (let t = 0; t < 12; t++) {
      const committed: Record<string, number> = {};
      for (let g = 0; g < 30; g++) committed[`g${g}`] = (t * 7 + g * 13) % 100;
      partitions.push(led(`t${t}`, 100, committed));
    }
    const all = consumerGroupLag(partitions, 100_000);
    assert.equal(all.length, 360);
    for (const bound of [1, 2, 5, 11, 12, 13, 50, 359, 360]) {
      const series = consumerGroupLag(partitions, bound);
      assert.ok(series.length <= bound, `bound ${bound}: ${series.length} series`);
      assert.equal(total(series), total(all), `bound ${bound}: the sum is kept`);
      const keys = new Set(series.map((s) => `${s.group}/${s.topic}`));
      assert.equal(keys.size, series.length, `bound ${bound}: no series twice`);
      const kept = series.filter((s) => s.group !== "_other");
      const smallestKept = Math.min(...kept.map((s) => s.lag));
      const dropped = all.filter((s) => !keys.has(`${s.group}/${s.topic}`));
      assert.ok(
        dropped.every((s) => s.lag <= smallestKept),
        `bound ${bound}: the largest lags are kept`,
      );
    }
    // More topics than series: everything beyond the largest goes to one {_other, _other}.
    const tight = consumerGroupLag(partitions, 5);
    assert.equal(tight.filter((s) => s.group === "_other").length, 1);
    assert.deepEqual(
      tight.find((s) => s.group === "_other"),
      { group: "_other", topic: "_other", lag: total(all) - total(tight.slice(0, 4)) },
    );
  });

  it("the gauge is computed at scrape time from the source, and old series disappear", async () => {
    const registry = new Registry();
    let current: GroupLag[] = [{ group: "billing", topic: "orders", lag: 42 }];
    createBrokerMetrics(registry, { consumerGroupLag: () => current });
    const scrape = async () =>
      (await registry.metrics())
        .split("\n")
        .filter((l) => l.startsWith("goulette_broker_consumer_group_lag_messages{"));
    assert.deepEqual(await scrape(), [
      'goulette_broker_consumer_group_lag_messages{group="billing",topic="orders"} 42',
    ]);
    current = [
      { group: "audit", topic: "orders", lag: 1 },
      { group: "_other", topic: "orders", lag: 2 },
      { group: "_other", topic: "orders", lag: 3 },
    ];
    assert.deepEqual(await scrape(), [
      'goulette_broker_consumer_group_lag_messages{group="audit",topic="orders"} 1',
      'goulette_broker_consumer_group_lag_messages{group="_other",topic="orders"} 5',
    ]);
  });
});
