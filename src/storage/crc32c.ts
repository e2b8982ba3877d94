/**
 * CRC32C (Castagnoli), the checksum of every stored record and index file.
 *
 * Node 20 has no built-in. `@node-rs/crc32` (an optional dependency with prebuilt binaries, using the
 * CPU's CRC32 instruction where there is one) is ~2.7× the portable slicing-by-16 on 64 KiB; below a
 * few hundred bytes the cost of crossing into native code eats the gain, so short inputs stay in
 * JavaScript. Where the package is missing (an unsupported platform, `npm install --omit=optional`) the
 * portable code does everything. `npm run bench -- crc` measures both side by side.
 */
import { createRequire } from "node:module";
import { crc32cPortable } from "./crc32c-portable.js";

/** `crc32c(data, previous)` of `@node-rs/crc32`: continues a checksum like ours does. */
type NativeCrc32c = (data: Uint8Array, initialState?: number) => number;

/** Inputs at least this long go to native code (the crossover measured by `npm run bench -- crc`). */
export const NATIVE_MIN_BYTES = 256;

function loadNative(): NativeCrc32c | undefined {
  try {
    const loaded = createRequire(import.meta.url)("@node-rs/crc32") as { crc32c?: unknown };
    return typeof loaded.crc32c === "function" ? (loaded.crc32c as NativeCrc32c) : undefined;
  } catch {
    return undefined;
  }
}

/** The native checksum, when its package is installed for this platform. */
export const crc32cNative: NativeCrc32c | undefined = loadNative();

/** Which implementation long inputs use, for start-up logs and benchmarks. */
export const CRC32C_IMPLEMENTATION: "native" | "portable" = crc32cNative ? "native" : "portable";

export { crc32cPortable };

/**
 * The CRC32C of `data[start, end)`, as an unsigned 32-bit number. Pass a previous result as `crc` to
 * continue a checksum over several pieces.
 */
export function crc32c(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  if (crc32cNative === undefined || end - start < NATIVE_MIN_BYTES) {
    return crc32cPortable(data, start, end, crc);
  }
  const range = start === 0 && end === data.length ? data : data.subarray(start, end);
  return crc32cNative(range, crc) >>> 0;
}
