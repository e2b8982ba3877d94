import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";

import { NotPartitionLeaderError } from "../../src/broker/errors.js";
import { LogScrubber } from "../../src/broker/log-scrubber.js";
import type { Partition } from "../../src/broker/partition.js";
import { createLogger, silentLogger } from "../../src/observability/logger.js";
import { openPartitionLog, type ReplicatedRecord, type SegmentDamage } from "../../src/storage/index.js";
import { openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-scrub-");
const RECORDS = 40;
const payload = (i: number) => Buffer.from(`record ${i} `.repeat(6));
const self = { brokerId: "b1", address: "" };
const other = { brokerId: "b2", address: "" };

/** A partition directory (and its twin, an in-sync replica's) whose log has a bit flipped in a sealed segment. */
async function damagedPartition(): Promise<{ dir: string; twinLog: string }> {
  const dir = await tempDir();
  const twin = await tempDir();
  for (const d of [dir, twin]) {
    const log = await openPartitionLog({ dir: path.join(d, "log"), segmentBytes: 1024 });
    for (let i = 0; i < RECORDS; i++) await log.append([{ payload: payload(i), timestamp: 5_000 + i }]);
    await log.close();
  }
  const logDir = path.join(dir, "log");
  const file = path.join(
    logDir,
    (await readdir(logDir)).filter((f) => f.endsWith(".log")).sort()[1] as string,
  );
  const bytes = await readFile(file);
  bytes[200] = (bytes[200] as number) ^ 0x04;
  await writeFile(file, bytes);
  return { dir, twinLog: path.join(twin, "log") };
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; count: (msg: string) => number } {
  let text = "";
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return {
    logger: createLogger({ level: "info", destination }),
    count: (msg) => text.split("\n").filter((line) => line.includes(msg)).length,
  };
}

function scrubberOf(p: Partition, twinLog: string, fetched: SegmentDamage[] = []): LogScrubber {
  return new LogScrubber({
    partitions: () => [p],
    intervalMs: 60_000,
    firstPassDelayMs: 60_000,
    bytesPerSecond: 1 << 30,
    fetchRange: async (_p, damage): Promise<ReplicatedRecord[]> => {
      fetched.push(damage);
      const twin = await openPartitionLog({ dir: twinLog });
      try {
        return await twin.read(damage.fromOffset, damage.toOffset - damage.fromOffset, 1 << 24);
      } finally {
        await twin.close();
      }
    },
    logger: silentLogger(),
  });
}

describe("the scrub of sealed segments", () => {
  it("a follower finds the damage, fetches exactly that range, and is repaired (metric and log line)", async () => {
    const { dir, twinLog } = await damagedPartition();
    const events: string[] = [];
    const { logger, count } = capturingLogger();
    const p = await openTestPartition(dir, { onLogRepair: (e) => events.push(e), logger });
    assert.equal(p.damaged, false, "the saved index hides the damage until the segment is read again");
    assert.ok(p.applyRole({ role: "follower", epoch: 1, leader: other, replicas: [other, self] }));
    const fetched: SegmentDamage[] = [];
    const scrubber = scrubberOf(p, twinLog, fetched);
    const pass = await scrubber.runPass();
    assert.deepEqual(pass, { segmentsVerified: p.log.segments().length - 1, damageFound: 1, repaired: 1 });
    assert.equal(fetched.length, 1);
    const damage = fetched[0] as SegmentDamage;
    assert.ok(damage.fromOffset > damage.baseOffset && damage.toOffset <= RECORDS);
    assert.deepEqual(events, ["detected", "repaired"]);
    assert.equal(count("corrupt record in a sealed segment"), 1);
    assert.equal(count("damaged sealed segment range repaired from a replica"), 1);
    assert.equal(p.damaged, false);
    const records = await p.log.read(0, 1000, 1 << 24);
    assert.deepEqual(
      records.map((r) => Buffer.from(r.payload).toString()),
      Array.from({ length: RECORDS }, (_, i) => payload(i).toString()),
    );
    // A second pass finds everything clean.
    assert.deepEqual((await scrubber.runPass()).damageFound, 0);
    await scrubber.stop();
    await p.close();
  });

  it("a damaged replica refuses to lead without flapping, and leads again once repaired as a follower", async () => {
    const { dir, twinLog } = await damagedPartition();
    const { logger, count } = capturingLogger();
    const p = await openTestPartition(dir, { logger });
    const scrubber = scrubberOf(p, twinLog);
    // Not following anyone: the damage is found but cannot be repaired.
    assert.deepEqual((await scrubber.runPass()).repaired, 0);
    assert.ok(p.damaged);

    // The sole replica: assigned leader again and again by every KeepAlive, it refuses once and stays
    // unavailable (role none) instead of taking and dropping the role each time.
    const sole = { role: "leader" as const, epoch: 2, leader: self, replicas: [self] };
    assert.ok(p.applyRole(sole));
    await assert.rejects(p.leaderReady(), NotPartitionLeaderError);
    assert.equal(p.role, "none");
    for (let i = 0; i < 5; i++) {
      assert.equal(p.applyRole(sole), false);
      assert.equal(p.role, "none");
    }
    assert.equal(count("refusing to lead"), 1);
    assert.equal(count('"msg":"partition role"'), 1);

    // Another replica leads (a new epoch); this one follows and the scrub repairs it; then it may lead.
    assert.ok(p.applyRole({ role: "follower", epoch: 3, leader: other, replicas: [other, self] }));
    assert.equal((await scrubber.runPass()).repaired, 1);
    assert.equal(p.damaged, false);
    assert.ok(p.applyRole({ role: "leader", epoch: 4, leader: self, replicas: [self, other] }));
    await p.leaderReady();
    assert.equal(p.role, "leader");
    await scrubber.stop();
    await p.close();
  });
});
