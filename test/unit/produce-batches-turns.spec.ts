import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Acks, BatchesRequestSchema, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { produceBatches } from "../../src/broker/produce-batches.js";
import { SLICE_MS } from "../../src/common/yielding.js";
import { createBrokerMetrics, createRegistry } from "../../src/observability/metrics.js";

/** Keeps the event loop busy for `ms` (stands for the work of starting a batch: its append). */
function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe("produceBatches: a request of many partition batches", () => {
  it("lets other work run once starting its batches used a slice, and answers all in request order", async () => {
    const count = 50;
    const req = create(BatchesRequestSchema, {
      requestId: 9n,
      acks: Acks.LEADER,
      batches: Array.from({ length: count }, (_, i) => ({
        topic: `t${i}`,
        partition: i % 3,
        records: [{ messageId: 1n, payload: new Uint8Array([i]) }],
      })),
    });
    // Whether work queued on the event loop (an acknowledgement arriving, say) had run when each batch
    // started. The broker holds none of these partitions, so each batch is answered at once; the first
    // one's start uses a whole slice.
    let otherWorkRan = false;
    const startedAfterOtherWork: boolean[] = [];
    const answer = produceBatches(
      {
        lookup: () => {
          if (startedAfterOtherWork.length === 0) busy(SLICE_MS + 1);
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
    assert.equal(startedAfterOtherWork[0], false);
    assert.ok(
      startedAfterOtherWork.slice(1).every((ran) => ran),
      "the batches after a used slice start once other work had its turn",
    );
    assert.equal(res.requestId, 9n);
    assert.deepEqual(
      res.responses.map((r) => `${r.topic}#${r.partition}`),
      req.batches.map((b) => `${b.topic}#${b.partition}`),
      "one answer per batch, in request order",
    );
    for (const r of res.responses) assert.equal(r.acks[0]?.error, ProduceError.UNKNOWN_PARTITION);
  });
});
