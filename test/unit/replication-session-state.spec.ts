import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ReplicateResponseSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import {
  NewsQueue,
  ResponseBudget,
  acknowledge,
  needsAcknowledgement,
  newEntry,
  newsOf,
  sending,
  type LeaderPartitionView,
  type SessionEntry,
} from "../../src/broker/replication-session-state.js";

function entry(overrides: Partial<SessionEntry> = {}): SessionEntry {
  return {
    ...newEntry({
      key: "t#0",
      topic: "t",
      partition: 0,
      stream: 1,
      generation: 3,
      fetchOffset: 10,
      logStart: undefined,
      truncateTo: undefined,
    }),
    ...overrides,
  };
}

/** A leader whose follower has everything (log end 10, high watermark 10, offsets version 2 sent). */
function view(overrides: Partial<LeaderPartitionView> = {}): LeaderPartitionView {
  return {
    generation: 3,
    hasFollower: true,
    logStartOffset: 0,
    logEndOffset: 10,
    shippableEnd: 10,
    highWatermark: 10,
    offsetsVersion: 2,
    ...overrides,
  };
}

/** An entry whose last answer brought the follower up to date with view(). */
function upToDate(): SessionEntry {
  return entry({ sentVersion: 2, sentHighWatermark: 10, sentLogStart: 0 });
}

describe("replication session: news", () => {
  it("a new entry has news (the first answer carries the offset table and high watermark)", () => {
    assert.deepEqual(newsOf(entry(), view(), "b2"), { kind: "data" });
  });

  it("an up-to-date follower has no news until records, offsets or the high watermark move", () => {
    assert.deepEqual(newsOf(upToDate(), view(), "b2"), { kind: "none" });
    assert.deepEqual(newsOf(upToDate(), view({ shippableEnd: 11, logEndOffset: 11 }), "b2"), {
      kind: "data",
    });
    assert.deepEqual(newsOf(upToDate(), view({ offsetsVersion: 3 }), "b2"), { kind: "data" });
    assert.deepEqual(newsOf(upToDate(), view({ highWatermark: 9 }), "b2"), { kind: "data" });
  });

  it("a moved log start is news (DeleteRecords or retention on the leader), flagged and acknowledged", () => {
    const e = upToDate();
    assert.deepEqual(newsOf(e, view({ logStartOffset: 6 }), "b2"), { kind: "data" });
    const moved = create(ReplicateResponseSchema, { highWatermark: 10n, logStartOffset: 6n });
    assert.equal(sending(e, moved, 2), true, "the answer is flagged");
    assert.equal(e.awaitingAck, true, "the follower confirms the deletion");
    assert.equal(e.sentLogStart, 6);
    assert.deepEqual(newsOf(e, view({ logStartOffset: 6 }), "b2"), { kind: "none" });

    // The next answer (a new high watermark) carries the same log start: not flagged, not acknowledged.
    acknowledge(e, 10, 2, 6, { logStartOffset: 6, logEndOffset: 10 });
    assert.equal(e.logStart, 6, "the follower's reported log start is kept");
    const next = create(ReplicateResponseSchema, { highWatermark: 11n, logStartOffset: 6n });
    assert.equal(sending(e, next, 2), false);
    assert.equal(e.awaitingAck, false);
    assert.equal(e.sentHighWatermark, 11);
  });

  it("records written but not shippable yet (fsync always) are no news", () => {
    assert.deepEqual(newsOf(upToDate(), view({ logEndOffset: 15, shippableEnd: 10 }), "b2"), {
      kind: "none",
    });
  });

  it("a pending cut comes before records, a lost leadership before everything", () => {
    const cutting = entry({ truncateTo: 4 });
    assert.deepEqual(newsOf(cutting, view({ shippableEnd: 20 }), "b2"), { kind: "truncate", to: 4 });
    const lost = newsOf(cutting, view({ generation: 4 }), "b2");
    assert.equal(lost.kind, "depart");
    assert.equal(lost.kind === "depart" && lost.departure.code, Code.Unavailable);
    const notLeading = newsOf(upToDate(), view({ generation: undefined }), "b2");
    assert.equal(notLeading.kind, "depart");
    const removed = newsOf(upToDate(), view({ hasFollower: false }), "b2");
    assert.equal(removed.kind === "depart" && removed.departure.message, "b2 is no longer a replica of t#0");
  });
});

describe("replication session: acknowledgements", () => {
  it("moves the fetch position and clears the wait for the acknowledgement", () => {
    const e = entry({ awaitingAck: true, sentVersion: 2 });
    assert.equal(acknowledge(e, 15, 2, 0, { logStartOffset: 0, logEndOffset: 20 }), undefined);
    assert.equal(e.fetchOffset, 15);
    assert.equal(e.awaitingAck, false);
    assert.equal(e.ackedVersion, 2);
  });

  it("an offsets version counts only once an answer went out in this session", () => {
    const e = entry();
    acknowledge(e, 10, 7, undefined, { logStartOffset: 0, logEndOffset: 10 });
    assert.equal(e.ackedVersion, undefined);
  });

  it("a follower behind the log start is told to restart there", () => {
    const e = entry({ awaitingAck: true });
    acknowledge(e, 3, 0, 0, { logStartOffset: 8, logEndOffset: 20 });
    assert.equal(e.truncateTo, 8);
    assert.deepEqual(newsOf(e, view({ logStartOffset: 8, logEndOffset: 20 }), "b2"), {
      kind: "truncate",
      to: 8,
    });
  });

  it("a position past the leader's log end takes the partition out of the session", () => {
    const e = entry({ awaitingAck: true });
    const departure = acknowledge(e, 21, 0, 0, { logStartOffset: 0, logEndOffset: 20 });
    assert.equal(departure?.code, Code.FailedPrecondition);
    assert.match(departure?.message ?? "", /past the log end 20 of t#0/);
    assert.equal(e.fetchOffset, 10, "nothing changed");
  });
});

describe("replication session: which answers are acknowledged", () => {
  it("records, offsets, a cut, a moved log start and the first answer (whole offset table) are; a new high watermark alone is not", () => {
    const answer = (init: Parameters<typeof create<typeof ReplicateResponseSchema>>[1]) =>
      create(ReplicateResponseSchema, { highWatermark: 5n, ...init });
    assert.equal(needsAcknowledgement(answer({})), false);
    assert.equal(needsAcknowledgement(answer({ records: [{ offset: 5n }] })), true);
    assert.equal(needsAcknowledgement(answer({ offsets: [{ consumerGroup: "g", offset: 1n }] })), true);
    assert.equal(needsAcknowledgement(answer({ offsetsSnapshot: true })), true);
    assert.equal(needsAcknowledgement(answer({ truncateTo: 0n })), true);
    assert.equal(needsAcknowledgement(answer({ logStartOffset: 7n })), false);
    assert.equal(needsAcknowledgement(answer({ logStartOffset: 7n, logStartMoved: true })), true);
  });
});

describe("replication session: budget and fairness", () => {
  it("gives each partition at most its share of what is left, then nothing", () => {
    const budget = new ResponseBudget(2_500, 1_000);
    assert.equal(budget.next(), 1_000);
    budget.spend(1_000);
    assert.equal(budget.next(), 1_000);
    budget.spend(1_000);
    assert.equal(budget.next(), 500);
    budget.spend(700); // one record past the limit is allowed
    assert.equal(budget.next(), undefined);
  });

  it("serves partitions in the order their news came; a served one goes behind the others", () => {
    const queue = new NewsQueue();
    for (const key of ["a", "b", "c"]) queue.add(key);
    queue.add("a"); // news again while queued: keeps its place
    assert.deepEqual(queue.snapshot(), ["a", "b", "c"]);
    // An answer served a and b (budget spent before c), then a has news again.
    queue.delete("a");
    queue.delete("b");
    queue.add("a");
    assert.deepEqual(queue.snapshot(), ["c", "a"]);
  });

  it("no partition waits behind a busy one for more than one turn", () => {
    // 10 partitions, always all busy; each answer can serve 3. Over 10 answers every partition is
    // served exactly 3 times.
    const queue = new NewsQueue();
    const served = new Map<string, number>();
    const keys = Array.from({ length: 10 }, (_, i) => `p${i}`);
    for (const key of keys) queue.add(key);
    for (let answer = 0; answer < 10; answer++) {
      const taken = queue.snapshot().slice(0, 3);
      for (const key of taken) {
        queue.delete(key);
        served.set(key, (served.get(key) ?? 0) + 1);
      }
      for (const key of taken) queue.add(key); // acknowledged, busy again
    }
    assert.deepEqual(
      keys.map((k) => served.get(k)),
      keys.map(() => 3),
    );
  });
});
