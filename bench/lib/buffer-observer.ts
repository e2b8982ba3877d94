/**
 * Loaded with `node --import` into a process under study: counts the bytes of every Buffer of 4 KiB or
 * more that JavaScript allocates (`Buffer.alloc`, `allocUnsafe`, `allocUnsafeSlow`; `Buffer.concat` and
 * most of Node's own copies go through `allocUnsafe`), by call site, and every 4 s appends the largest sites to `$GOULETTE_BUFFER_REPORT_DIR/buffers-<pid>.jsonl`.
 * Such buffers live outside the JS heap, and V8 starts a full GC after each few tens of MB of them: the
 * sites say who drives those GCs. Buffers Node allocates natively (a socket read's) are not seen.
 * A diagnostic: it wraps Buffer's static methods, which costs a stack trace per large allocation.
 */
import { appendFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.GOULETTE_BUFFER_REPORT_DIR;
const MIN_BYTES = 4096;
const FRAMES = 3;

interface Site {
  count: number;
  bytes: number;
}

if (dir !== undefined) {
  const file = path.join(dir, `buffers-${process.pid}.jsonl`);
  let sites = new Map<string, Site>();
  const note = (bytes: number) => {
    if (bytes < MIN_BYTES) return;
    // Skip this function and the wrapper: the caller's frames name the site.
    const frames = (new Error().stack ?? "").split("\n").slice(3, 3 + FRAMES);
    const site = frames
      .map((l) =>
        l
          .trim()
          .replace(/^at /, "")
          .replace(/\(file:\/\/.*?\/dist\//, "("),
      )
      .join(" < ");
    const s = sites.get(site) ?? { count: 0, bytes: 0 };
    s.count++;
    s.bytes += bytes;
    sites.set(site, s);
  };
  const wrap = (name: "alloc" | "allocUnsafe" | "allocUnsafeSlow") => {
    const original = Buffer[name] as (size: number, ...rest: unknown[]) => Buffer;
    Object.defineProperty(Buffer, name, {
      value: (size: number, ...rest: unknown[]) => {
        note(size);
        return original.call(Buffer, size, ...rest);
      },
    });
  };
  wrap("alloc");
  wrap("allocUnsafe");
  wrap("allocUnsafeSlow");
  setInterval(() => {
    const top = [...sites].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 10);
    sites = new Map();
    appendFileSync(file, `${JSON.stringify({ at: Date.now(), sites: Object.fromEntries(top) })}\n`);
  }, 4_000).unref();
}
