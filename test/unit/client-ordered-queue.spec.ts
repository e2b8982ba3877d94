import assert from "node:assert/strict";
import { setImmediate as tick } from "node:timers/promises";
import { describe, it } from "node:test";
import { OrderedQueue } from "../../src/client/ordered-queue.js";

interface Item {
  key: string;
  seq: number;
}

describe("OrderedQueue", () => {
  it("hands out one item per key at a time, in order within a key, keys taking turns", () => {
    const queue = new OrderedQueue<Item>((item) => item.key);
    for (const [key, seq] of [
      ["a", 0],
      ["a", 1],
      ["b", 0],
      ["a", 2],
      ["c", 0],
    ] as const) {
      queue.push({ key, seq });
    }
    assert.deepEqual(queue.take(), { key: "a", seq: 0 });
    assert.deepEqual(queue.take(), { key: "b", seq: 0 });
    assert.deepEqual(queue.take(), { key: "c", seq: 0 });
    assert.equal(queue.take(), undefined, "a, b and c are busy");
    assert.equal(queue.busy, 3);
    queue.done("b");
    assert.equal(queue.take(), undefined, "b has nothing more");
    queue.done("a");
    assert.deepEqual(queue.take(), { key: "a", seq: 1 });
    queue.done("a");
    assert.deepEqual(queue.take(), { key: "a", seq: 2 });
    assert.equal(queue.size, 0);
  });

  it("drains a key's queued items (a revoked partition) without touching the others", () => {
    const queue = new OrderedQueue<Item>((item) => item.key);
    queue.push({ key: "a", seq: 0 });
    queue.push({ key: "a", seq: 1 });
    queue.push({ key: "b", seq: 0 });
    assert.deepEqual(
      queue.drain("a").map((i) => i.seq),
      [0, 1],
    );
    assert.deepEqual(queue.keys(), ["b"]);
    assert.deepEqual(queue.take(), { key: "b", seq: 0 });
    assert.equal(queue.take(), undefined);
  });

  it("drives at most n handlers at once, never two of one key, each key in order", async () => {
    const queue = new OrderedQueue<Item>((item) => item.key);
    const keys = ["p0", "p1", "p2", "p3", "p4"];
    const perKey = 40;
    for (let seq = 0; seq < perKey; seq++) for (const key of keys) queue.push({ key, seq });
    const limit = 3;
    const running = new Set<string>();
    const seen = new Map<string, number[]>();
    let peak = 0;
    const active = new Set<Promise<void>>();
    let step = 0;
    while (queue.size > 0 || active.size > 0) {
      while (active.size < limit) {
        const item = queue.take();
        if (!item) break;
        assert.ok(!running.has(item.key), `two handlers of ${item.key} at once`);
        running.add(item.key);
        peak = Math.max(peak, running.size);
        const delay = (step++ * 7) % 5; // uneven handler durations
        const task = (async () => {
          for (let i = 0; i < delay; i++) await tick();
          (seen.get(item.key) ?? seen.set(item.key, []).get(item.key))?.push(item.seq);
          running.delete(item.key);
          queue.done(item.key);
        })();
        active.add(task);
        void task.then(() => active.delete(task));
      }
      await Promise.race(active);
    }
    assert.equal(peak, limit, "the limit was reached and never passed");
    for (const key of keys) {
      assert.deepEqual(seen.get(key), [...Array(perKey).keys()], `${key} in order`);
    }
  });
});
