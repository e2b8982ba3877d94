import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { SYNC_WRITE_MAX_BYTES, nodeFileSystem } from "../../src/storage/file-system.js";

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Position-dependent bytes, so a misplaced piece cannot compare equal. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe("nodeFileSystem writes", () => {
  // Small writes run on the event loop, larger ones in the thread pool: both must land where asked.
  for (const size of [1, 1024, SYNC_WRITE_MAX_BYTES, SYNC_WRITE_MAX_BYTES + 1, 4 * SYNC_WRITE_MAX_BYTES]) {
    it(`write and writev of ${size} bytes land at their position`, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-fs-"));
      dirs.push(dir);
      const file = await nodeFileSystem.open(path.join(dir, "f"), "create");
      try {
        const first = bytes(size, 1);
        assert.equal(await file.write(first, 0, size, 0), size);
        const a = bytes(Math.ceil(size / 2), 2);
        const b = bytes(Math.floor(size / 2), 3);
        assert.equal(await file.writev([a, b], size), size);
        assert.equal(await file.size(), 2 * size);
      } finally {
        await file.close();
      }
      const written = await readFile(path.join(dir, "f"));
      assert.deepEqual(
        written,
        Buffer.concat([bytes(size, 1), bytes(Math.ceil(size / 2), 2), bytes(Math.floor(size / 2), 3)]),
      );
    });
  }

  it("a write to a closed file is refused, not lost silently", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "goulette-fs-"));
    dirs.push(dir);
    const file = await nodeFileSystem.open(path.join(dir, "f"), "create");
    await file.close();
    await assert.rejects(file.write(bytes(10, 1), 0, 10, 0));
  });
});
