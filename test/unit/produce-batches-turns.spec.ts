import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Acks, BatchesRequestSchema, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { BATCHES_PER_TURN, produceBatches } from "../../src/broker/produce-batches.js";
import { createBrokerMetrics, createRegistry } from "../../src/observability/metrics.js";

describe("produceBatches: a request of many partition batches", () => {
  it("starts its batches a turn of the event loop apart and answers all of them in request order", async () => {
    const count = BATCHES_PER_TURN * 4 + 7;
    const req = create(BatchesRequestSchema, {
      requestId: 9n,
      acks: Acks.LEADER,
      batches: Array.from({ length: count }, (_, i) => ({
        topic: `t${i}`,
        partition: i % 3,
        records: [{ messageId: 1n, payload: new Uint8Array([i & 0xff]) }],
      })),
    });
    // Whether work queued on the event loop (an acknowledgement arriving, say) had run when each
    // batch started: the broker holds none of these partitions, so each batch is answered at once.
    let otherWorkRan = false;
    const startedAfterOtherWork: boolean[] = [];
    const answer = produceBatches(
      {
        lookup: () => {
          startedAfterOtherWork.push(otherWorkRan);
          return undefined;
        },
        maxMessageBytes: 1024,
        writable: () => true,
        metrics: createBrokerMetrics(createRegistry()),
      },
      req,
    );
    setImmediate(() => (otherWorkRan = true));
    const res = await answer;

    assert.equal(startedAfterOtherWork.length, count);
    assert.ok(
      startedAfterOtherWork.slice(0, BATCHES_PER_TURN).every((ran) => !ran),
      "the first turn's batches start at once",
    );
    assert.equal(startedAfterOtherWork.at(-1), true, "later batches start after other work had its turn");
    assert.equal(res.requestId, 9n);
    assert.deepEqual(
      res.responses.map((r) => `${r.topic}#${r.partition}`),
      req.batches.map((b) => `${b.topic}#${b.partition}`),
      "one answer per batch, in request order",
    );
    for (const r of res.responses) assert.equal(r.acks[0]?.error, ProduceError.UNKNOWN_PARTITION);
  });
});
