import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay } from "../../src/common/backoff.js";

describe("backoffDelay", () => {
  const at = (value: number) => () => value;

  it("doubles the ceiling per attempt from the base up to the maximum", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 30].map((attempt) =>
      backoffDelay(attempt, 200, 5_000, { jitter: "none" }),
    );
    assert.deepEqual(ceilings, [200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
  });

  it("equal jitter (the default) waits between half the ceiling and the ceiling", () => {
    assert.equal(backoffDelay(3, 200, 5_000, { random: at(0) }), 400);
    assert.equal(backoffDelay(3, 200, 5_000, { random: at(0.999999) }), 800);
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(2, 50, 1_000);
      assert.ok(delay >= 50 && delay <= 100, `attempt 2 waited ${delay} ms`);
    }
  });

  it("full jitter waits anywhere up to the ceiling, never less than the floor", () => {
    assert.equal(backoffDelay(1, 100, 5_000, { jitter: "full", random: at(0) }), 0);
    assert.equal(backoffDelay(1, 100, 5_000, { jitter: "full", random: at(0), floorMs: 250 }), 250);
    assert.equal(backoffDelay(4, 100, 5_000, { jitter: "full", random: at(0.5) }), 400);
  });

  it("stays finite for huge attempt counts", () => {
    assert.equal(backoffDelay(10_000, 50, 1_000, { jitter: "none" }), 1_000);
    assert.equal(backoffDelay(0, 50, 1_000, { jitter: "none" }), 50, "attempt 0 counts as the first");
  });
});
