import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { ConsumerOffsets, type OffsetChange } from "../../src/broker/consumer-offsets.js";
import { FencedMemberError, TooManyConsumerGroupsError } from "../../src/broker/errors.js";
import { FailedPreconditionError } from "../../src/errors.js";

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-offsets-"));
  dirs.push(dir);
  return dir;
}

const OPTIONS = { topic: "orders", partition: 3 };
const open = (dir: string, maxGroups?: number) =>
  ConsumerOffsets.open(dir, { ...OPTIONS, ...(maxGroups !== undefined ? { maxGroups } : {}) });

async function fileOf(dir: string): Promise<unknown> {
  return JSON.parse(await readFile(path.join(dir, "consumer-offsets.json"), "utf8"));
}

/** The table as plain data: group → [offset or undefined, fence]. */
function state(table: ConsumerOffsets, groups: string[]): Record<string, [number | undefined, number]> {
  return Object.fromEntries(groups.map((g) => [g, [table.get(g), table.fence(g)]]));
}

describe("ConsumerOffsets: fenced commits", () => {
  it("a higher member epoch raises the fence with the offset; a lower one is refused and changes nothing", async () => {
    const table = await open(await tempDir());
    await table.commit("billing", 5, 3);
    assert.deepEqual(state(table, ["billing"]), { billing: [5, 3] });

    const version = table.version;
    await assert.rejects(table.commit("billing", 9, 2), (err: unknown) => {
      assert.ok(err instanceof FencedMemberError);
      assert.equal(err.code, Code.Aborted);
      assert.equal(err.retryable, false);
      assert.equal(
        err.message,
        "commit refused: partition orders/3 of group billing was given to another member " +
          "(epoch 3; this member's is 2) — rejoin the group",
      );
      return true;
    });
    assert.deepEqual(state(table, ["billing"]), { billing: [5, 3] });
    assert.equal(table.version, version, "a refused commit is not a change");

    await table.commit("billing", 6, 3);
    await table.commit("billing", 7, 8);
    assert.deepEqual(state(table, ["billing"]), { billing: [7, 8] });
  });

  it("epoch 0 is never fenced and never lowers the fence", async () => {
    const table = await open(await tempDir());
    await table.commit("billing", 5, 4);
    await table.commit("billing", 2, 0);
    assert.deepEqual(state(table, ["billing"]), { billing: [2, 4] });
    await assert.rejects(table.commit("billing", 3, 1), FencedMemberError);
  });

  it("fences are per group", async () => {
    const table = await open(await tempDir());
    await table.commit("billing", 5, 9);
    await table.commit("audit", 1, 2);
    assert.deepEqual(state(table, ["billing", "audit"]), { billing: [5, 9], audit: [1, 2] });
  });

  it("raiseFence: a take-over raises the fence without an offset; equal is a no-op, lower is refused", async () => {
    const table = await open(await tempDir());
    const raised = await table.raiseFence("billing", 7);
    assert.equal(raised, table.version);
    assert.deepEqual(state(table, ["billing"]), { billing: [undefined, 7] });
    assert.deepEqual([...table.committed()], [], "a fenced group without a commit has no offset");

    assert.equal(await table.raiseFence("billing", 7), raised, "already raised: the same version");
    assert.equal(table.version, raised);

    await assert.rejects(table.raiseFence("billing", 3), (err: unknown) => {
      assert.ok(err instanceof FencedMemberError);
      assert.match(
        err.message,
        /^offset fetch refused: .*\(epoch 7; this member's is 3\) — rejoin the group$/,
      );
      return true;
    });
    await assert.rejects(table.commit("billing", 4, 6), FencedMemberError);
    await table.commit("billing", 4, 7);
    assert.ok((await table.raiseFence("billing", 8)) > raised);
    assert.deepEqual(state(table, ["billing"]), { billing: [4, 8] }, "the offset is kept");
  });

  it("delete forgets offset and fence; says whether there was an offset", async () => {
    const table = await open(await tempDir());
    await table.commit("billing", 5, 7);
    await table.raiseFence("audit", 2);
    const before = table.version;

    const deleted = await table.delete("billing");
    assert.deepEqual(deleted, { deleted: true, version: before + 1 });
    assert.deepEqual(state(table, ["billing"]), { billing: [undefined, 0] });
    await table.commit("billing", 1, 1);
    assert.deepEqual(state(table, ["billing"]), { billing: [1, 1] }, "the old fence is gone");

    assert.deepEqual(await table.delete("audit"), { deleted: false, version: before + 3 });
    assert.equal(table.fence("audit"), 0, "a fence-only entry is removed too");
    assert.deepEqual(await table.delete("nobody"), { deleted: false, version: undefined });
    assert.equal(table.version, before + 3, "deleting an unknown group is not a change");
  });

  it("keeps at most maxGroups groups: a new one beyond is refused with RESOURCE_EXHAUSTED, nothing stored", async () => {
    const dir = await tempDir();
    const table = await open(dir, 2);
    await table.commit("a", 1, 0);
    await table.raiseFence("b", 1);
    const version = table.version;
    for (const attempt of [() => table.commit("c", 1, 0), () => table.raiseFence("c", 1)]) {
      await assert.rejects(attempt(), (err: unknown) => {
        assert.ok(err instanceof TooManyConsumerGroupsError);
        assert.equal(err.code, Code.ResourceExhausted);
        assert.match(err.message, /orders\/3 already keeps the offsets of 2 consumer groups, the limit/);
        return true;
      });
    }
    assert.equal(table.size, 2);
    assert.equal(table.version, version);
    assert.deepEqual((await open(dir, 2)).get("c"), undefined, "nothing reached the file");
    await table.commit("a", 2, 0);
    await table.commit("b", 2, 1);
    await table.delete("a");
    await table.commit("c", 1, 0);
    assert.deepEqual(state(table, ["a", "b", "c"]), { a: [undefined, 0], b: [2, 1], c: [1, 0] });
  });
});

describe("ConsumerOffsets: the file", () => {
  it("round trip: offsets, fences, fence-only groups, deletions and the version survive a reopen", async () => {
    const dir = await tempDir();
    const table = await open(dir);
    await table.commit("billing", 5, 3);
    await table.commit("static", 9, 0);
    await table.raiseFence("newcomer", 4);
    await table.commit("gone", 1, 1);
    await table.delete("gone");
    await table.commit("__proto__", 2, 6);
    assert.deepEqual(await fileOf(dir), {
      version: 6,
      offsets: { billing: 5, static: 9, ["__proto__"]: 2 },
      fences: { billing: 3, newcomer: 4, ["__proto__"]: 6 },
    });

    const reopened = await open(dir);
    const groups = ["billing", "static", "newcomer", "gone", "__proto__"];
    assert.deepEqual(state(reopened, groups), state(table, groups));
    assert.equal(reopened.version, 6);
    assert.equal(reopened.size, 4);
    await assert.rejects(reopened.commit("billing", 6, 2), FencedMemberError, "the fence came back");
  });

  it("reads the format written before fences (offsets only): no group fenced", async () => {
    const dir = await tempDir();
    await writeFile(
      path.join(dir, "consumer-offsets.json"),
      JSON.stringify({ version: 12, offsets: { audit: 120, billing: 7 } }),
    );
    const table = await open(dir);
    assert.equal(table.version, 12);
    assert.deepEqual(state(table, ["audit", "billing"]), { audit: [120, 0], billing: [7, 0] });
    await table.commit("billing", 8, 2);
    assert.equal(table.version, 13, "new changes are numbered after the stored version");
    assert.deepEqual(await fileOf(dir), {
      version: 13,
      offsets: { audit: 120, billing: 8 },
      fences: { billing: 2 },
    });
  });

  it("refuses a file that is not an offset table", async () => {
    for (const content of [{ offsets: {} }, { version: 1 }, { version: 1, offsets: {}, fences: 3 }]) {
      const dir = await tempDir();
      await writeFile(path.join(dir, "consumer-offsets.json"), JSON.stringify(content));
      await assert.rejects(open(dir), FailedPreconditionError, JSON.stringify(content));
    }
  });
});

describe("ConsumerOffsets: replication", () => {
  it("a new stream gets the whole table, fences and fence-only groups included", async () => {
    const leader = await open(await tempDir());
    await leader.commit("billing", 5, 3);
    await leader.raiseFence("newcomer", 4);
    await leader.commit("gone", 1, 0);
    await leader.delete("gone");
    const { changes, snapshot } = leader.changesSince(undefined);
    assert.equal(snapshot, true);
    assert.deepEqual(
      changes.map(({ group, offset, fence }) => ({ group, offset, fence })),
      [
        { group: "billing", offset: 5, fence: 3 },
        { group: "newcomer", offset: -1, fence: 4 },
      ],
    );

    // A follower that had a group the leader deleted drops it with the snapshot.
    const followerDir = await tempDir();
    const follower = await open(followerDir);
    await follower.apply([{ group: "gone", offset: 1, fence: 0, version: 3 }], 3, false);
    await follower.apply(changes, leader.version, true);
    const groups = ["billing", "newcomer", "gone"];
    assert.deepEqual(state(follower, groups), state(leader, groups));
    assert.equal(follower.version, leader.version);
    assert.deepEqual(state(await open(followerDir), groups), state(leader, groups), "stored");
  });

  it("deltas carry each group's whole entry; a deletion is (offset -1, fence 0)", async () => {
    const leader = await open(await tempDir());
    const follower = await open(await tempDir());
    const ship = async (since: number): Promise<OffsetChange[]> => {
      const { changes, snapshot } = leader.changesSince(since);
      assert.equal(snapshot, false);
      await follower.apply(changes, leader.version, false);
      return changes;
    };
    await leader.commit("billing", 5, 3);
    await ship(0);
    let since = leader.version;

    await leader.commit("billing", 6, 0);
    await leader.raiseFence("billing", 9);
    await leader.delete("billing");
    await leader.raiseFence("audit", 2);
    assert.deepEqual(
      (await ship(since)).map(({ group, offset, fence, version }) => [group, offset, fence, version]),
      [
        ["billing", 6, 3, since + 1],
        ["billing", 6, 9, since + 2],
        ["billing", -1, 0, since + 3],
        ["audit", -1, 2, since + 4],
      ],
    );
    assert.deepEqual(state(follower, ["billing", "audit"]), {
      billing: [undefined, 0],
      audit: [undefined, 2],
    });
    since = leader.version;
    assert.deepEqual(leader.changesSince(since), { changes: [], snapshot: false });
  });

  it("a follower that becomes leader enforces the fences it received and numbers after them", async () => {
    const follower = await open(await tempDir());
    await follower.apply([{ group: "billing", offset: 5, fence: 7, version: 40 }], 40, true);
    await assert.rejects(follower.commit("billing", 6, 3), FencedMemberError);
    assert.equal(await follower.commit("billing", 6, 7), 41);
    const delta = follower.changesSince(40);
    assert.equal(delta.snapshot, false);
    assert.deepEqual(
      delta.changes.map(({ group, offset, fence, version }) => [group, offset, fence, version]),
      [["billing", 6, 7, 41]],
    );
    // Changes from before this leadership are not kept: a replica further behind gets the whole table.
    assert.equal(follower.changesSince(39).snapshot, true);
  });
});
