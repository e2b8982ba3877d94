import type { Page } from "playwright-core";
import { Consumer, Producer } from "../../src/index.js";
import type { TestCluster } from "./cluster.js";
import { waitFor } from "./wait.js";

/** What the console specs and the screenshot script put in a cluster before looking at it. */
export interface ConsoleDemo {
  topic: string;
  /** Messages produced, per partition: value and key. */
  produced: { partition: number; offset: number; key: string; value: string }[];
  group: string;
}

/**
 * A topic with JSON orders spread by key over its partitions, and a consumer group that consumed and
 * committed some of them (then left, so the group has offsets and no live member).
 */
export async function seedConsoleDemo(
  cluster: TestCluster,
  topic = "orders",
  group = "billing",
): Promise<ConsoleDemo> {
  await cluster.createTopic(topic, { partitions: 4, replicas: 2 });
  const producer = new Producer({ sentinels: cluster.sentinelUrls, topic });
  const produced: ConsoleDemo["produced"] = [];
  try {
    for (let i = 0; i < 12; i++) {
      const key = `customer-${i % 5}`;
      const value = JSON.stringify({ order: 1000 + i, customer: key, total: (i * 7.5).toFixed(2) });
      const ack = await producer.send({ key, value, headers: { source: "seed" } });
      produced.push({ partition: ack.partition, offset: ack.offset, key, value });
    }
  } finally {
    await producer.close();
  }
  // Half of them consumed and committed by the group.
  const consumer = new Consumer({
    sentinels: cluster.sentinelUrls,
    topic,
    group,
    from: "earliest",
    autoCommitIntervalMs: 200,
  });
  let seen = 0;
  await consumer.run(async () => {
    if (++seen >= 6) await consumer.close();
  });
  return { topic, produced, group };
}

/** Opens a console route and waits until the page has loaded its data once. */
export async function openConsole(page: Page, sentinelUrl: string, route: string): Promise<void> {
  await page.goto(`${sentinelUrl}/ui/#/${route}`);
  await waitFor(async () => (await page.locator("main[data-loaded]").count()) > 0, {
    timeoutMs: 20_000,
    what: `console page ${route} to load`,
  });
}
