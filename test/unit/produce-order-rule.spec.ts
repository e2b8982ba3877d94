import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ProduceError, ProduceRecordSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import { ProducerTable } from "../../src/broker/producer-table.js";
import { decideAck } from "../../src/client/ack-decisions.js";
import {
  RecordAccumulator,
  previousMessageId,
  type AccumulatedRecord,
} from "../../src/client/record-accumulator.js";
import { OutOfOrderError } from "../../src/errors.js";

const table = () => new ProducerTable({ windowSize: 4, maxProducers: 8 });

describe("the order rule of idempotent producers (ProducerTable.follows)", () => {
  it("lets a record follow nothing (0), an unknown producer, or a stored predecessor", () => {
    const t = table();
    assert.equal(t.follows("p", 0n), "yes");
    // Unknown here (older than the rebuilt window, or forgotten): today's behaviour, no refusal.
    assert.equal(t.follows("p", 7n), "yes");
    t.record("p", 1n, 0);
    t.record("p", 2n, 1);
    assert.equal(t.follows("p", 2n), "yes");
    // A message after the predecessor is stored (the predecessor was given up on, or is stored too).
    assert.equal(t.follows("p", 1n), "yes");
  });

  it("refuses a record whose predecessor is not stored, and waits while an append of the producer is in flight", () => {
    const t = table();
    t.record("p", 1n, 0);
    assert.equal(t.follows("p", 2n), "refuse");
    t.reserve("p", 3n);
    assert.equal(t.follows("p", 2n), "wait");
    // The predecessor's own append in flight: appends land in call order, so the record follows it.
    assert.equal(t.follows("p", 3n), "yes");
    t.release("p", 3n);
    assert.equal(t.follows("p", 2n), "refuse");
    t.reserve("p", 2n);
    t.record("p", 2n, 1);
    assert.equal(t.follows("p", 2n), "yes");
    assert.equal(t.follows("p", 3n), "refuse");
  });

  it("keeps the stored end across evictions and per producer", () => {
    const t = table();
    for (let id = 1n; id <= 10n; id++) t.record("p", id, Number(id));
    assert.equal(t.follows("p", 10n), "yes");
    assert.equal(t.follows("p", 11n), "refuse");
    assert.equal(t.follows("q", 11n), "yes");
    t.clear();
    assert.equal(t.follows("p", 11n), "yes");
  });
});

function record(): AccumulatedRecord {
  return {
    messageId: 0n,
    wire: create(ProduceRecordSchema, { payload: new Uint8Array(1) }),
    bytes: 1,
    enqueuedAt: 0,
    deadline: 60_000,
    attempts: 0,
    state: "unassigned",
  };
}

describe("the message a batch follows (previousMessageId)", () => {
  it("is the record queued just before, 0 for a partition's first", () => {
    const acc = new RecordAccumulator<AccumulatedRecord>({
      lingerMs: 0,
      maxBatchMessages: 10,
      maxBatchBytes: 1024,
      maxRequestBytes: 4096,
      maxInFlightMessages: 100,
      maxInFlightPerPartition: 100,
      maxInFlightRequestsPerBroker: 5,
      retryBackoffMs: 10,
      maxRetryBackoffMs: 100,
    });
    const q = RecordAccumulator.queue<AccumulatedRecord>("t", 0);
    const [a, b, c, d, e] = [record(), record(), record(), record(), record()];
    for (const r of [a, b, c, d, e]) acc.append(q, r);
    assert.equal(previousMessageId(a), 0n);
    assert.equal(previousMessageId(b), 1n);
    // b in flight: c follows it whatever happens to b later, unless b is given up on.
    b.state = "inflight";
    assert.equal(previousMessageId(c), 2n);
    // b and c given up on (timed out, rejected, withdrawn): d follows a, so they hold nothing up.
    b.state = "settled";
    c.state = "settled";
    assert.equal(previousMessageId(d), 1n);
    // a acknowledged: still the one d follows; e follows d while d is being sent.
    a.state = "settled";
    a.acknowledged = true;
    assert.equal(previousMessageId(d), 1n);
    assert.equal(previousMessageId(e), 4n);
    d.state = "settled";
    assert.equal(previousMessageId(e), 1n);
    // A record appended after everything before it was given up on follows nothing.
    a.acknowledged = false;
    const f = record();
    e.state = "settled";
    acc.append(q, f);
    assert.equal(previousMessageId(f), 0n);
  });

  it("OUT_OF_ORDER is retried on the same leader", () => {
    const decision = decideAck("t", 0, 5n, {
      $typeName: "goulette.v1.MessageAck",
      messageId: 5n,
      offset: -1n,
      error: ProduceError.OUT_OF_ORDER,
      errorMessage: "follows message 4",
      duplicate: false,
      leaderId: "",
      leaderAddress: "",
    });
    assert.equal(decision.kind, "retry");
    assert.ok(decision.kind === "retry" && decision.error instanceof OutOfOrderError);
    assert.ok(decision.kind === "retry" && decision.error.retryable && !decision.refresh);
  });
});
