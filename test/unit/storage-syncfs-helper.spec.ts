import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { StorageError } from "../../src/storage/errors.js";
import { SyncfsHelper } from "../../src/storage/syncfs-helper.js";
import { VolumeSyncUnavailableError } from "../../src/storage/volume-sync.js";

describe("SyncfsHelper (a real shell running coreutils' sync --file-system)", () => {
  it("syncs the filesystem of a directory, one answer per request, in order", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "goulette-syncfs-"));
    const helper = await SyncfsHelper.start(dir);
    try {
      await Promise.all([helper.sync(), helper.sync(), helper.sync()]);
    } finally {
      helper.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a sync the filesystem refuses is a StorageError naming the directory; the helper keeps serving", async () => {
    const parent = await mkdtemp(path.join(tmpdir(), "goulette-syncfs-"));
    const dir = path.join(parent, "data");
    await mkdir(dir);
    const helper = await SyncfsHelper.start(dir);
    try {
      await rm(dir, { recursive: true });
      const err = await helper.sync().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof StorageError, String(err));
      assert.match(err.message, /sync of the filesystem holding .*data failed: .*data/);
      await mkdir(dir);
      await helper.sync();
    } finally {
      helper.close();
      await rm(parent, { recursive: true, force: true });
    }
  });

  it("once the helper is gone, a sync is refused as unavailable rather than failed", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "goulette-syncfs-"));
    const helper = await SyncfsHelper.start(dir);
    helper.close();
    await assert.rejects(helper.sync(), (err: unknown) => {
      assert.ok(err instanceof VolumeSyncUnavailableError, String(err));
      assert.match(err.message, /cannot sync the filesystem holding .*: the helper was closed/);
      return true;
    });
    await rm(dir, { recursive: true, force: true });
  });

  it("does not start for a directory that does not exist (the broker then fsyncs files)", async () => {
    const dir = path.join(tmpdir(), `goulette-syncfs-missing-${process.pid}-${Date.now()}`);
    await assert.rejects(SyncfsHelper.start(dir), StorageError);
  });
});
