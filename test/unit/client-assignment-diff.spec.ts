import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GenerationGate, diffAssignment, type RunningPartition } from "../../src/client/assignment-diff.js";

function running(...list: Array<[string, number, number, boolean?]>): Map<string, RunningPartition> {
  return new Map(
    list.map(([topic, partition, epoch, revoking]) => [
      `${topic}/${partition}`,
      { topic, partition, epoch, revoking: revoking ?? false },
    ]),
  );
}

describe("diffAssignment", () => {
  it("starts what is assigned and not run, revokes what is run and no longer assigned", () => {
    const diff = diffAssignment(running(["a", 0, 3], ["a", 1, 3], ["b", 0, 5]), [
      { topic: "a", partition: 1, epoch: 3 },
      { topic: "b", partition: 0, epoch: 5 },
      { topic: "b", partition: 2, epoch: 7 },
    ]);
    assert.deepEqual(diff.start, [{ topic: "b", partition: 2, epoch: 7 }]);
    assert.deepEqual(diff.revoke, [{ topic: "a", partition: 0 }]);
    assert.deepEqual(diff.replaced, []);
  });

  it("revokes everything for an empty assignment and starts everything from nothing", () => {
    assert.deepEqual(diffAssignment(running(["a", 0, 1], ["a", 1, 1]), []).revoke, [
      { topic: "a", partition: 0 },
      { topic: "a", partition: 1 },
    ]);
    const fresh = diffAssignment(new Map(), [
      { topic: "a", partition: 0, epoch: 2 },
      { topic: "a", partition: 0, epoch: 2 }, // listed twice: started once
    ]);
    assert.deepEqual(fresh.start, [{ topic: "a", partition: 0, epoch: 2 }]);
    assert.deepEqual(fresh.revoke, []);
  });

  it("leaves a partition being revoked alone, listed or not (it is released, then given back)", () => {
    const state = running(["a", 0, 4, true]);
    assert.deepEqual(diffAssignment(state, [{ topic: "a", partition: 0, epoch: 4 }]), {
      start: [],
      revoke: [],
      replaced: [],
    });
    assert.deepEqual(diffAssignment(state, []), { start: [], revoke: [], replaced: [] });
  });

  it("reports a partition run at another epoch than assigned: another session took this member's place", () => {
    const diff = diffAssignment(running(["a", 0, 4], ["a", 1, 4, true]), [
      { topic: "a", partition: 0, epoch: 9 },
      { topic: "a", partition: 1, epoch: 9 },
    ]);
    assert.deepEqual(diff.replaced, [
      { topic: "a", partition: 0, epoch: 9 },
      { topic: "a", partition: 1, epoch: 9 },
    ]);
    assert.deepEqual(diff.start, []);
  });
});

describe("GenerationGate", () => {
  it("applies assignments of the current member in generation order; equal generations pass", () => {
    const gate = new GenerationGate();
    assert.equal(gate.accept("m1", 1n), false, "no member id yet");
    gate.reset("m1");
    assert.equal(gate.accept("m1", 5n), true);
    assert.equal(gate.accept("m1", 4n), false, "an older answer that crossed a newer push");
    assert.equal(gate.accept("m1", 5n), true, "the same generation again (a heartbeat after a release)");
    assert.equal(gate.accept("m2", 9n), false, "another member id (a previous session)");
    assert.equal(gate.generation, 5n);
  });

  it("starts over for a new member id, even at a lower generation", () => {
    const gate = new GenerationGate();
    gate.reset("m1");
    assert.equal(gate.accept("m1", 40n), true);
    gate.reset("m2");
    assert.equal(gate.accept("m1", 41n), false, "the old member's pushes are ignored");
    assert.equal(gate.accept("m2", 3n), true, "a group recreated since counts from low generations again");
    gate.reset("");
    assert.equal(gate.accept("", 50n), false, "between sessions nothing applies");
  });
});
