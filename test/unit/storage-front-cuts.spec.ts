import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { belowLogStartCut, retentionCut, type SegmentExtent } from "../../src/storage/front-cuts.js";

/** Segments of 100 bytes starting at offsets 0, 10, 20, …, their newest records at 1000, 2000, …. */
function segments(count: number): SegmentExtent[] {
  return Array.from({ length: count }, (_, i) => ({
    baseOffset: i * 10,
    sizeBytes: 100,
    maxTimestamp: (i + 1) * 1000,
  }));
}

describe("the cuts from a log's front", () => {
  it("retention by age: the oldest segments past the bound go, oldest first, never the active one", () => {
    assert.deepEqual(retentionCut(segments(4), 3_500, { retentionMs: 1_000 }), [
      { expired: true, oversize: false },
      { expired: true, oversize: false },
    ]);
    // Everything expired: the active segment stays all the same.
    assert.equal(retentionCut(segments(4), 100_000, { retentionMs: 1_000 }).length, 3);
    assert.deepEqual(retentionCut(segments(4), 1_500, { retentionMs: 1_000 }), []);
  });

  it("retention by size: the oldest go while the rest still holds the bound", () => {
    // 400 bytes, bound 150: drop until 200 are left (one more would leave 100 < 150).
    assert.deepEqual(retentionCut(segments(4), 0, { retentionBytes: 150 }), [
      { expired: false, oversize: true },
      { expired: false, oversize: true },
    ]);
    assert.deepEqual(retentionCut(segments(4), 0, { retentionBytes: 400 }), []);
    assert.deepEqual(retentionCut(segments(4), 0, {}), [], "no bound: nothing goes");
  });

  it("retention stops at the first segment that may stay, even when a younger one behind it could go", () => {
    const mixed = segments(4);
    (mixed[0] as SegmentExtent).maxTimestamp = 9_000; // the oldest segment holds a late timestamp
    assert.deepEqual(retentionCut(mixed, 5_000, { retentionMs: 1_000 }), []);
  });

  it("below a log start: the segments wholly below it, not the one it falls in, never the active one", () => {
    assert.equal(belowLogStartCut(segments(4), 0), 0);
    assert.equal(belowLogStartCut(segments(4), 9), 0);
    assert.equal(belowLogStartCut(segments(4), 10), 1, "the first segment ends where the log now starts");
    assert.equal(belowLogStartCut(segments(4), 25), 2);
    assert.equal(belowLogStartCut(segments(4), 1_000), 3, "the active segment stays");
    assert.equal(belowLogStartCut(segments(1), 1_000), 0);
  });
});
