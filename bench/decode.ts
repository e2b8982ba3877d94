import { performance } from "node:perf_hooks";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { decodeFetchResponse } from "../src/client/fetch-decoding.js";
import { FetchResponseSchema } from "../src/gen/goulette/v1/broker_pb.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { ratioSpread, spread } from "./lib/stats.js";
import { fmtBytes, fmtSpread } from "./lib/table.js";

/** Record sizes, with as many records per response as a broker puts in one (500, or 1 MiB of them). */
const SIZES = [100, 1024, 16_384, 65_536];
const RECORDS_PER_RESPONSE = 500;
const RESPONSE_BYTES = 1024 * 1024;
/** Records decoded per timed sample. */
const RECORDS_PER_SAMPLE = 400_000;

type Decode = (bytes: Uint8Array) => unknown;

/** A FetchResponse as a broker sends it: consecutive records of `size` bytes from one producer. */
function response(size: number): Uint8Array {
  const count = Math.max(1, Math.min(RECORDS_PER_RESPONSE, Math.floor(RESPONSE_BYTES / size)));
  const now = BigInt(Date.now());
  return toBinary(
    FetchResponseSchema,
    create(FetchResponseSchema, {
      topic: "orders",
      partition: 3,
      highWatermark: 1_000_000n,
      logStartOffset: 0n,
      messages: Array.from({ length: count }, (_, i) => ({
        offset: 500_000n + BigInt(i),
        timestamp: now,
        payload: new Uint8Array(size).fill(i & 0xff),
        producerId: "producer-1b7c",
        messageId: BigInt(i + 1),
      })),
    }),
  );
}

/** Records per second decoded by `decode`, one timed sample after a warm-up. */
function recordsPerSecond(decode: Decode, bytes: Uint8Array, records: number): number {
  const iterations = Math.max(8, Math.floor(RECORDS_PER_SAMPLE / records));
  let sink: unknown;
  for (let i = 0; i < Math.min(iterations, 200); i++) sink = decode(bytes);
  const started = performance.now();
  for (let i = 0; i < iterations; i++) sink = decode(bytes);
  const ms = performance.now() - started;
  if (sink === undefined) throw new Error("unreachable: keeps the loop from being optimised away");
  return (records * iterations * 1000) / ms;
}

/**
 * The consumer's decoding of fetched records: protobuf-es's `fromBinary` (reflection) against the
 * SDK's hand decoder (src/client/fetch-decoding.ts), alternating in one process.
 */
export const decodeBenchmark: Benchmark = {
  name: "decode",
  description:
    "FetchResponse decoding: protobuf-es fromBinary vs the SDK's hand decoder, by record size (≈ 10 s)",
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const reps = ctx.quick ? 3 : Math.max(ctx.reps, 7);
    const reflective: Decode = (b) => fromBinary(FetchResponseSchema, b, { readUnknownFields: false });
    const rows: string[][] = [];
    const data: Record<string, { fromBinary: number[]; hand: number[] }> = {};
    for (const size of SIZES) {
      const bytes = response(size);
      const records = decodeFetchResponse(bytes).messages.length;
      const runs = { fromBinary: [] as number[], hand: [] as number[] };
      for (let r = 0; r < reps; r++) {
        runs.fromBinary.push(recordsPerSecond(reflective, bytes, records));
        runs.hand.push(recordsPerSecond(decodeFetchResponse, bytes, records));
      }
      data[String(size)] = runs;
      ctx.log(`decode ${fmtBytes(size)} done`);
      rows.push([
        fmtBytes(size),
        String(records),
        fmtSpread(spread(runs.fromBinary.map((v) => v / 1e6)), 3),
        fmtSpread(spread(runs.hand.map((v) => v / 1e6)), 3),
        fmtSpread(ratioSpread(runs.hand, runs.fromBinary), 3, "×"),
      ]);
    }
    return {
      tables: [
        {
          title:
            "FetchResponse decoding, million records/s (median (min–max) of alternating samples in one process)",
          columns: ["record", "records per response", "fromBinary", "hand decoder", "hand / fromBinary"],
          rows,
        },
      ],
      settings: { sizes: SIZES, reps, recordsPerSample: RECORDS_PER_SAMPLE },
      data,
      notes: [
        "both give the same messages (test/unit/client-fetch-decoding.spec.ts); bytes fields are views",
      ],
    };
  },
};
