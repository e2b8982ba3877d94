import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";

import { openPartitionLog } from "../../src/storage/partition-log.js";
import type { StoredRecord } from "../../src/storage/record-format.js";

const writerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/storage-writer.js");

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

interface RunResult {
  acked: Map<number, string>;
  startOffset: number;
  endOffsetAtStart: number;
}

/** Runs the writer until it has acknowledged `kill` records, then SIGKILLs it. */
async function runWriterAndKill(dir: string, tag: string, kill: number): Promise<RunResult> {
  const child = spawn(process.execPath, [writerScript, dir, tag], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => {
    child.on("exit", (code, signal) => resolve(signal ?? code));
  });
  const acked = new Map<number, string>();
  let startOffset = -1;
  let endOffsetAtStart = -1;
  const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
  for await (const line of createInterface({ input: child.stdout })) {
    const [word, a, b] = line.split(" ");
    if (word === "ready") {
      startOffset = Number(a);
      endOffsetAtStart = Number(b);
    } else if (word === "ack") {
      acked.set(Number(a), String(b));
      if (acked.size === kill) child.kill("SIGKILL");
    }
  }
  clearTimeout(deadline);
  const how = await exited;
  assert.equal(how, "SIGKILL", `writer ended with ${String(how)} before the kill: ${stderr}`);
  assert.ok(acked.size >= kill, `writer acknowledged only ${acked.size} records: ${stderr}`);
  return { acked, startOffset, endOffsetAtStart };
}

describe("partition log: crash with a real process", () => {
  it(
    "keeps every acknowledged record readable and intact across SIGKILLs",
    { timeout: 120_000 },
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-crash-"));
      dirs.push(dir);
      const everAcked = new Map<number, string>();
      let previousEnd = 0;
      for (const [round, kill] of [
        ["one", 300],
        ["two", 457],
        ["three", 211],
      ] as const) {
        const run = await runWriterAndKill(dir, round, kill);
        // Recovery never loses acknowledged records: the new run starts at or after the last ack.
        assert.equal(run.startOffset, 0);
        assert.ok(
          run.endOffsetAtStart >= previousEnd,
          `round ${round} restarted at ${run.endOffsetAtStart} < ${previousEnd}`,
        );
        for (const [offset, hash] of run.acked) {
          assert.ok(!everAcked.has(offset), `offset ${offset} acknowledged twice`);
          everAcked.set(offset, hash);
        }

        const log = await openPartitionLog({ dir, tailCacheBytes: 0 });
        const maxAcked = Math.max(...everAcked.keys());
        assert.ok(
          log.logEndOffset > maxAcked,
          `log ends at ${log.logEndOffset}, but ${maxAcked} was acknowledged`,
        );
        const found = new Map<number, StoredRecord>();
        for (let next = 0; next < log.logEndOffset;) {
          const batch = await log.read(next, 500, 4 << 20);
          for (const record of batch) found.set(record.offset, record);
          next = (batch[batch.length - 1] as StoredRecord).offset + 1;
        }
        assert.equal(found.size, log.logEndOffset, "every offset up to the end is readable");
        for (const [offset, hash] of everAcked) {
          const record = found.get(offset);
          assert.ok(record, `acknowledged offset ${offset} is missing`);
          assert.equal(
            createHash("sha1").update(record.payload).digest("hex"),
            hash,
            `offset ${offset} changed`,
          );
        }
        previousEnd = maxAcked + 1;
        await log.close();
      }
      assert.ok(everAcked.size >= 968);
    },
  );
});
