import { readFileSync } from "node:fs";
import type { StorageFile, StorageFileSystem } from "./file-system.js";

/**
 * A bound on the files a broker keeps open: thousands of idle partitions must not hold thousands of
 * file descriptors. Files opened through `fileSystem()` are handles that open their file on first use
 * and may be closed again when they have been the least recently used for a while (more than
 * `maxOpen` open at once); the next operation reopens them. A file in use (an operation running, or
 * pinned by a reader) is never closed under it, so the bound can be exceeded while that many are busy.
 */
export class OpenFileCache {
  readonly #lru = new Lru<CachedFile>();
  #opens = 0;

  constructor(readonly maxOpen: number) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) {
      throw new RangeError(`the open file bound must be a positive integer, got ${maxOpen}`);
    }
  }

  /** Files open now. */
  get openCount(): number {
    return this.#lru.size;
  }

  /** Times a file was (re)opened: a count that climbs under steady load says the bound is too low. */
  get opens(): number {
    return this.#opens;
  }

  /** `base` with every opened file going through this cache. */
  fileSystem(base: StorageFileSystem): StorageFileSystem {
    return {
      ...base,
      open: async (path, mode) => {
        const file = await base.open(path, mode);
        // Opened files are reopened with the same access, but never created again ("create" is O_EXCL).
        const reopenMode = mode === "read" ? "read" : "read-write";
        const cached = new CachedFile(path, file, () => base.open(path, reopenMode), this);
        this.#opened(cached);
        return cached;
      },
    };
  }

  /** @internal a file was opened (or reopened): it is the most recently used; older ones may close. */
  opened(file: CachedFile): void {
    this.#opened(file);
  }

  /**
   * Closes the files nobody used for `idleMs` or more (not those in use): a partition that went quiet
   * holds no descriptor, however high the bound. The number closed.
   */
  closeIdle(idleMs: number, now = performance.now()): number {
    const victims = this.#lru.takeOldest(
      (file) => now - file.usedAt >= idleMs,
      (file) => file.busy,
    );
    for (const victim of victims) victim.evict();
    return victims.length;
  }

  /** @internal */
  used(file: CachedFile): void {
    file.usedAt = performance.now();
    this.#lru.touch(file);
  }

  /** @internal */
  forget(file: CachedFile): void {
    this.#lru.delete(file);
  }

  #opened(file: CachedFile): void {
    this.#opens++;
    file.usedAt = performance.now();
    this.#lru.touch(file);
    for (const victim of this.#lru.overflow(this.maxOpen, (f) => f.busy)) victim.evict();
  }
}

/**
 * Least-recently-used order over a set of items: `touch` makes one the newest, `overflow` names the
 * oldest ones (skipping those `busy` says are in use) to drop so at most `max` remain, and drops them.
 */
export class Lru<T> {
  readonly #items = new Set<T>();

  get size(): number {
    return this.#items.size;
  }

  touch(item: T): void {
    this.#items.delete(item);
    this.#items.add(item);
  }

  delete(item: T): void {
    this.#items.delete(item);
  }

  overflow(max: number, busy: (item: T) => boolean): T[] {
    const victims: T[] = [];
    let excess = this.#items.size - max;
    if (excess <= 0) return victims;
    for (const item of this.#items) {
      if (excess <= 0) break;
      if (busy(item)) continue;
      victims.push(item);
      excess--;
    }
    for (const item of victims) this.#items.delete(item);
    return victims;
  }

  /** Drops and names the oldest items for as long as `stale` holds (busy ones stay where they are). */
  takeOldest(stale: (item: T) => boolean, busy: (item: T) => boolean): T[] {
    const victims: T[] = [];
    for (const item of this.#items) {
      if (!stale(item)) break;
      if (!busy(item)) victims.push(item);
    }
    for (const item of victims) this.#items.delete(item);
    return victims;
  }
}

/** A file handle that may be closed by the cache between operations and is reopened on the next one. */
class CachedFile implements StorageFile {
  #file: StorageFile | undefined;
  #opening: Promise<StorageFile> | undefined;
  /** Operations running plus pins. */
  #users = 0;
  /** performance.now() at the last use (set by the cache; the LRU order follows it). */
  usedAt = 0;
  #closed = false;

  constructor(
    readonly path: string,
    file: StorageFile,
    private readonly reopen: () => Promise<StorageFile>,
    private readonly cache: OpenFileCache,
  ) {
    this.#file = file;
  }

  get busy(): boolean {
    return this.#users > 0 || this.#opening !== undefined;
  }

  /** Keeps the file open until unpin() (a reader that must not see it closed and deleted under it). */
  pin(): void {
    this.#users++;
  }

  unpin(): void {
    this.#users--;
  }

  /** Called by the cache: close the descriptor now; the next operation reopens it. */
  evict(): void {
    const file = this.#file;
    this.#file = undefined;
    void file?.close().catch(() => undefined);
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.#use((f) => f.read(buffer, offset, length, position));
  }

  write(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.#use((f) => f.write(buffer, offset, length, position));
  }

  writev(buffers: readonly Uint8Array[], position: number): Promise<number> {
    return this.#use((f) => f.writev(buffers, position));
  }

  truncate(length: number): Promise<void> {
    return this.#use((f) => f.truncate(length));
  }

  datasync(): Promise<void> {
    return this.#use((f) => f.datasync());
  }

  size(): Promise<number> {
    return this.#use((f) => f.size());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.cache.forget(this);
    const file = this.#file ?? (await this.#opening?.catch(() => undefined));
    this.#file = undefined;
    await file?.close();
  }

  async #use<T>(operation: (file: StorageFile) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error(`${this.path} is closed`);
    this.#users++;
    try {
      return await operation(await this.#open());
    } finally {
      this.#users--;
    }
  }

  async #open(): Promise<StorageFile> {
    if (this.#file !== undefined) {
      this.cache.used(this);
      return this.#file;
    }
    this.#opening ??= this.reopen().then(
      (file) => {
        this.#opening = undefined;
        if (this.#closed) {
          void file.close().catch(() => undefined);
          throw new Error(`${this.path} is closed`);
        }
        this.#file = file;
        this.cache.opened(this);
        return file;
      },
      (err: unknown) => {
        this.#opening = undefined;
        throw err;
      },
    );
    return this.#opening;
  }
}

/** Pins a file of `fileSystem()` open (see CachedFile.pin); a no-op for other files. */
export function pinFile(file: StorageFile): void {
  if (file instanceof CachedFile) file.pin();
}

export function unpinFile(file: StorageFile): void {
  if (file instanceof CachedFile) file.unpin();
}

/** The bound without a configured one and without a readable process limit. */
export const FALLBACK_MAX_OPEN_FILES = 1024;

/** The open segment files a broker may keep by default, from this process's own limit. */
export function defaultMaxOpenFiles(): number {
  return maxOpenFilesFor(softOpenFileLimit());
}

/**
 * Half the soft open-file limit (the other half is for sockets, etcd and the runtime), between 64 and
 * 65,536. A bound far below the partitions written at once makes every write reopen its file; one
 * above the limit makes opens fail with EMFILE.
 */
export function maxOpenFilesFor(softLimit: number | undefined): number {
  if (softLimit === undefined) return FALLBACK_MAX_OPEN_FILES;
  if (!Number.isFinite(softLimit)) return 65_536;
  return Math.max(64, Math.min(65_536, Math.floor(softLimit / 2)));
}

/** This process's soft RLIMIT_NOFILE (Linux: /proc/self/limits); Infinity when unlimited. */
export function softOpenFileLimit(limits?: string): number | undefined {
  let text = limits;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return undefined; // not Linux: the fallback
    }
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (soft === undefined) return undefined;
  if (soft === "unlimited") return Infinity;
  const value = Number(soft);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
