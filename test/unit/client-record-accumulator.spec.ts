import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ProduceRecordSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import {
  RecordAccumulator,
  type AccumulatedRecord,
  type AccumulatorLimits,
  type PartitionQueue,
} from "../../src/client/record-accumulator.js";

const LIMITS: AccumulatorLimits = {
  lingerMs: 5,
  maxBatchMessages: 500,
  maxBatchBytes: 1024 * 1024,
  maxRequestBytes: 4 * 1024 * 1024,
  maxInFlightMessages: 4096,
  maxInFlightPerPartition: 1000,
  maxInFlightRequestsPerBroker: 5,
  retryBackoffMs: 50,
  maxRetryBackoffMs: 2_000,
};

function record(enqueuedAt: number, bytes = 10, deadline = 120_000): AccumulatedRecord {
  return {
    messageId: 0n,
    wire: create(ProduceRecordSchema, { payload: new Uint8Array(bytes) }),
    bytes,
    enqueuedAt,
    deadline,
    attempts: 0,
    state: "unassigned",
  };
}

/** `count` partitions of topic t, partition p led by broker `b${p % brokers}`. */
function setUp(count: number, brokers: number, limits: Partial<AccumulatorLimits> = {}) {
  const acc = new RecordAccumulator<AccumulatedRecord>({ ...LIMITS, ...limits });
  const queues = Array.from({ length: count }, (_, p) => RecordAccumulator.queue<AccumulatedRecord>("t", p));
  const leaders = new Map<number, string>(queues.map((q) => [q.partition, `b${q.partition % brokers}`]));
  const leaderOf = (_topic: string, partition: number) => leaders.get(partition);
  return { acc, queues, leaders, leaderOf };
}

const ids = (records: readonly AccumulatedRecord[]) => records.map((r) => Number(r.messageId));
const partitionsOf = (batches: readonly { queue: PartitionQueue<AccumulatedRecord> }[]) =>
  batches.map((b) => b.queue.partition);

describe("RecordAccumulator", () => {
  it("numbers each partition's records from 1 in append order", () => {
    const { acc, queues } = setUp(2, 1);
    const [q0, q1] = queues as [PartitionQueue<AccumulatedRecord>, PartitionQueue<AccumulatedRecord>];
    const a = record(0);
    const b = record(0);
    const c = record(0);
    acc.append(q0, a);
    acc.append(q1, b);
    acc.append(q0, c);
    assert.deepEqual([a.messageId, b.messageId, c.messageId], [1n, 1n, 2n]);
    assert.equal(a.wire.messageId, 1n);
    assert.equal(c.state, "queued");
  });

  it("lingers a partial batch, then sends one request per broker carrying every partition it leads", () => {
    const { acc, queues, leaderOf } = setUp(6, 2);
    for (const q of queues) acc.append(q, record(100));
    const early = acc.drain(102, leaderOf, false);
    assert.equal(early.requests.length, 0);
    assert.equal(early.wakeAt, 105);
    const due = acc.drain(105, leaderOf, false);
    assert.deepEqual(
      due.requests.map((r) => [r.address, partitionsOf(r.batches)]),
      [
        ["b0", [0, 2, 4]],
        ["b1", [1, 3, 5]],
      ],
    );
    assert.equal(acc.inflight, 6);
    for (const q of queues) assert.equal(q.queue.length, 0);
  });

  it("a broker with one partition due drains its lingering partitions too; other brokers wait", () => {
    const { acc, queues, leaderOf } = setUp(4, 2);
    acc.append(queues[0] as PartitionQueue<AccumulatedRecord>, record(100));
    acc.append(queues[2] as PartitionQueue<AccumulatedRecord>, record(104));
    acc.append(queues[1] as PartitionQueue<AccumulatedRecord>, record(104));
    const d = acc.drain(105, leaderOf, false);
    assert.deepEqual(
      d.requests.map((r) => [r.address, partitionsOf(r.batches)]),
      [["b0", [0, 2]]],
    );
    assert.equal(d.wakeAt, 109);
  });

  it("sends at once when a batch is full or when urgent (flush, close)", () => {
    const { acc, queues, leaderOf } = setUp(2, 2, { maxBatchMessages: 3 });
    const [q0, q1] = queues as [PartitionQueue<AccumulatedRecord>, PartitionQueue<AccumulatedRecord>];
    for (let i = 0; i < 4; i++) acc.append(q0, record(100));
    acc.append(q1, record(100));
    const full = acc.drain(100, leaderOf, false);
    // Partition 0 is full: its broker sends everything it has, in two requests (one batch per partition each).
    assert.deepEqual(
      full.requests.map((r) => r.batches.map((b) => ids(b.records))),
      [[[1, 2, 3]], [[4]]],
    );
    const urgent = acc.drain(100, leaderOf, true);
    assert.deepEqual(
      urgent.requests.map((r) => [r.address, partitionsOf(r.batches)]),
      [["b1", [1]]],
    );
  });

  it("bounds a request's bytes; a single larger batch goes alone", () => {
    const { acc, queues, leaderOf } = setUp(3, 1, { maxRequestBytes: 100 });
    acc.append(queues[0] as PartitionQueue<AccumulatedRecord>, record(0, 60));
    acc.append(queues[1] as PartitionQueue<AccumulatedRecord>, record(0, 30));
    acc.append(queues[2] as PartitionQueue<AccumulatedRecord>, record(0, 500));
    const d = acc.drain(10, leaderOf, false);
    assert.deepEqual(
      d.requests.map((r) => partitionsOf(r.batches)),
      [[0, 1], [2]],
    );
  });

  it("keeps the global and per-partition windows; an answer frees room", () => {
    const { acc, queues, leaderOf } = setUp(2, 1, { maxInFlightMessages: 3, maxInFlightPerPartition: 2 });
    const [q0, q1] = queues as [PartitionQueue<AccumulatedRecord>, PartitionQueue<AccumulatedRecord>];
    for (let i = 0; i < 3; i++) acc.append(q0, record(0));
    for (let i = 0; i < 3; i++) acc.append(q1, record(0));
    const first = acc.drain(10, leaderOf, false);
    const batches = first.requests.flatMap((r) => r.batches);
    assert.deepEqual(
      batches.map((b) => [b.queue.partition, ids(b.records)]),
      [
        [0, [1, 2]],
        [1, [1]],
      ],
    );
    assert.equal(acc.inflight, 3);
    assert.equal(acc.drain(10, leaderOf, false).requests.length, 0, "windows full: nothing more");
    acc.release(batches[0] as (typeof batches)[number]);
    const next = acc.drain(10, leaderOf, false).requests.flatMap((r) => r.batches);
    assert.deepEqual(
      next.map((b) => [b.queue.partition, ids(b.records)]),
      [
        [0, [3]],
        [1, [2]],
      ],
    );
  });

  it("after a failure, sends nothing of the partition until its requests settled, then the failed records first, after a backoff", () => {
    const { acc, queues, leaderOf } = setUp(1, 1, { maxBatchMessages: 2 });
    const q = queues[0] as PartitionQueue<AccumulatedRecord>;
    for (let i = 0; i < 4; i++) acc.append(q, record(0));
    const [a, b] = acc.drain(10, leaderOf, false).requests.flatMap((r) => r.batches);
    assert.ok(a && b);
    acc.append(q, record(10));
    // The first request failed; the second is still in flight.
    acc.release(a);
    const retry = acc.retryLater(q, a.records, 20);
    assert.deepEqual(retry, { retried: 2, expired: [] });
    assert.equal(acc.drain(20, leaderOf, true).requests.length, 0, "waits for the request in flight");
    acc.release(b);
    for (const r of b.records) r.state = "settled";
    const backoff = acc.drain(30, leaderOf, true);
    assert.equal(backoff.requests.length, 0);
    assert.ok(backoff.wakeAt !== undefined && backoff.wakeAt > 30);
    const resent = acc.drain(backoff.wakeAt, leaderOf, false).requests.flatMap((r) => r.batches);
    assert.deepEqual(
      resent.map((x) => ids(x.records)),
      [[1, 2], [5]],
    );
    assert.deepEqual(
      resent[0]?.records.map((r) => r.attempts),
      [2, 2],
    );
  });

  it("fails records past their deadline instead of retrying them, and reports expired queued ones", () => {
    const { acc, queues, leaderOf } = setUp(1, 1);
    const q = queues[0] as PartitionQueue<AccumulatedRecord>;
    const old = record(0, 10, 50);
    acc.append(q, old);
    acc.append(q, record(0, 10, 500));
    const [batch] = acc.drain(10, leaderOf, false).requests.flatMap((r) => r.batches);
    assert.ok(batch);
    acc.release(batch);
    const { retried, expired } = acc.retryLater(q, batch.records, 100);
    assert.equal(retried, 1);
    assert.deepEqual(expired, [old]);
    acc.append(q, record(0, 10, 150));
    assert.equal(acc.expired([q], 200).length, 1);
  });

  it("asks for metadata when a partition has no leader, and waits for it", () => {
    const { acc, queues, leaders, leaderOf } = setUp(2, 1);
    const [q0, q1] = queues as [PartitionQueue<AccumulatedRecord>, PartitionQueue<AccumulatedRecord>];
    leaders.set(0, "");
    acc.append(q0, record(0));
    acc.append(q1, record(0));
    const d = acc.drain(10, leaderOf, false);
    assert.deepEqual([...d.refresh], ["t"]);
    assert.equal(q0.waitingForMetadata, true);
    assert.deepEqual(
      d.requests.map((r) => partitionsOf(r.batches)),
      [[1]],
    );
    leaders.set(0, "b0");
    assert.equal(acc.drain(20, leaderOf, false).requests.length, 0, "still waiting for the answer");
    q0.waitingForMetadata = false;
    acc.wake(q0);
    const later = acc.drain(q0.retryAt, leaderOf, false);
    assert.deepEqual(
      later.requests.map((r) => partitionsOf(r.batches)),
      [[0]],
    );
  });

  it("skips records settled while queued (withdrawn, expired)", () => {
    const { acc, queues, leaderOf } = setUp(1, 1);
    const q = queues[0] as PartitionQueue<AccumulatedRecord>;
    const gone = record(0);
    acc.append(q, gone);
    acc.append(q, record(0));
    gone.state = "settled";
    const d = acc.drain(10, leaderOf, false).requests.flatMap((r) => r.batches);
    assert.deepEqual(
      d.map((b) => ids(b.records)),
      [[2]],
    );
  });

  it("bounds requests in flight per broker: what queues meanwhile goes out together in the next request", () => {
    const { acc, queues, leaderOf } = setUp(6, 2, { maxInFlightRequestsPerBroker: 1 });
    const [q0, q1, q2] = queues as [
      PartitionQueue<AccumulatedRecord>,
      PartitionQueue<AccumulatedRecord>,
      PartitionQueue<AccumulatedRecord>,
    ];
    acc.append(q0, record(0));
    const first = acc.drain(10, leaderOf, false);
    assert.deepEqual(
      first.requests.map((r) => [r.address, partitionsOf(r.batches)]),
      [["b0", [0]]],
    );
    assert.equal(acc.requestsInFlight("b0"), 1);
    for (const q of queues) acc.append(q, record(10));
    const meanwhile = acc.drain(20, leaderOf, false);
    assert.deepEqual(
      meanwhile.requests.map((r) => [r.address, partitionsOf(r.batches)]),
      [["b1", [1, 3, 5]]],
      "b0's window is full; b1's is not",
    );
    assert.equal(meanwhile.wakeAt, undefined, "no timer: b0's answer drains again");
    acc.append(q2, record(20));
    acc.complete(first.requests[0] as (typeof first.requests)[number]);
    assert.equal(acc.requestsInFlight("b0"), 0);
    const next = acc.drain(20, leaderOf, false).requests;
    assert.deepEqual(
      next.map((r) => [r.address, r.batches.map((b) => [b.queue.partition, ids(b.records)])]),
      [
        [
          "b0",
          [
            [0, [2]],
            [2, [1, 2]],
            [4, [1]],
          ],
        ],
      ],
    );
    assert.equal(q1.inflightRecords, 1);
  });

  it("splits one partition's records over as many requests as the window allows, in message id order", () => {
    const { acc, queues, leaderOf } = setUp(1, 1, { maxBatchMessages: 2, maxInFlightRequestsPerBroker: 2 });
    const q = queues[0] as PartitionQueue<AccumulatedRecord>;
    for (let i = 0; i < 7; i++) acc.append(q, record(0));
    const [a, b, ...none] = acc.drain(10, leaderOf, false).requests;
    assert.ok(a && b);
    assert.equal(none.length, 0);
    assert.deepEqual(
      [a, b].map((r) => r.batches.map((x) => ids(x.records))),
      [[[1, 2]], [[3, 4]]],
    );
    assert.deepEqual(ids(q.queue), [5, 6, 7], "the batch that found no room is back at the head");
    assert.equal(q.queuedBytes, 30);
    acc.complete(a);
    const c = acc.drain(10, leaderOf, false).requests;
    assert.deepEqual(
      c.map((r) => r.batches.map((x) => ids(x.records))),
      [[[5, 6]]],
    );
  });

  it("a full window of failing requests does not hold the retries back: they go first once those settled", () => {
    const { acc, queues, leaderOf } = setUp(2, 1, { maxBatchMessages: 2, maxInFlightRequestsPerBroker: 2 });
    const [q0, q1] = queues as [PartitionQueue<AccumulatedRecord>, PartitionQueue<AccumulatedRecord>];
    for (let i = 0; i < 6; i++) acc.append(q0, record(0));
    const [a, b] = acc.drain(10, leaderOf, false).requests;
    assert.ok(a && b);
    // Both requests fail, one after the other; newer records keep coming meanwhile.
    acc.complete(a);
    acc.retryLater(
      q0,
      a.batches.flatMap((x) => x.records),
      20,
    );
    acc.append(q1, record(20));
    const during = acc.drain(30, leaderOf, false).requests;
    assert.deepEqual(
      during.map((r) => partitionsOf(r.batches)),
      [[1]],
      "q0 waits for its request in flight; the free slot serves q1",
    );
    acc.complete(b);
    acc.complete(during[0] as (typeof during)[number]);
    acc.retryLater(
      q0,
      b.batches.flatMap((x) => x.records),
      40,
    );
    const backoff = acc.drain(40, leaderOf, false);
    assert.ok(backoff.wakeAt !== undefined);
    const resent = acc.drain(backoff.wakeAt, leaderOf, false).requests;
    assert.deepEqual(
      resent.map((r) => r.batches.map((x) => ids(x.records))),
      [[[1, 2]], [[3, 4]]],
      "the failed records first, in message id order, within the window",
    );
    acc.complete(resent[0] as (typeof resent)[number]);
    assert.deepEqual(
      acc.drain(backoff.wakeAt, leaderOf, false).requests.map((r) => r.batches.map((x) => ids(x.records))),
      [[[5, 6]]],
    );
  });
});
