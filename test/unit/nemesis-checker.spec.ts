import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkHistory,
  violations,
  type History,
  type ReadRecord,
  type SendRecord,
} from "../chaos/nemesis/checker.js";

/** The nemesis checker (test/chaos/nemesis/checker.ts) finds each anomaly in a hand-made history. */

function send(producer: string, seq: number, extra: Partial<SendRecord> = {}): SendRecord {
  return {
    producer,
    idempotent: true,
    key: "k0",
    value: `${producer}/k0/${seq}`,
    seq,
    invokedAt: seq * 10,
    attempts: 1,
    outcome: "ok",
    completedAt: seq * 10 + 5,
    partition: 0,
    offset: seq,
    ...extra,
  };
}

function read(value: string, offset: number, partition = 0): ReadRecord {
  return { member: "m1", partition, offset, value, at: 0 };
}

function history(sends: SendRecord[], reads: ReadRecord[], extra: Partial<History> = {}): History {
  return { partitions: 1, sends, reads, leaders: [], faults: [], ...extra };
}

describe("nemesis checker", () => {
  it("passes a history where every acknowledged send was read once, in order", () => {
    const sends = [send("p", 0), send("p", 1), send("p", 2)];
    const result = checkHistory(
      history(
        sends,
        sends.map((s) => read(s.value, s.offset ?? 0)),
      ),
    );
    assert.deepEqual(violations(result), []);
    assert.equal(result.acknowledged, 3);
    assert.equal(result.read, 3);
  });

  it("finds an acknowledged send never read, and one whose offset holds another value", () => {
    const sends = [send("p", 0), send("p", 1), send("p", 2)];
    // #1 never read; #2 acknowledged at offset 2, but offset 2 holds a retried copy of an unacknowledged send.
    const other = send("q", 9, { outcome: "fail", offset: undefined });
    const result = checkHistory(
      history([...sends, other], [read(sends[0]!.value, 0), read(other.value, 2), read(sends[2]!.value, 3)]),
    );
    assert.equal(result.lost.length, 2);
    assert.match(result.lost[0]!, /p\/k0\/1 .*never read/);
    assert.match(result.lost[1]!, /p\/k0\/2 .*holds q\/k0\/9/);
    assert.equal(result.indeterminate, 1);
  });

  it("classifies duplicates: a non-idempotent retry's copies vs any other", () => {
    const retried = send("plain", 0, { idempotent: false, attempts: 2 });
    const idem = send("idem", 1);
    const result = checkHistory(
      history(
        [retried, idem],
        [read(retried.value, 0), read(retried.value, 5), read(idem.value, 1), read(idem.value, 6)],
      ),
    );
    assert.equal(result.duplicates.retry, 1);
    assert.equal(result.duplicates.other, 1);
    assert.equal(violations(result).length, 1);
  });

  it("tells a redelivery (same offset again) from a duplicate, and flags an offset read with two values", () => {
    const a = send("p", 0);
    const redelivered = checkHistory(history([a], [read(a.value, 0), read(a.value, 0)]));
    assert.equal(redelivered.redeliveries, 1);
    assert.deepEqual(violations(redelivered), []);
    const conflict = checkHistory(history([a], [read(a.value, 0), read("p/k0/phantom", 0)]));
    assert.equal(conflict.offsetConflicts.length, 1);
    assert.deepEqual(conflict.phantoms, ["p/k0/phantom"]);
  });

  it("finds a key's later send stored before its earlier one", () => {
    const sends = [send("p", 0, { offset: 4 }), send("p", 1, { offset: 3 })];
    const result = checkHistory(history(sends, [read(sends[0]!.value, 4), read(sends[1]!.value, 3)]));
    assert.equal(result.orderViolations.length, 1);
  });

  it("finds two leaders named for one partition epoch", () => {
    const leaders = [
      { sentinel: "s1", partition: 0, epoch: "3", leader: "b1", at: 0 },
      { sentinel: "s2", partition: 0, epoch: "3", leader: "b2", at: 0 },
      { sentinel: "s2", partition: 0, epoch: "4", leader: "b2", at: 0 },
    ];
    const result = checkHistory(history([], [], { leaders }));
    assert.deepEqual(result.leaderConflicts, ["partition 0 epoch 3: b1, b2"]);
  });

  it("measures recovery from a heal to an acknowledgement of a later send on every partition", () => {
    const sends = [
      send("p", 0, { invokedAt: 100, completedAt: 150, partition: 0 }),
      send("p", 1, { invokedAt: 120, completedAt: 400, partition: 1 }),
    ];
    const faults = [
      { kind: "broker-kill", target: "b1", startAt: 0, healAt: 90 },
      { kind: "broker-kill", target: "b1", startAt: 0, healAt: 110 },
      { kind: "etcd-pause", target: "etcd", startAt: 0 },
    ];
    const result = checkHistory({ partitions: 2, sends, reads: [], leaders: [], faults });
    // Partition 1 acknowledged at 400, 310 ms after the first heal; nothing on partition 0 after 110.
    assert.deepEqual(result.recoveryMs, [310, undefined, undefined]);
  });
});
