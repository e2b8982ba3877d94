import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";

import type { Partition } from "../../src/broker/partition.js";
import { store } from "../../src/broker/replication-follower.js";
import { acceptsFrames, readAnswer } from "../../src/broker/replication-leader.js";
import { needsAcknowledgement } from "../../src/broker/replication-session-state.js";
import { RECORD_MAGIC } from "../../src/storage/index.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";

const tempDir = temporaryDirs("goulette-answer-");

async function logBytes(p: Partition): Promise<Buffer> {
  return Buffer.concat(await Promise.all(p.log.segments().map((s) => readFile(s.path))));
}

/** A leader b1 with 30 records (of them some large, with keys, headers and producer ids). */
async function leaderWithRecords(): Promise<Partition> {
  const leader = await openTestPartition(await tempDir());
  await leadWithFollowerB2(leader);
  for (let i = 0; i < 30; i += 10) {
    await leader.log.append(
      Array.from({ length: 10 }, (_, k) => ({
        payload: Buffer.alloc((i + k) % 7 === 0 ? 16_384 : 100, 97 + k),
        key: Buffer.from(`k${i + k}`),
        headers: [{ key: "n", value: Buffer.from(String(i + k)) }],
        producerId: "p1",
        messageId: BigInt(i + k + 1),
      })),
    );
  }
  return leader;
}

/** b2 following b1 in epoch 1 (no fetch loop: the test stores the answers itself). */
async function follower(): Promise<Partition> {
  const p = await openTestPartition(await tempDir(), { brokerId: "b2" });
  const b1 = { brokerId: "b1", address: "" };
  assert.ok(
    p.applyRole({ role: "follower", epoch: 1, leader: b1, replicas: [b1, { brokerId: "b2", address: "" }] }),
  );
  return p;
}

describe("replication answers: stored frames, or records for followers that predate them", () => {
  for (const frames of [true, false]) {
    it(`a follower ${frames ? "accepting frames" : "of the older kind"} ends up with the leader's log, byte for byte`, async () => {
      const leader = await leaderWithRecords();
      const copy = await follower();
      let answers = 0;
      while (copy.log.logEndOffset < leader.log.logEndOffset) {
        const { response } = await readAnswer(leader, copy.log.logEndOffset, undefined, {
          maxRecords: 8,
          maxBytes: 1 << 20,
          frames,
        });
        assert.equal(response.frames.length > 0, frames, "frames only when the follower accepts them");
        assert.equal(response.records.length > 0, !frames, "records only when it does not");
        assert.ok(needsAcknowledgement(response));
        assert.deepEqual(
          response.leaderEpochs.map((e) => [Number(e.epoch), Number(e.startOffset)]),
          leader.epochs.entries.map((e) => [e.epoch, e.startOffset]),
        );
        await store(copy, response);
        answers++;
      }
      assert.equal(answers, 4);
      assert.deepEqual(await logBytes(copy), await logBytes(leader));
      assert.deepEqual(copy.epochs.entries, leader.epochs.entries);
      await Promise.all([leader.close(), copy.close()]);
    });
  }

  it("frames go only to followers that store this log's frame format (0: a follower that predates frames)", () => {
    assert.equal(acceptsFrames(0), false);
    assert.equal(acceptsFrames(RECORD_MAGIC), true);
    assert.equal(acceptsFrames(RECORD_MAGIC + 1), true, "a newer follower reads older frames");
  });

  it("an answer with nothing new carries neither records nor frames, and needs no acknowledgement", async () => {
    const leader = await leaderWithRecords();
    const { response } = await readAnswer(leader, leader.log.logEndOffset, 0, {
      maxRecords: 8,
      maxBytes: 1 << 20,
      frames: true,
    });
    assert.equal(response.frames.length, 0);
    assert.equal(response.records.length, 0);
    assert.equal(needsAcknowledgement(response), false);
    await leader.close();
  });
});
