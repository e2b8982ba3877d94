import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { BeyondHighWatermarkError } from "../../src/broker/errors.js";
import { commitOffset } from "../../src/broker/offsets.js";
import { resolveReadStart } from "../../src/broker/read-start.js";
import { CommitOffsetRequestSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import { OffsetOutOfRangeError } from "../../src/storage/index.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-hw-bound-");

/** A leader of t#0 with 5 records its follower b2 has not fetched yet: high watermark 0, log end 5. */
async function leaderAhead() {
  const p = await openTestPartition(await tempDir());
  const { stream } = await leadWithFollowerB2(p);
  // b2 is in sync at offset 0 and has stored every offset-table version (commits answer at once).
  p.onFetch("b2", stream, 0, Number.MAX_SAFE_INTEGER);
  const result = await p.log.append(Array.from({ length: 5 }, () => ({ payload: new Uint8Array([1]) })));
  p.onLocalAppend(result.lastOffset + 1);
  assert.equal(p.highWatermark, 0);
  assert.equal(p.log.logEndOffset, 5);
  const lookup = () => p;
  const commit = (offset: number) =>
    commitOffset(
      lookup,
      create(CommitOffsetRequestSchema, {
        consumerGroup: "g",
        topic: "t",
        partition: 0,
        offset: BigInt(offset),
      }),
      () => true,
    );
  return { p, lookup, stream, commit };
}

describe("commits and read starts are bounded by the high watermark", () => {
  it("refuses a commit past the high watermark (retryable), accepts one at it", async () => {
    const { p, stream, commit } = await leaderAhead();
    await assert.rejects(commit(5), (err: unknown) => {
      assert.ok(err instanceof BeyondHighWatermarkError, String(err));
      assert.equal(err.code, Code.Unavailable);
      assert.match(err.message, /offset 5 is beyond the high watermark 0 of t#0/);
      return true;
    });
    assert.equal(p.offsets.get("g"), undefined, "nothing stored");
    p.onFetch("b2", stream, 5, Number.MAX_SAFE_INTEGER); // replicated: the high watermark is 5
    await commit(5);
    assert.equal(p.offsets.get("g"), 5);
    await p.close();
  });

  it("refuses a read starting past the high watermark, naming the readable range", async () => {
    const { p, lookup } = await leaderAhead();
    await assert.rejects(resolveReadStart(lookup, "t", 0, 3n, ""), (err: unknown) => {
      assert.ok(err instanceof OffsetOutOfRangeError, String(err));
      assert.match(err.message, /\[0, 0\)/);
      return true;
    });
    assert.equal((await resolveReadStart(lookup, "t", 0, 0n, "")).offset, 0);
    await p.close();
  });

  it("resumes a group at its committed offset only once the high watermark passed it", async () => {
    const { p, lookup, stream } = await leaderAhead();
    // A commit replicated from an earlier leader, past what this one has made durable everywhere.
    await p.offsets.commit("g", 4, 0);
    await assert.rejects(resolveReadStart(lookup, "t", 0, -1n, "g"), BeyondHighWatermarkError);
    p.onFetch("b2", stream, 5, Number.MAX_SAFE_INTEGER);
    assert.equal((await resolveReadStart(lookup, "t", 0, -1n, "g")).offset, 4);
    // Past the log end (an unclean leader change): resume at the high watermark, skipping nothing new.
    await p.offsets.commit("h", 9, 0);
    assert.equal((await resolveReadStart(lookup, "t", 0, -1n, "h")).offset, 5);
    await p.close();
  });
});
