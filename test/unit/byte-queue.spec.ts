import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ByteQueue } from "../../src/common/byte-queue.js";

/** A deterministic pseudo-random sequence (the test must fail the same way twice). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe("ByteQueue", () => {
  it("gives back the bytes pushed, in order, whatever the chunk and message sizes", () => {
    const random = lcg(7);
    for (let round = 0; round < 200; round++) {
      const total = 1 + Math.floor(random() * 5_000);
      const bytes = Buffer.from(Array.from({ length: total }, () => Math.floor(random() * 256)));
      const queue = new ByteQueue();
      let pushed = 0;
      let taken = 0;
      const out: Buffer[] = [];
      while (taken < total) {
        if (pushed < total && (random() < 0.6 || queue.size === 0)) {
          const n = Math.min(total - pushed, 1 + Math.floor(random() * 700));
          queue.push(bytes.subarray(pushed, pushed + n));
          pushed += n;
          continue;
        }
        const n = Math.min(queue.size, 1 + Math.floor(random() * 900));
        assert.deepEqual(queue.peek(n), bytes.subarray(taken, taken + n), `peek at ${taken}`);
        const message = queue.take(n);
        assert.equal(message.length, n);
        out.push(Buffer.from(message));
        taken += n;
        assert.equal(queue.size, pushed - taken);
      }
      assert.deepEqual(Buffer.concat(out), bytes, `round ${round}`);
    }
  });

  it("takes a message within the first chunk as a view of it, without a copy", () => {
    const queue = new ByteQueue();
    const chunk = Buffer.from("hello world");
    queue.push(chunk);
    queue.push(Buffer.from("!"));
    const hello = queue.take(5);
    assert.equal(hello.toString(), "hello");
    assert.equal(hello.buffer, chunk.buffer, "a view of the pushed chunk");
    assert.equal(queue.take(queue.size).toString(), " world!");
  });

  it("copies only the message's bytes when it spans chunks: the next message's start stays a view", () => {
    const queue = new ByteQueue();
    const tail = Buffer.from("def|next");
    queue.push(Buffer.from("abc"));
    queue.push(tail);
    const message = queue.take(6);
    assert.equal(message.toString(), "abcdef");
    assert.equal(message.length, 6, "the message's own bytes");
    const next = queue.take(queue.size);
    assert.equal(next.toString(), "|next");
    assert.equal(next.buffer, tail.buffer, "the rest of the chunk was not copied");
  });

  it("peeks across chunks and past the end without consuming", () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from([0, 0]));
    queue.push(Buffer.from([0, 1, 2]));
    assert.deepEqual(queue.peek(5), Buffer.from([0, 0, 0, 1, 2]));
    assert.deepEqual(queue.peek(9), Buffer.from([0, 0, 0, 1, 2]), "fewer when fewer are queued");
    assert.equal(queue.size, 5);
    assert.equal(new ByteQueue().take(0).length, 0);
  });
});
