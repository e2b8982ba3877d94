import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { silentLogger } from "../../src/observability/logger.js";
import {
  FALLBACK_MAX_OPEN_FILES,
  Lru,
  OpenFileCache,
  defaultMaxOpenFiles,
  maxOpenFilesFor,
  pinFile,
  softOpenFileLimit,
  unpinFile,
} from "../../src/storage/file-cache.js";
import { nodeFileSystem, openPartitionLog } from "../../src/storage/index.js";

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-file-cache-"));
  dirs.push(dir);
  return dir;
}

/** Descriptors of this process that point into `dir`. */
async function openIn(dir: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir("/proc/self/fd")) {
    try {
      if ((await readlink(`/proc/self/fd/${fd}`)).startsWith(dir)) count++;
    } catch {
      // closed meanwhile
    }
  }
  return count;
}

describe("storage: LRU order", () => {
  it("drops the least recently used first, skipping busy ones", () => {
    const lru = new Lru<string>();
    for (const item of ["a", "b", "c", "d"]) lru.touch(item);
    lru.touch("a"); // a is now the newest: b, c, d, a
    assert.deepEqual(
      lru.overflow(2, (item) => item === "b"),
      ["c", "d"],
    );
    assert.equal(lru.size, 2);
    assert.deepEqual(
      lru.overflow(2, () => false),
      [],
      "nothing over the bound",
    );
  });
});

describe("storage: LRU staleness", () => {
  it("takes the oldest items while they are stale, leaving busy ones and stopping at the first fresh one", () => {
    const lru = new Lru<string>();
    for (const item of ["a", "b", "c", "d"]) lru.touch(item);
    const stale = new Set(["a", "b", "d"]); // d is stale but newer than c, which is not: d stays
    assert.deepEqual(
      lru.takeOldest(
        (item) => stale.has(item),
        (item) => item === "a",
      ),
      ["b"],
    );
    assert.equal(lru.size, 3, "a (busy), c and d remain");
  });
});

describe("storage: default bound on open segment files", () => {
  const limits = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units\n` +
    `Max processes             94226                94226                processes\n` +
    `Max open files            ${soft}                524288               files\n`;

  it("reads the soft open-file limit from /proc/self/limits", () => {
    assert.equal(softOpenFileLimit(limits("20000")), 20_000);
    assert.equal(softOpenFileLimit(limits("unlimited")), Infinity);
    assert.equal(softOpenFileLimit("no such line"), undefined);
    const own = softOpenFileLimit();
    assert.ok(own === undefined || own > 0, "this process's own limit reads as a number");
  });

  it("takes half the limit, between 64 and 65,536, and 1,024 when the limit is unknown", () => {
    assert.equal(maxOpenFilesFor(20_000), 10_000);
    assert.equal(maxOpenFilesFor(1_024), 512, "containerd 2's soft limit leaves room for sockets");
    assert.equal(maxOpenFilesFor(100), 64);
    assert.equal(maxOpenFilesFor(1_048_576), 65_536);
    assert.equal(maxOpenFilesFor(Infinity), 65_536);
    assert.equal(maxOpenFilesFor(undefined), FALLBACK_MAX_OPEN_FILES);
    assert.equal(defaultMaxOpenFiles(), maxOpenFilesFor(softOpenFileLimit()), "this process's own");
  });
});

describe("storage: open file cache", () => {
  it("closes files unused for the idle time, not pinned ones, and reopens them on use", async () => {
    const dir = await tempDir();
    const cache = new OpenFileCache(100);
    const fs = cache.fileSystem(nodeFileSystem);
    const quiet = await fs.open(path.join(dir, "quiet"), "create");
    await quiet.write(Buffer.from("quiet"), 0, 5, 0);
    const pinned = await fs.open(path.join(dir, "pinned"), "create");
    pinFile(pinned);
    const between = performance.now();
    const busy = await fs.open(path.join(dir, "busy"), "create");
    await busy.write(Buffer.from("busy"), 0, 4, 0);

    // Seen from `between`: quiet and pinned were last used before it (idle ≥ 0 ms), busy after it.
    assert.equal(cache.closeIdle(0, between), 1, "only the quiet file closes");
    assert.equal(cache.openCount, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await openIn(dir), 2, "its descriptor is gone");

    const opens = cache.opens;
    const buf = Buffer.alloc(8);
    const n = await quiet.read(buf, 0, buf.length, 0);
    assert.equal(buf.subarray(0, n).toString(), "quiet", "reopened on use, contents intact");
    assert.equal(cache.opens, opens + 1);
    assert.equal(cache.closeIdle(60_000), 0, "nothing was idle for a minute");
    unpinFile(pinned);
    await Promise.all([quiet.close(), pinned.close(), busy.close()]);
  });

  it("keeps at most maxOpen descriptors and reopens files on use, contents intact", async () => {
    const dir = await tempDir();
    const cache = new OpenFileCache(3);
    const fs = cache.fileSystem(nodeFileSystem);
    const files = [];
    for (let i = 0; i < 10; i++) {
      const file = await fs.open(path.join(dir, `f${i}`), "create");
      await file.write(Buffer.from(`file ${i}`), 0, `file ${i}`.length, 0);
      files.push(file);
    }
    assert.equal(cache.openCount, 3);
    // Eviction closes asynchronously; give the closes a moment to land, then count real descriptors.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok((await openIn(dir)) <= 3, "at most 3 descriptors into the directory");
    const opensBefore = cache.opens;
    for (let i = 0; i < 10; i++) {
      const buf = Buffer.alloc(16);
      const n: number = await (files[i] as (typeof files)[number]).read(buf, 0, buf.length, 0);
      assert.equal(buf.subarray(0, n).toString(), `file ${i}`);
    }
    assert.ok(cache.opens > opensBefore, "evicted files were reopened to be read");
    assert.equal(cache.openCount, 3);
    // Writes through a reopened handle land in the same file (never re-created: "create" is O_EXCL).
    const first = files[0] as (typeof files)[number];
    await first.write(Buffer.from("FILE"), 0, 4, 0);
    await first.datasync();
    assert.equal(await readFile(path.join(dir, "f0"), "utf8"), "FILE 0");
    await Promise.all(files.map((f) => f.close()));
    assert.equal(cache.openCount, 0);
    await assert.rejects(first.size(), /is closed/);
  });

  it("never closes a pinned file, even past the bound", async () => {
    const dir = await tempDir();
    const cache = new OpenFileCache(1);
    const fs = cache.fileSystem(nodeFileSystem);
    const a = await fs.open(path.join(dir, "a"), "create");
    pinFile(a);
    const b = await fs.open(path.join(dir, "b"), "create");
    assert.equal(cache.openCount, 1, "b went instead (a is pinned)");
    const opens = cache.opens;
    assert.equal(await a.size(), 0);
    assert.equal(cache.opens, opens, "a was still open");
    unpinFile(a);
    await Promise.all([a.close(), b.close()]);
  });

  it("a partition log works over far more segments than the bound", async () => {
    const dir = await tempDir();
    const cache = new OpenFileCache(2);
    const log = await openPartitionLog({
      dir,
      segmentBytes: 4096,
      fsync: "interval",
      logger: silentLogger(),
      fileSystem: cache.fileSystem(nodeFileSystem),
      tailCacheBytes: 0,
    });
    const payload = new Uint8Array(1000).fill(7);
    for (let i = 0; i < 40; i++) await log.append([{ payload }]);
    assert.ok(log.segments().length >= 10, `rolled into many segments (${log.segments().length})`);
    assert.ok(cache.openCount <= 2);
    const records = await log.read(0, 100, 1 << 20);
    assert.equal(records.length, 40);
    assert.deepEqual(
      records.map((r) => r.offset),
      Array.from({ length: 40 }, (_, i) => i),
    );
    await log.close();
  });
});
