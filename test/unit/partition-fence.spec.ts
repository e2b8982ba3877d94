import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LostContactError } from "../../src/broker/errors.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-fence-");

/** A leader of a 2-replica partition whose isolation fence the test opens and closes. */
async function leader() {
  const fence = { writable: true };
  const p = await openTestPartition(await tempDir(), {
    minInsyncReplicas: 2,
    writable: () => fence.writable,
  });
  const { generation, stream } = await leadWithFollowerB2(p);
  p.onFetch("b2", stream, 0, undefined);
  const append = async (count: number) => {
    const result = await p.log.append(
      Array.from({ length: count }, () => ({ payload: new Uint8Array([1]) })),
    );
    p.onLocalAppend(result.lastOffset + 1);
    return result.lastOffset + 1;
  };
  return {
    p,
    fence,
    generation,
    append,
    fetch: (offset: number) => p.onFetch("b2", stream, offset, undefined),
  };
}

async function settled(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => "resolved",
    (err: unknown) => err,
  );
}

describe("Partition: the isolation fence at acknowledgement", () => {
  it("neither moves the high watermark nor acknowledges once the fence expired", async () => {
    const { p, fence, generation, append, fetch } = await leader();
    const end = await append(3);
    const waiting = p.waitForHighWatermark(end, generation);
    fence.writable = false;
    fetch(end); // the follower has the records: without the fence this acknowledges
    const outcome = await settled(waiting);
    assert.ok(outcome instanceof LostContactError, `LostContactError, got ${String(outcome)}`);
    assert.equal(p.highWatermark, 0, "a fenced leader exposes nothing new");
    // Already replicated but fenced: refused as well.
    assert.ok((await settled(p.waitForHighWatermark(end, generation))) instanceof LostContactError);
    fence.writable = true;
    fetch(end);
    assert.equal(p.highWatermark, end);
    await p.close();
  });

  it("fails waiting writes and offset commits when the fence expires with nothing else happening", async () => {
    const { p, fence, generation, append } = await leader();
    const end = await append(1);
    const waiting = settled(p.waitForHighWatermark(end, generation));
    const commit = settled(p.commitOffset("g", 1, 0, generation));
    fence.writable = false;
    p.tick();
    assert.ok((await waiting) instanceof LostContactError);
    assert.ok((await commit) instanceof LostContactError);
    await p.close();
  });
});
