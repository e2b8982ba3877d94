import v8 from "node:v8";
import { performance } from "node:perf_hooks";
import { createKeyspace, type Keyspace } from "../src/coordination/keyspace.js";
import { ClusterState } from "../src/fsm/state.js";
import { OplogStore } from "../src/oplog/oplog-store.js";
import type { Benchmark, BenchContext, BenchOutput } from "./lib/benchmark.js";
import { startEtcd, type BenchEtcd } from "./lib/etcd.js";
import { collectGarbage } from "./lib/gc.js";
import { fillOplog, type FillResult } from "./lib/oplog-fill.js";
import { recoverPlane, stopHangs, stopPlane } from "./lib/plane.js";
import { spread, type Spread } from "./lib/stats.js";
import { fmt, fmtBytes, fmtSpread, type Table } from "./lib/table.js";

const BROKERS = 30;
const PARTITIONS = 3;
const REPLICAS = 3;
const VIRTUAL_NODES = 150;
/** A broker joins every 5,000 operations and dies 200 operations later (its replicas are moved). */
const CHURN_EVERY = 5_000;
const CHURN_LIFETIME = 200;
/** Recovery of one size must finish within this (a stuck recovery is reported, not waited for). */
const RECOVERY_TIMEOUT_MS = 120_000;
/** The 1M-operation size runs only when its estimated duration stays below this. */
const MILLION_BUDGET_S = 120;

interface VariantResult {
  label: string;
  seconds: Spread;
  /** Heap held by the recovered state (after GC), bytes; measured on the first repetition. */
  stateHeapBytes?: number;
  error?: string;
  digestMatches?: boolean;
}

async function measureVariant(
  ctx: BenchContext,
  etcd: BenchEtcd,
  keys: Keyspace,
  fill: FillResult,
  expectedDigest: string,
  label: string,
): Promise<VariantResult> {
  const seconds: number[] = [];
  let stateHeapBytes: number | undefined;
  let digestMatches: boolean | undefined;
  for (let rep = 0; rep < ctx.reps; rep++) {
    collectGarbage();
    const heapBefore = process.memoryUsage().heapUsed;
    const { recovered, plane, client } = await recoverPlane(etcd, keys, {
      virtualNodes: VIRTUAL_NODES,
      timeoutMs: RECOVERY_TIMEOUT_MS,
    });
    try {
      if (recovered.error !== undefined) {
        ctx.log(`    ${label}: recovery FAILED: ${recovered.error}`);
        return { label, seconds: spread(seconds), error: recovered.error };
      }
      if (recovered.appliedId !== fill.operations) {
        throw new Error(`${label}: recovered to ${recovered.appliedId}, expected ${fill.operations}`);
      }
      if (rep === 0) {
        collectGarbage();
        stateHeapBytes = process.memoryUsage().heapUsed - heapBefore;
        digestMatches = plane.state.digest() === expectedDigest;
        if (!digestMatches) throw new Error(`${label}: recovered state differs from the written one`);
      }
      seconds.push(recovered.seconds);
    } finally {
      await stopPlane(plane, client, `recovery: ${label}`);
    }
  }
  ctx.log(`    ${label}: ${fmt(spread(seconds).median)} s`);
  return {
    label,
    seconds: spread(seconds),
    ...(stateHeapBytes !== undefined ? { stateHeapBytes } : {}),
    ...(digestMatches !== undefined ? { digestMatches } : {}),
  };
}

interface Breakdown {
  /** OplogStore.readAfter over the whole log: range reads + JSON decoding. */
  readDecode: Spread;
  /** ClusterState.apply of every decoded operation. */
  apply: Spread;
}

/** Where the time of a log-only recovery goes, step by step (the steps ControlPlane.#recoverOnce takes). */
async function breakdown(ctx: BenchContext, etcd: BenchEtcd, keys: Keyspace): Promise<Breakdown> {
  const client = etcd.client();
  const store = new OplogStore(client, keys);
  const read: number[] = [];
  const apply: number[] = [];
  try {
    for (let rep = 0; rep < ctx.reps; rep++) {
      collectGarbage();
      // Page by page, as #recoverOnce does: the time spent waiting for (and decoding) the next page is
      // reading, the time spent applying it is applying.
      const fresh = new ClusterState();
      let readMs = 0;
      let applyMs = 0;
      const pages = store.readAfter(0)[Symbol.asyncIterator]();
      for (;;) {
        let t0 = performance.now();
        const next = await pages.next();
        readMs += performance.now() - t0;
        if (next.done) break;
        t0 = performance.now();
        for (const op of next.value) fresh.apply(op);
        applyMs += performance.now() - t0;
      }
      read.push(readMs / 1000);
      apply.push(applyMs / 1000);
    }
  } finally {
    client.close();
  }
  return { readDecode: spread(read), apply: spread(apply) };
}

/** The snapshot path step by step: read + verify + parse (OplogStore.readSnapshot), then restore. */
async function snapshotSteps(
  ctx: BenchContext,
  etcd: BenchEtcd,
  keys: Keyspace,
): Promise<{ readParse: Spread; restore: Spread }> {
  const client = etcd.client();
  const store = new OplogStore(client, keys);
  const read: number[] = [];
  const restore: number[] = [];
  try {
    for (let rep = 0; rep < ctx.reps; rep++) {
      collectGarbage();
      let t0 = performance.now();
      const snapshot = await store.readSnapshot();
      read.push((performance.now() - t0) / 1000);
      if (!snapshot) throw new Error("no snapshot to read");
      t0 = performance.now();
      new ClusterState().restore(snapshot.state, { owned: true });
      restore.push((performance.now() - t0) / 1000);
    }
  } finally {
    client.close();
  }
  return { readParse: spread(read), restore: spread(restore) };
}

interface SizeResult {
  operations: number;
  fill: Omit<FillResult, "state">;
  logOnly: VariantResult;
  breakdown: Breakdown;
  snapshot?: {
    bytes: number;
    chunks: number;
    writeSeconds: number;
    compacted: number;
    readParse: Spread;
    restore: Spread;
  };
  withSnapshot?: VariantResult;
}

async function measureSize(ctx: BenchContext, operations: number): Promise<SizeResult> {
  const etcd = await startEtcd();
  const keys = createKeyspace("/goulette");
  try {
    const writer = etcd.client();
    ctx.log(`  ${operations.toLocaleString("en-US")} operations: filling etcd…`);
    const fill = await fillOplog({
      etcd: writer,
      keys,
      operations,
      brokers: BROKERS,
      partitions: PARTITIONS,
      replicaCount: REPLICAS,
      virtualNodes: VIRTUAL_NODES,
      churnEvery: CHURN_EVERY,
      churnLifetime: CHURN_LIFETIME,
    });
    ctx.log(
      `    filled in ${fmt(fill.seconds)} s (${fill.topics} topics, ${fill.brokers} brokers, ${fmtBytes(fill.operationBytes)} of operations)`,
    );
    const digest = fill.state.digest();
    const logOnly = await measureVariant(ctx, etcd, keys, fill, digest, "log only");
    const steps = await breakdown(ctx, etcd, keys);

    // The snapshot a leader would write at the head (it also compacts the operations it covers).
    const lease = writer.lease(60);
    const fenceKey = "/goulette/bench/fence";
    await lease.put(fenceKey).value("bench");
    const t0 = performance.now();
    const written = await new OplogStore(writer, keys).writeSnapshot(
      fill.state.snapshot(),
      fenceKey,
      Date.now(),
    );
    const writeSeconds = (performance.now() - t0) / 1000;
    await lease.revoke();
    const snapshot = {
      bytes: written.meta.size,
      chunks: written.meta.chunks,
      writeSeconds,
      compacted: written.compacted,
      ...(await snapshotSteps(ctx, etcd, keys)),
    };
    ctx.log(
      `    snapshot ${fmtBytes(snapshot.bytes)} in ${snapshot.chunks} chunks, written in ${fmt(writeSeconds)} s`,
    );
    const withSnapshot = await measureVariant(ctx, etcd, keys, fill, digest, "snapshot");
    const { state: _state, ...fillSummary } = fill;
    return {
      operations,
      fill: fillSummary,
      logOnly,
      breakdown: steps,
      snapshot,
      withSnapshot,
    };
  } finally {
    await etcd.stop();
  }
}

/**
 * Recovery time of a restarting sentinel (ControlPlane start → ready) with 10k and 100k operations in the
 * log, from the log alone and from a snapshot. The log is written straight into etcd (see oplog-fill.ts):
 * 30 brokers registered, then topic creations, with a broker joining and dying every 5,000 operations.
 */
async function run(ctx: BenchContext): Promise<BenchOutput> {
  const sizes = [10_000, 100_000];
  const results: SizeResult[] = [];
  const notes: string[] = [];
  const hangsBefore = stopHangs.length;
  for (const size of sizes) results.push(await measureSize(ctx, size));

  // 1M operations: only when the estimate from the 100k run fits the time budget and the heap.
  const big = results[results.length - 1] as SizeResult;
  const scale = 1_000_000 / big.operations;
  const estimateS =
    scale *
    (big.fill.seconds +
      ctx.reps * (big.logOnly.seconds.median + big.breakdown.readDecode.median + big.breakdown.apply.median));
  const heapLimit = v8.getHeapStatistics().heap_size_limit;
  // The bench holds the written state and the recovering sentinel's (plus garbage while it replays).
  const estimateHeap = 2 * scale * (big.logOnly.stateHeapBytes ?? 0);
  if (estimateS <= MILLION_BUDGET_S && estimateHeap < 0.7 * heapLimit && !ctx.quick) {
    results.push(await measureSize(ctx, 1_000_000));
  } else {
    notes.push(
      `1,000,000 operations skipped: extrapolating the 100k run gives ≈ ${fmt(estimateS)} s ` +
        `(${fmt(scale * big.fill.seconds)} s to fill etcd, ${fmt(scale * big.logOnly.seconds.median)} s per recovery × ${ctx.reps}) ` +
        `and ≈ ${fmtBytes(estimateHeap)} of heap for two copies of a ${fmt(big.fill.topics * scale)}-topic state ` +
        `(heap limit ${fmtBytes(heapLimit)}); budget ${MILLION_BUDGET_S} s${ctx.quick ? "; never run with --quick" : ""}`,
    );
  }

  if (stopHangs.length > hangsBefore) {
    notes.push(`ControlPlane.stop() did not finish within 3 s ${stopHangs.length - hangsBefore} time(s)`);
  }
  const rows: string[][] = [];
  for (const r of results) {
    const n = r.operations.toLocaleString("en-US");
    rows.push([
      n,
      "log only",
      fmtSpread(r.logOnly.seconds),
      fmt((r.logOnly.seconds.median * 1e6) / r.operations),
      r.logOnly.stateHeapBytes !== undefined ? fmtBytes(r.logOnly.stateHeapBytes) : "—",
      "—",
    ]);
    const snap = r.withSnapshot;
    rows.push([
      n,
      "snapshot at the head",
      snap?.error !== undefined ? `FAILS: ${snap.error.slice(0, 120)}` : snap ? fmtSpread(snap.seconds) : "—",
      "—",
      snap?.stateHeapBytes !== undefined ? fmtBytes(snap.stateHeapBytes) : "—",
      r.snapshot ? `${fmtBytes(r.snapshot.bytes)} / ${r.snapshot.chunks} chunks` : "—",
    ]);
  }
  const breakdownRows = results.map((r) => [
    r.operations.toLocaleString("en-US"),
    `${r.fill.topics.toLocaleString("en-US")} / ${r.fill.brokers}`,
    fmtBytes(r.fill.operationBytes),
    fmtBytes(r.fill.largestOperationBytes),
    fmtSpread(r.breakdown.readDecode),
    fmtSpread(r.breakdown.apply),
    r.snapshot ? fmtSpread(r.snapshot.readParse) : "—",
    r.snapshot ? fmtSpread(r.snapshot.restore) : "—",
    r.snapshot ? fmt(r.snapshot.writeSeconds) : "—",
    fmt(r.fill.seconds),
  ]);
  const tables: Table[] = [
    {
      title: "Sentinel recovery: ControlPlane start → ready",
      columns: ["operations", "from", "seconds", "µs / op", "state heap", "snapshot size"],
      rows,
      notes: [
        `median (min–max) of ${ctx.reps} recoveries, each a new ControlPlane on a new etcd client; the recovered state's digest is checked against the written one`,
        "state heap: heap held by the recovered ControlPlane after GC (first repetition)",
      ],
    },
    {
      title: "Where recovery time goes, step by step",
      columns: [
        "operations",
        "topics / brokers",
        "log size",
        "largest op",
        "read + decode s",
        "apply s",
        "snapshot read s",
        "snapshot restore s",
        "snapshot write s",
        "fill s",
      ],
      rows: breakdownRows,
      notes: [
        "read + decode: OplogStore.readAfter over the whole log (pages bounded by 1,000 operations and 2 MiB, each an id-bounded range, at one revision, JSON.parse + shape check); apply: ClusterState.apply of the decoded operations",
        "snapshot read: OplogStore.readSnapshot (one get per 1 MiB chunk, sha256, JSON.parse); snapshot restore: ClusterState.restore(state, { owned: true }) (adopts the parsed records, rebuilds the broker index)",
        "fill: writing the log straight into etcd (≤ 128 requests per txn, 8 in flight) — not part of recovery",
      ],
    },
  ];
  return {
    tables,
    settings: {
      sizes: results.map((r) => r.operations),
      brokers: BROKERS,
      partitions: PARTITIONS,
      replicas: REPLICAS,
      virtualNodes: VIRTUAL_NODES,
      churnEvery: CHURN_EVERY,
      churnLifetime: CHURN_LIFETIME,
    },
    data: results,
    notes,
  };
}

export const recoveryBenchmark: Benchmark = {
  name: "recovery",
  description:
    "Sentinel recovery time (start → ready) with 10k / 100k (/1M) operations, with and without a snapshot",
  run,
};
