import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const TUNING = new URL("../../src/cmd/v8-tuning.js", import.meta.url).href;

/**
 * Runs, in a fresh node, applyV8Tuning and then a loop whose objects survive young GCs (kept in an array
 * for a while): V8 pretenures their allocation sites unless pretenuring is off. Returns how many
 * decisions "=> tenure" V8's trace printed.
 */
async function tenureDecisions(pretenuring: boolean): Promise<number> {
  const script = `
    const { applyV8Tuning } = await import(${JSON.stringify(TUNING)});
    applyV8Tuning({ pretenuring: ${pretenuring} });
    let kept = [];
    for (let i = 0; i < 3_000_000; i++) {
      kept.push({ n: i, list: [i] });
      if (kept.length > 200_000) kept = [];
    }`;
  const { stdout } = await run(
    process.execPath,
    ["--trace-pretenuring", "--trace-pretenuring-statistics", "--input-type=module", "-e", script],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout.split("\n").filter((line) => line.includes("=> tenure")).length;
}

describe("applyV8Tuning", () => {
  it("turns allocation-site pretenuring off (the workload is pretenured when it is on)", async () => {
    assert.ok((await tenureDecisions(true)) > 0, "the workload should be pretenured by default");
    assert.equal(await tenureDecisions(false), 0);
  });
});
