import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SLICE_MS, forEachYielding } from "../../src/common/yielding.js";

function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe("forEachYielding", () => {
  it("visits every item once with its index, at most `concurrency` at once", async () => {
    const items = Array.from({ length: 40 }, (_, i) => `item ${i}`);
    const seen: [string, number][] = [];
    let running = 0;
    let most = 0;
    await forEachYielding(items, 4, async (item, index) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 1));
      seen.push([item, index]);
      running--;
    });
    assert.deepEqual(
      seen.sort((a, b) => a[1] - b[1]),
      items.map((item, i) => [item, i]),
    );
    assert.equal(most, 4);
  });

  it("yields to the event loop once a slice is used, and not before", async () => {
    const otherWorkAt: number[] = [];
    let visited = 0;
    const done = forEachYielding([0, 1, 2, 3], 1, (item) => {
      visited++;
      // Items 0 and 2 each use a whole slice: other work gets a turn after each of them.
      if (item === 0 || item === 2) busy(SLICE_MS + 1);
      return Promise.resolve();
    });
    const tick = () => {
      otherWorkAt.push(visited);
      if (otherWorkAt.length < 3) setImmediate(tick);
    };
    setImmediate(tick);
    await done;
    // Other work ran after item 0 (one visited), then after item 2 (three visited), then at the end.
    assert.deepEqual(otherWorkAt.slice(0, 2), [1, 3]);
  });
});
