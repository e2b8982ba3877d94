import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), "../helpers/blocking-line-writer.js");

/** Runs a child that reports `lines` lines with the test helper and kills itself with -9 right after. */
async function linesReceived(lines: number): Promise<number> {
  const script = [
    `import { writeLineBlocking } from ${JSON.stringify(pathToFileURL(WRITER).href)};`,
    `for (let i = 0; i < ${lines}; i++) writeLineBlocking(1, JSON.stringify({ i, pad: "x".repeat(80) }));`,
    `process.kill(process.pid, "SIGKILL");`,
  ].join("\n");
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let received = 0;
  child.stdout.on("data", (chunk: Buffer) => {
    for (const byte of chunk) if (byte === 0x0a) received++;
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("close", (_code, sig) => resolve(sig)),
  );
  assert.equal(signal, "SIGKILL");
  return received;
}

describe("writeLineBlocking (what group members report through)", () => {
  it("every line reported before a kill -9 reaches the parent (process.stdout loses what the pipe queued)", async () => {
    // About 500 KB: several times what a pipe holds, so most of it waits for the reader.
    assert.equal(await linesReceived(5_000), 5_000);
  });
});
