import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FORGOTTEN, PENDING, ProducerTable } from "../../src/broker/producer-table.js";

const EXACT = BigInt(Number.MAX_SAFE_INTEGER); // 2^53 - 1: the largest id a number holds exactly

describe("ProducerTable", () => {
  it("acknowledges a retry with the offset its first append got", () => {
    const table = new ProducerTable({ windowSize: 8, maxProducers: 4 });
    assert.equal(table.claim("p", 5n), undefined);
    assert.equal(table.claim("p", 5n), PENDING);
    table.record("p", 5n, 42);
    assert.equal(table.claim("p", 5n), 42);
    assert.equal(table.lookup("q", 5n), undefined, "another producer's id 5 is new");
  });

  it("keeps ids beyond 2^53 apart (a number would make 2^53 and 2^53 + 1 one key)", () => {
    const table = new ProducerTable({ windowSize: 8, maxProducers: 4 });
    const a = 2n ** 53n;
    const b = a + 1n;
    assert.equal(table.claim("p", a), undefined);
    table.record("p", a, 1);
    assert.equal(table.claim("p", b), undefined, "2^53 + 1 is a new message");
    table.record("p", b, 2);
    assert.equal(table.lookup("p", a), 1);
    assert.equal(table.lookup("p", b), 2);
    table.release("p", b); // recorded, not pending: nothing to release
    assert.equal(table.lookup("p", b), 2);
  });

  it("forgets the oldest ids of a window that crosses 2^53, and knows they were seen", () => {
    const table = new ProducerTable({ windowSize: 2, maxProducers: 4 });
    const ids = [EXACT - 1n, EXACT, EXACT + 1n, EXACT + 2n];
    ids.forEach((id, i) => table.record("p", id, i));
    assert.equal(table.lookup("p", EXACT - 1n), FORGOTTEN);
    assert.equal(table.lookup("p", EXACT), FORGOTTEN);
    assert.equal(table.lookup("p", EXACT + 1n), 2);
    assert.equal(table.lookup("p", EXACT + 2n), 3);
    assert.equal(table.lookup("p", EXACT + 3n), undefined);
    assert.equal(table.follows("p", EXACT + 2n), "yes");
    assert.equal(table.follows("p", EXACT + 3n), "refuse");
  });

  it("frees a failed reservation so that the retry appends", () => {
    const table = new ProducerTable({ windowSize: 8, maxProducers: 4 });
    for (const id of [7n, EXACT + 7n]) {
      assert.equal(table.claim("p", id), undefined);
      assert.equal(table.follows("p", id), "yes", "a pending predecessor lets its successor follow");
      table.release("p", id);
      assert.equal(table.claim("p", id), undefined);
    }
  });
});
