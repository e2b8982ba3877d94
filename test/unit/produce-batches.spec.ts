import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Acks, BatchesRequestSchema, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { produceBatches, produceBatchesPerBatch } from "../../src/broker/produce-batches.js";
import { NotPartitionLeaderError } from "../../src/broker/errors.js";
import type { Partition } from "../../src/broker/partition.js";
import type { BatchesResponse } from "../../src/gen/goulette/v1/broker_pb.js";
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
  const metrics = createBrokerMetrics(createRegistry());

  it("starts every batch before anything else runs, however long starting takes, and answers in request order", async () => {
    // A producer's next request may carry the same partitions: its batches must not start before this
    // one's (the order check lets a producer a partition does not know yet through). So no turn of the
    // event loop between the starts, even when they use more than a slice.
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
        metrics,
      },
      req,
    );
    setImmediate(() => (otherWorkRan = true));
    const res = await answer;

    assert.deepEqual(startedAfterOtherWork, new Array<boolean>(count).fill(false));
    assert.equal(res.requestId, 9n);
    assert.equal(res.more, false, "one response: the request did not ask for answers per batch");
    assert.deepEqual(
      res.responses.map((r) => `${r.topic}#${r.partition}`),
      req.batches.map((b) => `${b.topic}#${b.partition}`),
      "one answer per batch, in request order",
    );
    for (const r of res.responses) assert.equal(r.acks[0]?.error, ProduceError.UNKNOWN_PARTITION);
  });

  it("answer_per_batch: batches finished in a turn are answered together at once, the rest in the last response", async () => {
    const req = create(BatchesRequestSchema, {
      requestId: 5n,
      acks: Acks.ALL,
      answerPerBatch: true,
      batches: ["fast-a", "slow", "fast-b"].map((topic) => ({
        topic,
        records: [{ messageId: 1n, payload: new Uint8Array([1]) }],
      })),
    });
    // "slow" waits for its leadership to be set up until the test decides; the others are not held here
    // and are answered at once.
    let leadershipFails: (err: unknown) => void = () => undefined;
    const slow = {
      leaderReady: () =>
        new Promise<number>((_, reject) => {
          leadershipFails = reject;
        }),
    };
    const emitted: BatchesResponse[] = [];
    let firstEmitted: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (firstEmitted = resolve));
    let lastCame = false;
    const last = produceBatchesPerBatch(
      {
        // Only leaderReady is reached before the test settles it (a stand-in for a partition being set up).
        lookup: (topic) => (topic === "slow" ? (slow as unknown as Partition) : undefined),
        maxMessageBytes: 1024,
        writable: () => true,
        metrics,
      },
      req,
      (res) => {
        emitted.push(res);
        firstEmitted();
      },
    ).then((res) => {
      lastCame = true;
      return res;
    });

    await first;
    assert.equal(emitted.length, 1);
    assert.equal(emitted[0]?.requestId, 5n);
    assert.equal(emitted[0]?.more, true);
    assert.deepEqual(
      emitted[0]?.responses.map((r) => r.topic),
      ["fast-a", "fast-b"],
      "the batches finished in one turn, in one response",
    );
    assert.equal(lastCame, false, "the request is not over while a batch waits");

    leadershipFails(new NotPartitionLeaderError("slow", 0, "b2", "127.0.0.1:1"));
    const final = await last;
    assert.equal(final.requestId, 5n);
    assert.equal(final.more, false);
    assert.deepEqual(
      final.responses.map((r) => [r.topic, r.acks[0]?.error, r.acks[0]?.leaderId]),
      [["slow", ProduceError.NOT_LEADER, "b2"]],
    );
    assert.equal(emitted.length, 1, "nothing answered twice");
  });
});
