/**
 * syncfs(2) for Node, which has fsync per file only: a small shell started once per broker runs
 * coreutils' `sync --file-system DIR` each time it reads a line and answers with one line, "ok" or
 * "error <message>". The broker's event loop only writes and reads a line per sync; the fork, the
 * exec and the sync itself happen in the helper.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { StorageError } from "./errors.js";
import { VolumeSyncUnavailableError } from "./volume-sync.js";

const SCRIPT = [
  "while read -r _; do",
  '  if out=$(sync --file-system -- "$1" 2>&1); then echo ok;',
  '  else printf "error %s\\n" "$(printf %s "$out" | tr "\\n" " ")"; fi',
  "done",
].join("\n");

interface Pending {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class SyncfsHelper {
  readonly #dir: string;
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #pending: Pending[] = [];
  #buffered = "";
  #gone: Error | undefined;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#child = spawn("sh", ["-c", SCRIPT, "goulette-syncfs", dir], {
      stdio: ["pipe", "pipe", "ignore"],
    });
    this.#child.stdout.setEncoding("utf8");
    this.#child.stdout.on("data", (chunk: string) => this.#onOutput(chunk));
    this.#child.on("error", (err) => this.#fail(err));
    this.#child.on("exit", (code, signal) =>
      this.#fail(new Error(`the helper exited (${signal ?? `code ${String(code)}`})`)),
    );
    this.#child.stdin.on("error", (err) => this.#fail(err));
  }

  /**
   * Starts the helper and syncs once, so a machine without `sh` or a `sync` that cannot sync a
   * filesystem is found at start: rejects then, and the caller keeps per-file fsyncs.
   */
  static async start(dir: string): Promise<SyncfsHelper> {
    const helper = new SyncfsHelper(dir);
    try {
      await helper.sync();
    } catch (err) {
      helper.close();
      throw err;
    }
    return helper;
  }

  /**
   * Resolves once the filesystem holding the directory is synced. Rejects with a StorageError when
   * the sync reported an error (an I/O error: unsynced data is in doubt), and with a
   * VolumeSyncUnavailableError when the helper is gone.
   */
  sync(): Promise<void> {
    if (this.#gone) return Promise.reject(this.#unavailable(this.#gone));
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#child.stdin.write("\n");
    });
  }

  /** Ends the helper (its shell exits when its input closes). */
  close(): void {
    if (this.#gone) return;
    this.#gone = new Error("the helper was closed");
    this.#child.stdin.end();
    this.#rejectAll(this.#gone);
  }

  #onOutput(chunk: string): void {
    this.#buffered += chunk;
    let newline: number;
    while ((newline = this.#buffered.indexOf("\n")) >= 0) {
      const line = this.#buffered.slice(0, newline);
      this.#buffered = this.#buffered.slice(newline + 1);
      const waiter = this.#pending.shift();
      if (!waiter) continue;
      if (line === "ok") waiter.resolve();
      else {
        const reported = new Error(line.replace(/^error /, "") || "sync reported an error");
        waiter.reject(new StorageError(`sync of the filesystem holding ${this.#dir} failed`, reported));
      }
    }
  }

  #fail(err: Error): void {
    this.#gone ??= err;
    this.#rejectAll(this.#gone);
  }

  #rejectAll(err: Error): void {
    for (const waiter of this.#pending.splice(0)) waiter.reject(this.#unavailable(err));
  }

  #unavailable(cause: Error): VolumeSyncUnavailableError {
    return new VolumeSyncUnavailableError(
      `cannot sync the filesystem holding ${this.#dir}: ${cause.message}`,
      { cause },
    );
  }
}
