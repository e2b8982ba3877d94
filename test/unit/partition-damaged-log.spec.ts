import assert from "node:assert/strict";
import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { NotPartitionLeaderError } from "../../src/broker/errors.js";
import { openPartitionLog } from "../../src/storage/index.js";
import { openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-damaged-");

const payload = (i: number) => new TextEncoder().encode(`record ${i} `.repeat(4));

/**
 * A partition directory whose log held 12 records before a crash (copied while open: no saved index,
 * so recovery scans), with one bit flipped in record 5: corruption followed by 6 valid records.
 */
async function damagedPartitionDir(): Promise<string> {
  const live = await tempDir();
  const log = await openPartitionLog({ dir: path.join(live, "log"), tailCacheBytes: 0 });
  await log.append(Array.from({ length: 12 }, (_, i) => ({ payload: payload(i) })));
  const sizes = (await log.read(0, 100)).map((r) => r.sizeBytes);
  const crashed = await tempDir();
  await cp(live, crashed, { recursive: true });
  await log.close();
  const logDir = path.join(crashed, "log");
  const file = path.join(logDir, (await readdir(logDir)).find((f) => f.endsWith(".log")) as string);
  const bytes = await readFile(file);
  const inRecord5 = sizes.slice(0, 5).reduce((a, b) => a + b, 0) + 30;
  bytes[inRecord5] = (bytes[inRecord5] as number) ^ 0x01;
  await writeFile(file, bytes);
  return crashed;
}

describe("Partition: a replica whose log recovery found damaged", () => {
  it("refuses to lead, and is repaired once it fetched the cut range from a replica", async () => {
    const events: string[] = [];
    const p = await openTestPartition(await damagedPartitionDir(), {
      onLogRepair: (event) => events.push(event),
    });
    assert.ok(p.damaged);
    assert.deepEqual(events, ["detected"]);
    const self = { brokerId: "b1", address: "" };
    const other = { brokerId: "b2", address: "" };
    assert.ok(p.applyRole({ role: "leader", epoch: 2, leader: self, replicas: [self, other] }));
    await assert.rejects(p.leaderReady(), NotPartitionLeaderError);
    assert.equal(p.role, "none");

    // As a follower it fetches records 5..11 again from the leader: repaired.
    assert.ok(p.applyRole({ role: "follower", epoch: 3, leader: other, replicas: [other, self] }));
    await p.log.appendReplicated(
      Array.from({ length: 7 }, (_, k) => ({ offset: 5 + k, timestamp: 1, payload: payload(5 + k) })),
    );
    assert.equal(p.damaged, false);
    assert.deepEqual(events, ["detected", "repaired"]);
    await p.close();
  });
});
