import assert from "node:assert/strict";
import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { NotPartitionLeaderError } from "../../src/broker/errors.js";
import { openPartitionLog } from "../../src/storage/index.js";
import { silentLogger } from "../../src/observability/logger.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

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

describe("Partition: a leader whose scrub finds a damaged sealed segment", () => {
  /** b1 leads with b2 in sync, over a log of two sealed segments and an active one. */
  async function leaderWithSealedSegments() {
    const p = await openTestPartition(await tempDir(), {
      log: { fsync: "interval", logger: silentLogger(), segmentBytes: 256 },
    });
    const { stream } = await leadWithFollowerB2(p);
    for (let i = 0; i < 12; i++) {
      const result = await p.log.append([{ payload: payload(i) }]);
      p.onLocalAppend(result.lastOffset + 1);
    }
    const sealed = p.log.segments().slice(0, -1);
    assert.ok(sealed.length >= 2, "the log rolled");
    p.onFetch("b2", stream, p.log.logEndOffset, undefined);
    assert.deepEqual(p.inSyncReplicas().sort(), ["b1", "b2"]);
    const segment = sealed[0] as { baseOffset: number; nextOffset: number };
    return {
      p,
      damage: {
        baseOffset: segment.baseOffset,
        fromOffset: segment.baseOffset,
        toOffset: segment.nextOffset,
        position: 0,
        reason: "a flipped bit (as the scrub reports it)",
      },
    };
  }

  it("steps down while another replica is in sync, and asks to hand over until a new role arrives", async () => {
    const { p, damage } = await leaderWithSealedSegments();
    assert.equal(p.refusesLeadership, false);
    assert.ok(p.reportSealedDamage(damage));
    assert.equal(p.role, "none", "no longer serves as leader");
    assert.equal(p.refusesLeadership, true);
    assert.throws(() => p.requireLeader(), NotPartitionLeaderError);
    // The same leader role again (a KeepAlive's full list) is not taken back.
    const self = { brokerId: "b1", address: "" };
    const other = { brokerId: "b2", address: "" };
    assert.equal(p.applyRole({ role: "leader", epoch: 1, leader: self, replicas: [self, other] }), false);
    // The sentinels moved the leadership: b1 follows b2 under a new epoch and stops asking.
    assert.ok(p.applyRole({ role: "follower", epoch: 2, leader: other, replicas: [other, self] }));
    assert.equal(p.refusesLeadership, false);
    assert.ok(p.damaged, "still damaged until the range is fetched again");
    await p.close();
  });

  it("keeps leading when it is the only replica in sync (no replica holds more)", async () => {
    const p = await openTestPartition(await tempDir(), {
      log: { fsync: "interval", logger: silentLogger(), segmentBytes: 256 },
    });
    const self = { brokerId: "b1", address: "" };
    assert.ok(p.applyRole({ role: "leader", epoch: 1, leader: self, replicas: [self] }));
    await p.leaderReady();
    for (let i = 0; i < 12; i++) {
      const result = await p.log.append([{ payload: payload(i) }]);
      p.onLocalAppend(result.lastOffset + 1);
    }
    const first = p.log.segments()[0] as { baseOffset: number; nextOffset: number };
    assert.ok(
      p.reportSealedDamage({
        baseOffset: first.baseOffset,
        fromOffset: first.baseOffset,
        toOffset: first.nextOffset,
        position: 0,
        reason: "a flipped bit (as the scrub reports it)",
      }),
    );
    assert.ok(p.damaged);
    assert.equal(p.role, "leader");
    assert.equal(p.refusesLeadership, false);
    await p.close();
  });
});
