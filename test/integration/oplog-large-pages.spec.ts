import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { encodeOperation, type Operation } from "../../src/fsm/operations.js";
import { OplogStore } from "../../src/oplog/oplog-store.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel } from "../helpers/in-process-sentinel.js";

const OPS = 1_200;
const PARTITIONS = 70;

/** An operation of ~6 KB: 1,000 of them make a range response above the etcd client's 4 MiB limit. */
function bigOperation(id: number): Operation {
  const replicas = ["broker-with-a-long-identifier-a", "broker-with-a-long-identifier-b"];
  return {
    id,
    type: "generateTopicReplicas",
    timestamp: 1_700_000_000_000 + id,
    leaderId: "filler",
    data: {
      topic: `big-${id}`,
      replicaCount: 2,
      partitions: Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, replicas })),
    },
  };
}

describe(`replaying ${OPS} operations whose first 1,000 exceed 4 MiB`, () => {
  let etcd: TestEtcd;
  const keys = createKeyspace("/goulette");

  before(async () => {
    etcd = await startEtcd();
    const client = etcd.client();
    let total = 0;
    for (let first = 1; first <= OPS; first += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, OPS - first + 1) }, (_, i) => {
          const text = encodeOperation(bigOperation(first + i));
          total += text.length;
          return client.put(keys.operation(first + i)).value(text);
        }),
      );
    }
    await client.put(keys.head).value(String(OPS));
    assert.ok((total / OPS) * 1000 > 4 * 1024 * 1024, `1,000 operations hold ${total / OPS} B × 1,000`);
  });
  after(async () => {
    await etcd?.stop();
  });

  it("OplogStore.readAfter pages by bytes and reads every operation once", async () => {
    const store = new OplogStore(etcd.client(), keys);
    const ids: number[] = [];
    let pages = 0;
    for await (const page of store.readAfter(0)) {
      pages++;
      for (const op of page) ids.push(op.id);
    }
    assert.deepEqual(
      ids,
      Array.from({ length: OPS }, (_, i) => i + 1),
    );
    assert.ok(pages > 2, `read in ${pages} pages`);
  });

  it("a page refused as too big is read again with a smaller limit", async () => {
    const store = new OplogStore(etcd.client(), keys);
    // A byte target far above the limit makes the first page ask for 1,000 operations (~6 MiB).
    let count = 0;
    for await (const page of store.readAfter(0, { targetBytes: 1024 * 1024 * 1024 })) count += page.length;
    assert.equal(count, OPS);
  });

  it("a sentinel recovers from it", async () => {
    const s = await startInProcessSentinel(etcd, "big-pages");
    try {
      // Once it leads it may have appended one operation more (configureRing: the filled log has none).
      const applied = s.sentinel.plane.state.appliedId;
      assert.ok(applied === OPS || (applied === OPS + 1 && s.sentinel.plane.state.ringConfig), `${applied}`);
      assert.equal(s.sentinel.plane.state.topicCount(), OPS);
    } finally {
      await s.stop();
    }
  });
});
