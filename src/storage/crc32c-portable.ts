/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) in portable JavaScript: the fallback where the
 * native implementation (crc32c.ts) is not installed, and the faster one for short inputs. Table-driven: slicing-by-16 with 32-bit little-endian word loads
 * (a DataView) for long inputs (~1.3–1.5× the slicing-by-8 byte loop on 64 KiB payloads), slicing-by-8
 * with byte loads for short ones (no DataView to allocate per call).
 */

const POLYNOMIAL = 0x82f63b78;

const TABLES: Int32Array[] = buildTables();

function buildTables(): Int32Array[] {
  const tables: Int32Array[] = [];
  const first = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    first[n] = c;
  }
  tables.push(first);
  for (let t = 1; t < 16; t++) {
    const previous = tables[t - 1] as Int32Array;
    const table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      const p = previous[n] as number;
      table[n] = (p >>> 8) ^ (first[p & 0xff] as number);
    }
    tables.push(table);
  }
  return tables;
}

type Table = Int32Array;
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15] = TABLES as [
  ...[Table, Table, Table, Table, Table, Table, Table, Table],
  ...[Table, Table, Table, Table, Table, Table, Table, Table],
];

/** Below this many bytes the byte loop wins: a DataView per call costs more than word loads save. */
const WORD_LOOP_MIN_BYTES = 256;

/**
 * The CRC32C of `data[start, end)`, as an unsigned 32-bit number. Pass a previous result as `crc` to
 * continue a checksum over several pieces.
 */
export function crc32cPortable(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  if (end - start >= WORD_LOOP_MIN_BYTES) return crc32cWords(data, start, end, crc);
  let c = ~crc;
  let i = start;
  // The tables are indexed by values masked to 0..255, so the lookups are always in bounds; the `as
  // number` casts only satisfy noUncheckedIndexedAccess without a per-byte branch.
  const stop8 = end - ((end - start) & 7);
  while (i < stop8) {
    const lo =
      c ^
      ((data[i] as number) |
        ((data[i + 1] as number) << 8) |
        ((data[i + 2] as number) << 16) |
        ((data[i + 3] as number) << 24));
    c =
      (T7[lo & 0xff] as number) ^
      (T6[(lo >>> 8) & 0xff] as number) ^
      (T5[(lo >>> 16) & 0xff] as number) ^
      (T4[lo >>> 24] as number) ^
      (T3[data[i + 4] as number] as number) ^
      (T2[data[i + 5] as number] as number) ^
      (T1[data[i + 6] as number] as number) ^
      (T0[data[i + 7] as number] as number);
    i += 8;
  }
  while (i < end) {
    c = (T0[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}

/** Slicing-by-16 over little-endian 32-bit words (any alignment), then the byte loop for the tail. */
function crc32cWords(data: Uint8Array, start: number, end: number, crc: number): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let c = ~crc;
  let i = start;
  const stop16 = end - ((end - start) & 15);
  while (i < stop16) {
    const a = c ^ view.getInt32(i, true);
    const b = view.getInt32(i + 4, true);
    const d = view.getInt32(i + 8, true);
    const e = view.getInt32(i + 12, true);
    c =
      (T15[a & 0xff] as number) ^
      (T14[(a >>> 8) & 0xff] as number) ^
      (T13[(a >>> 16) & 0xff] as number) ^
      (T12[a >>> 24] as number) ^
      (T11[b & 0xff] as number) ^
      (T10[(b >>> 8) & 0xff] as number) ^
      (T9[(b >>> 16) & 0xff] as number) ^
      (T8[b >>> 24] as number) ^
      (T7[d & 0xff] as number) ^
      (T6[(d >>> 8) & 0xff] as number) ^
      (T5[(d >>> 16) & 0xff] as number) ^
      (T4[d >>> 24] as number) ^
      (T3[e & 0xff] as number) ^
      (T2[(e >>> 8) & 0xff] as number) ^
      (T1[(e >>> 16) & 0xff] as number) ^
      (T0[e >>> 24] as number);
    i += 16;
  }
  while (i < end) {
    c = (T0[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}
