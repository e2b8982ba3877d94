import { nodeFileSystem, type StorageFile, type StorageFileSystem } from "./file-system.js";

/** One file system call, as seen by a fault hook. */
export interface FileOperation {
  kind:
    | "open"
    | "read"
    | "write"
    | "truncate"
    | "datasync"
    | "size"
    | "close"
    | "readdir"
    | "mkdir"
    | "unlink"
    | "rename"
    | "syncDir";
  path: string;
  /** Bytes asked for (read, write) or the new length (truncate). */
  length?: number;
  position?: number;
}

/** What to do with an operation: nothing (let it run), or fail it, for a write after `partialBytes`. */
export type FaultDecision = undefined | { error: Error; partialBytes?: number };

export interface FaultyFileSystemOptions {
  /** The file system that does the real work. Default: the node one. */
  base?: StorageFileSystem;
  /**
   * Called before every operation; may delay (return a promise) and decide a fault. A write failing
   * with `partialBytes` first writes that many bytes, like a disk filling up mid-write.
   */
  before: (op: FileOperation) => FaultDecision | Promise<FaultDecision>;
}

/** An Error shaped like a failed syscall (`code` = "ENOSPC", "EIO"...). */
export function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: simulated failure, ${syscall}`);
  err.code = code;
  err.syscall = syscall;
  return err;
}

/**
 * A StorageFileSystem that lets a test fail or stall chosen operations (ENOSPC on the third write,
 * EIO on an fsync, a slow fsync): the faults root cannot get from chmod.
 */
export function createFaultyFileSystem(options: FaultyFileSystemOptions): StorageFileSystem {
  const base = options.base ?? nodeFileSystem;
  const check = async (op: FileOperation): Promise<void> => {
    const decision = await options.before(op);
    if (decision !== undefined) throw decision.error;
  };
  const wrap = (file: StorageFile): StorageFile => ({
    path: file.path,
    async read(buffer, offset, length, position) {
      await check({ kind: "read", path: file.path, length, position });
      return file.read(buffer, offset, length, position);
    },
    async write(buffer, offset, length, position) {
      const decision = await options.before({ kind: "write", path: file.path, length, position });
      if (decision !== undefined) {
        const partial = Math.min(decision.partialBytes ?? 0, length);
        if (partial > 0) await file.write(buffer, offset, partial, position);
        throw decision.error;
      }
      return file.write(buffer, offset, length, position);
    },
    async writev(buffers, position) {
      // A fault sees a gathered write as one write of its total length, as the log issues it.
      const length = buffers.reduce((n, b) => n + b.length, 0);
      const decision = await options.before({ kind: "write", path: file.path, length, position });
      if (decision !== undefined) {
        let partial = Math.min(decision.partialBytes ?? 0, length);
        const head: Uint8Array[] = [];
        for (const b of buffers) {
          if (partial <= 0) break;
          head.push(b.subarray(0, Math.min(b.length, partial)));
          partial -= b.length;
        }
        if (head.length > 0) await file.writev(head, position);
        throw decision.error;
      }
      return file.writev(buffers, position);
    },
    async truncate(length) {
      await check({ kind: "truncate", path: file.path, length });
      return file.truncate(length);
    },
    async datasync() {
      await check({ kind: "datasync", path: file.path });
      return file.datasync();
    },
    async size() {
      await check({ kind: "size", path: file.path });
      return file.size();
    },
    async close() {
      await check({ kind: "close", path: file.path });
      return file.close();
    },
  });
  return {
    async open(path, mode) {
      await check({ kind: "open", path });
      return wrap(await base.open(path, mode));
    },
    async readdir(dir) {
      await check({ kind: "readdir", path: dir });
      return base.readdir(dir);
    },
    async mkdir(dir) {
      await check({ kind: "mkdir", path: dir });
      return base.mkdir(dir);
    },
    async unlink(path) {
      await check({ kind: "unlink", path });
      return base.unlink(path);
    },
    async rename(from, to) {
      await check({ kind: "rename", path: from });
      return base.rename(from, to);
    },
    async syncDir(dir) {
      await check({ kind: "syncDir", path: dir });
      return base.syncDir(dir);
    },
  };
}
