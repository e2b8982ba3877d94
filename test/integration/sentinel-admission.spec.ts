import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Producer, type ClientEvent } from "../../src/index.js";
import { OverloadedError, RETRY_AFTER_HEADER } from "../../src/errors.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";

/**
 * Admission of topic creations on the sentinel leader: with room for 2 pending creations, a burst is
 * partly refused with RESOURCE_EXHAUSTED and a retry hint, and producers that create their topics
 * together still deliver every message (they retry the refusals with backoff).
 */
describe("topic creation admission", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      sentinels: 1,
      brokers: 1,
      sentinelArgs: ["--max-pending-topic-creations", "2"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  const rejected = async () =>
    (await readMetric(
      cluster.sentinelUrls[0] as string,
      "goulette_sentinel_topic_creations_rejected_total",
    )) ?? 0;

  it("refuses creations beyond the bound with a retryable ResourceExhausted and a hint", async () => {
    const before = await rejected();
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        cluster.sentinel().getBrokers({ topic: `raw-${i}`, partitions: 1, replicaCount: 1 }),
      ),
    );
    const refusals = results.flatMap((r) => (r.status === "rejected" ? [ConnectError.from(r.reason)] : []));
    assert.ok(refusals.length > 0, "30 creations at once exceed room for 2");
    assert.ok(
      results.some((r) => r.status === "fulfilled"),
      "the admitted ones are created",
    );
    for (const err of refusals) {
      assert.equal(err.code, Code.ResourceExhausted, err.message);
      assert.match(err.rawMessage, /already creating \d+ topics .*--max-pending-topic-creations 2.*retry/);
      assert.equal(err.metadata.get(RETRY_AFTER_HEADER), "250");
    }
    assert.equal((await rejected()) - before, refusals.length);
    // Nothing half-done: a refused topic does not exist, and asking again creates it.
    const refusedTopic = `raw-${results.findIndex((r) => r.status === "rejected")}`;
    const status = await cluster.sentinel().listTopics({ prefix: refusedTopic });
    assert.equal(status.topics.filter((t) => t.topic === refusedTopic).length, 0);
    const created = await cluster
      .sentinel()
      .getBrokers({ topic: refusedTopic, partitions: 1, replicaCount: 1 });
    assert.equal(created.partitions.length, 1);
  });

  it("producers creating their topics together all deliver, retrying the refusals", async () => {
    const before = await rejected();
    const events: ClientEvent[] = [];
    const acks = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const producer = new Producer({
          sentinels: cluster.sentinelUrls,
          topic: `produced-${i}`,
          createTopic: { partitions: 1, replicas: 1 },
          onEvent: (event) => events.push(event),
        });
        try {
          return await producer.send({ value: `message ${i}` });
        } finally {
          await producer.close();
        }
      }),
    );
    assert.equal(acks.length, 40);
    assert.ok(acks.every((ack) => ack.offset === 0));
    const refused = events.filter(
      (e) => e.type === "error" && e.what === "GetBrokers" && e.error instanceof OverloadedError,
    );
    assert.ok(refused.length > 0, "some creations were refused and retried");
    assert.ok((await rejected()) - before >= refused.length);
    assert.ok(!events.some((e) => e.type === "sentinel-failover"), "a refusal is not a reason to fail over");
  });
});
