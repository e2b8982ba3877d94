import { constants as fsConstants, writeSync, writevSync } from "node:fs";
import { mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

/**
 * The few file operations the storage engine uses. The default is the real file system; tests wrap it
 * to inject failures (ENOSPC on a write, EIO on an fsync) that chmod cannot produce when running as root.
 */
export interface StorageFileSystem {
  /** "create" makes a new empty file (failing if it exists); "read-write" opens an existing one. */
  open(path: string, mode: "create" | "read-write" | "read"): Promise<StorageFile>;
  /** Entry names of a directory. */
  readdir(dir: string): Promise<string[]>;
  mkdir(dir: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Makes a directory's entries (created, renamed, deleted files) durable. */
  syncDir(dir: string): Promise<void>;
}

/** An open file: positional reads and writes, so concurrent readers never race on a file cursor. */
export interface StorageFile {
  readonly path: string;
  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; returns the count read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Writes up to `length` bytes; may write fewer (the caller loops). */
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Gathered write of `buffers` in order at `position` (pwritev); may write fewer bytes (the caller loops). */
  writev(buffers: readonly Uint8Array[], position: number): Promise<number>;
  truncate(length: number): Promise<void>;
  /** fdatasync: the data and the size are durable. */
  datasync(): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Writes up to this size go straight to the page cache from the event loop (pwrite/pwritev, tens of µs)
 * instead of through libuv's thread pool: the pool's hand-over (queue a job, wake a worker thread, wake
 * the loop when it is done) costs two context switches per write, and on a busy machine each waits for
 * a core — the largest single source of the end-to-end latency tail (docs/benchmarks.md, Tail latency).
 * Larger writes keep the pool, so a big copy never stalls the loop. fsyncs always use the pool.
 */
export const SYNC_WRITE_MAX_BYTES = 64 * 1024;

class NodeFile implements StorageFile {
  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, offset, length, position);
    return bytesRead;
  }

  async write(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (length <= SYNC_WRITE_MAX_BYTES) return writeSync(this.handle.fd, buffer, offset, length, position);
    const { bytesWritten } = await this.handle.write(buffer, offset, length, position);
    return bytesWritten;
  }

  async writev(buffers: readonly Uint8Array[], position: number): Promise<number> {
    let total = 0;
    for (const b of buffers) total += b.byteLength;
    if (total <= SYNC_WRITE_MAX_BYTES) return writevSync(this.handle.fd, buffers, position);
    const { bytesWritten } = await this.handle.writev(buffers, position);
    return bytesWritten;
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

const MODE_FLAGS = {
  create: fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL,
  "read-write": fsConstants.O_RDWR,
  read: fsConstants.O_RDONLY,
} as const;

/** The real file system (node:fs/promises). */
export const nodeFileSystem: StorageFileSystem = {
  async open(path, mode) {
    return new NodeFile(path, await open(path, MODE_FLAGS[mode], 0o644));
  },
  readdir: (dir) => readdir(dir),
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  unlink: (path) => unlink(path),
  rename: (from, to) => rename(from, to),
  async syncDir(dir) {
    const handle = await open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};
