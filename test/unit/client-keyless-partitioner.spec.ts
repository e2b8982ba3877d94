import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeylessPartitioner, type PartitionView } from "../../src/client/partitioner.js";

/** Partitions with a batch size: a batch is open while it holds 1..size-1 records; `send` empties it. */
class Batches implements PartitionView {
  readonly queued: number[];
  readonly unavailable = new Set<number>();

  constructor(
    partitions: number,
    private readonly size: number,
  ) {
    this.queued = new Array<number>(partitions).fill(0);
  }

  batchOpen(p: number): boolean {
    const n = this.queued[p] as number;
    return n > 0 && n < this.size;
  }

  available(p: number): boolean {
    return !this.unavailable.has(p);
  }

  place(partitioner: KeylessPartitioner): number {
    const p = partitioner.choose(this.queued.length, this);
    this.queued[p] = (this.queued[p] as number) + 1;
    return p;
  }

  send(): void {
    this.queued.fill(0);
  }
}

describe("keyless partitioning", () => {
  it("sticky: fills one partition's batch, then moves to the next in turn", () => {
    const view = new Batches(4, 3);
    const sticky = new KeylessPartitioner("sticky", 1);
    const placed = Array.from({ length: 7 }, () => view.place(sticky));
    assert.deepEqual(placed, [1, 1, 1, 2, 2, 2, 3], "a full batch (3) closes the partition's turn");
  });

  it("sticky: a batch taken by a request ends the turn, even when it was not full", () => {
    const view = new Batches(3, 100);
    const sticky = new KeylessPartitioner("sticky", 0);
    const turns: number[][] = [];
    for (let round = 0; round < 4; round++) {
      turns.push([view.place(sticky), view.place(sticky)]);
      view.send();
    }
    assert.deepEqual(turns, [
      [0, 0],
      [1, 1],
      [2, 2],
      [0, 0],
    ]);
  });

  it("sticky: skips partitions that cannot send, and takes one anyway when none can", () => {
    const view = new Batches(4, 2);
    view.unavailable.add(1).add(2);
    const sticky = new KeylessPartitioner("sticky", 0);
    assert.deepEqual(
      Array.from({ length: 4 }, () => view.place(sticky)),
      [0, 0, 3, 3],
    );
    view.send();
    assert.deepEqual([view.place(sticky), view.place(sticky)], [0, 0], "around again");
    view.send();
    for (const p of [0, 3]) view.unavailable.add(p);
    const next = view.place(sticky);
    assert.ok(next >= 0 && next < 4, "a partition is still chosen (its records wait for a leader)");
  });

  it("sticky: follows a partition count that grows or shrinks", () => {
    const view = new Batches(2, 10);
    const sticky = new KeylessPartitioner("sticky", 5);
    assert.equal(view.place(sticky), 1);
    const fewer = new Batches(1, 10);
    assert.equal(fewer.place(sticky), 0, "the current partition no longer exists");
  });

  it("round-robin: each message to the next partition, from the start given", () => {
    const view = new Batches(3, 100);
    const roundRobin = new KeylessPartitioner("round-robin", 2);
    assert.deepEqual(
      Array.from({ length: 6 }, () => view.place(roundRobin)),
      [2, 0, 1, 2, 0, 1],
    );
  });

  it("starts at a random partition by default, so producers starting together spread", () => {
    const starts = new Set<number>();
    for (let i = 0; i < 64; i++) starts.add(new KeylessPartitioner("sticky").choose(16, new Batches(16, 10)));
    assert.ok(starts.size > 4, `64 producers started on ${starts.size} of 16 partitions`);
  });
});
