/**
 * A preload (`node --import …/node-preload.js goulette broker|sentinel --id X …`) that lets the nemesis
 * inject faults into a node without any hook in src/: it reads `$GOULETTE_NEMESIS_DIR/<id>.json` (a
 * NodeControl, written by test/chaos/nemesis/node-control.ts) at start-up and again on every SIGUSR2.
 *
 * - **Clock steps**: Date.now() and `new Date()` are shifted by `clockOffsetMs` (performance.now() and
 *   timers are not: a wall-clock step, as NTP or an operator makes it).
 * - **Source address**: outgoing loopback connections leave from `sourceAddress` (127.0.0.1x), so a
 *   TCP proxy in front of another broker can cut this broker off while letting every other client in.
 * - **Lost unsynced writes** (`lazyFs`), in the spirit of LazyFS: the storage file system
 *   (src/storage/file-system.ts, patched in place) records per file the length made durable by the last
 *   fdatasync. `powerLoss` writes that ledger to `<id>.durable.json` and SIGKILLs the process in the same
 *   turn of the event loop; the nemesis then cuts each file to its durable length — a power loss that
 *   drops every append the process had not seen fsynced. (Overwrites in place are not rolled back; the
 *   log only appends.)
 */
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { nodeFileSystem, type StorageFile } from "../../../src/storage/file-system.js";

export interface NodeControl {
  clockOffsetMs?: number;
  sourceAddress?: string;
  lazyFs?: boolean;
  powerLoss?: boolean;
}

const dir = process.env.GOULETTE_NEMESIS_DIR;
const idAt = process.argv.indexOf("--id");
const id = idAt >= 0 ? process.argv[idAt + 1] : undefined;

if (dir && id) install(dir, id);

function install(controlDir: string, nodeId: string): void {
  const controlFile = path.join(controlDir, `${nodeId}.json`);
  const read = (): NodeControl => {
    try {
      return JSON.parse(readFileSync(controlFile, "utf8")) as NodeControl;
    } catch {
      return {};
    }
  };
  const initial = read();
  const clock = installClock();
  clock.set(initial.clockOffsetMs ?? 0);
  if (initial.sourceAddress) installSourceAddress(initial.sourceAddress);
  const ledger = initial.lazyFs ? installLazyFs() : undefined;
  process.on("SIGUSR2", () => {
    const control = read();
    clock.set(control.clockOffsetMs ?? 0);
    if (control.powerLoss && ledger) {
      writeFileSync(
        path.join(controlDir, `${nodeId}.durable.json`),
        JSON.stringify(Object.fromEntries(ledger)),
      );
      process.kill(process.pid, "SIGKILL");
    }
  });
}

function installClock(): { set(offsetMs: number): void } {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  let offset = 0;
  class ShiftedDate extends RealDate {
    constructor(...args: [] | [string | number | Date]) {
      if (args.length === 0) super(realNow() + offset);
      else super(args[0]);
    }
    static override now(): number {
      return realNow() + offset;
    }
  }
  globalThis.Date = ShiftedDate as DateConstructor;
  return {
    set(offsetMs) {
      offset = offsetMs;
    },
  };
}

function installSourceAddress(source: string): void {
  type Connect = (this: net.Socket, ...args: unknown[]) => net.Socket;
  const proto = net.Socket.prototype as unknown as { connect: Connect };
  const original = proto.connect;
  proto.connect = function connect(this: net.Socket, ...args: unknown[]) {
    // net.connect() passes its normalised [options, callback] array as the first argument.
    const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    if (first && typeof first === "object") {
      const options = first as { host?: string; path?: string; localAddress?: string };
      const host = options.host ?? "localhost";
      if (!options.path && !options.localAddress && (host.startsWith("127.") || host === "localhost"))
        options.localAddress = source;
    }
    return original.apply(this, args);
  };
}

/** Patches nodeFileSystem; returns the ledger path → durable length it keeps. */
function installLazyFs(): Map<string, number> {
  const durable = new Map<string, number>();
  const written = new Map<string, number>();
  const base = { ...nodeFileSystem };
  const track = (file: StorageFile): StorageFile => {
    const p = file.path;
    const grew = (end: number) => written.set(p, Math.max(written.get(p) ?? 0, end));
    return {
      path: p,
      read: (buffer, offset, length, position) => file.read(buffer, offset, length, position),
      async write(buffer, offset, length, position) {
        const n = await file.write(buffer, offset, length, position);
        grew(position + n);
        return n;
      },
      async writev(buffers, position) {
        const n = await file.writev(buffers, position);
        grew(position + n);
        return n;
      },
      async truncate(length) {
        await file.truncate(length);
        written.set(p, length);
        durable.set(p, Math.min(durable.get(p) ?? 0, length));
      },
      async datasync() {
        const mark = written.get(p) ?? 0;
        await file.datasync();
        if (durable.has(p)) durable.set(p, Math.max(durable.get(p) ?? 0, mark));
      },
      size: () => file.size(),
      close: () => file.close(),
    };
  };
  nodeFileSystem.open = async (p, mode) => {
    const file = await base.open(p, mode);
    if (mode === "read") return file;
    if (!durable.has(p)) {
      // A new file holds nothing durable yet; an existing one is durable as found (the nemesis cut it
      // to its durable length before this process started).
      const size = mode === "create" ? 0 : await file.size();
      durable.set(p, size);
      written.set(p, size);
    }
    return track(file);
  };
  nodeFileSystem.unlink = async (p) => {
    await base.unlink(p);
    durable.delete(p);
    written.delete(p);
  };
  nodeFileSystem.rename = async (from, to) => {
    await base.rename(from, to);
    for (const map of [durable, written]) {
      const v = map.get(from);
      map.delete(from);
      if (v !== undefined) map.set(to, v);
    }
  };
  return durable;
}
