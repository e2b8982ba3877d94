import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { encodeFrame, frameSize, type AppendRecord } from "../src/storage/record-format.js";
import { NATIVE_MIN_BYTES, crc32c, crc32cNative, crc32cPortable } from "../src/storage/crc32c.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { ratioSpread, spread } from "./lib/stats.js";
import { fmtBytes, fmtSpread, type Table } from "./lib/table.js";

const SIZES = [64, 128, 256, 512, 1024, 4096, 65_536, 1_048_576];
/** Bytes checksummed per timed sample: long enough to dwarf the timer, short enough for many reps. */
const BYTES_PER_SAMPLE = 64 * 1024 * 1024;

type Checksum = (data: Uint8Array) => number;

/** MB/s of `fn` over `data`, one timed sample after a warm-up. */
function throughput(fn: Checksum, data: Uint8Array): number {
  const iterations = Math.max(16, Math.floor(BYTES_PER_SAMPLE / data.length));
  let sink = 0;
  for (let i = 0; i < Math.min(iterations, 1000); i++) sink ^= fn(data);
  const started = performance.now();
  for (let i = 0; i < iterations; i++) sink ^= fn(data);
  const ms = performance.now() - started;
  if (sink === 0.5) throw new Error("unreachable: keeps the loop from being optimised away");
  return (data.length * iterations) / (ms * 1000);
}

/**
 * The record checksum, portable JavaScript against the native `@node-rs/crc32`, measured alternately
 * in one process so both see the same machine load; plus the dispatching `crc32c` the storage uses.
 */
export const crcBenchmark: Benchmark = {
  name: "crc",
  description: "CRC32C: portable JavaScript vs native @node-rs/crc32, by input size (≈ 10 s)",
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const native = crc32cNative;
    if (native === undefined) throw new Error("@node-rs/crc32 is not installed for this platform");
    const reps = ctx.quick ? 3 : Math.max(ctx.reps, 7);
    const rows: string[][] = [];
    const data: Record<string, { portable: number[]; native: number[]; dispatch: number[] }> = {};
    for (const size of SIZES) {
      const input = randomBytes(size);
      const runs = { portable: [] as number[], native: [] as number[], dispatch: [] as number[] };
      for (let r = 0; r < reps; r++) {
        runs.portable.push(throughput((d) => crc32cPortable(d), input));
        runs.native.push(throughput((d) => native(d), input));
        runs.dispatch.push(throughput((d) => crc32c(d), input));
      }
      data[String(size)] = runs;
      ctx.log(`crc ${fmtBytes(size)} done`);
      rows.push([
        fmtBytes(size),
        fmtSpread(spread(runs.portable)),
        fmtSpread(spread(runs.native)),
        fmtSpread(ratioSpread(runs.native, runs.portable), 3, "×"),
        `${fmtSpread(spread(runs.dispatch))} (${size >= NATIVE_MIN_BYTES ? "native" : "portable"})`,
      ]);
    }
    // What it means for a stored record: encodeFrame copies the payload into its frame and checksums it.
    const frameRows: string[][] = [];
    for (const size of [1024, 65_536]) {
      const record: AppendRecord = { payload: randomBytes(size) };
      const bytes = frameSize(record);
      if (typeof bytes === "string") throw new Error(bytes);
      const frame = Buffer.alloc(bytes);
      const encode = (): number => encodeFrame(frame, 0, record, 7, 1_700_000_000_000);
      const samples: number[] = [];
      for (let r = 0; r < reps; r++) samples.push(throughput(() => encode(), record.payload));
      frameRows.push([fmtBytes(size), fmtSpread(spread(samples))]);
    }
    const tables: Table[] = [
      {
        title: "CRC32C throughput, MB/s (median (min–max) of alternating samples in one process)",
        columns: ["input", "portable JS", "native", "native / portable", "crc32c() as used by storage"],
        rows,
      },
      {
        title: "encodeFrame (payload copy + CRC32C), MB/s of payload, with the storage's crc32c()",
        columns: ["payload", "MB/s"],
        rows: frameRows,
      },
    ];
    return {
      tables,
      settings: { sizes: SIZES, reps, bytesPerSample: BYTES_PER_SAMPLE, nativeMinBytes: NATIVE_MIN_BYTES },
      data,
      notes: [
        `inputs of ${NATIVE_MIN_BYTES} B and more go to native code; shorter ones stay portable (crossing into native code costs more than it saves)`,
      ],
    };
  },
};
