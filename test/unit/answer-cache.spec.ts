import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AnswerCache } from "../../src/sentinel/answer-cache.js";

describe("AnswerCache", () => {
  it("returns a value only for the state version it was built at", () => {
    const cache = new AnswerCache<string>(10);
    cache.set("orders", 7, "answer@7");
    assert.equal(cache.get("orders", 7), "answer@7");
    assert.equal(cache.get("orders", 8), undefined, "a newer applied operation invalidates it");
    assert.equal(cache.get("orders", 6), undefined, "an older state (recovery) does not see it either");
    assert.equal(cache.get("payments", 7), undefined);
  });

  it("asks the caller whether inputs outside the log are unchanged", () => {
    const cache = new AnswerCache<{ beat: number }>(10);
    cache.set("orders", 1, { beat: 100 });
    let latestBeat = 100;
    const fresh = (v: { beat: number }) => v.beat === latestBeat;
    assert.deepEqual(cache.get("orders", 1, fresh), { beat: 100 });
    latestBeat = 200;
    assert.equal(cache.get("orders", 1, fresh), undefined);
  });

  it("replaces an entry and evicts the oldest written beyond its bound", () => {
    const cache = new AnswerCache<number>(2);
    cache.set("a", 1, 1);
    cache.set("b", 1, 2);
    cache.set("a", 2, 3); // rewritten: now the newest
    cache.set("c", 2, 4); // evicts b, the oldest written
    assert.equal(cache.size, 2);
    assert.equal(cache.get("a", 2), 3);
    assert.equal(cache.get("b", 1), undefined);
    assert.equal(cache.get("c", 2), 4);
  });

  it("refuses a bound below one", () => {
    assert.throws(() => new AnswerCache(0), RangeError);
  });
});
