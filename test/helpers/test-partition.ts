import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
import { Partition, type PartitionOptions } from "../../src/broker/partition.js";
import { silentLogger } from "../../src/observability/logger.js";

/**
 * Temporary directories for one spec file, removed after its tests: call at the file's top level and
 * use the returned function for each new directory.
 */
export function temporaryDirs(prefix: string): () => Promise<string> {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(path.join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}

/**
 * A partition t#0 on broker b1 as the unit specs drive it: no follower fetch loop, silent logs, fsync
 * interval, one-minute lag and replication bounds; `overrides` change any of it.
 */
export function openTestPartition(
  dir: string,
  overrides: Partial<PartitionOptions> = {},
): Promise<Partition> {
  return Partition.open({
    topic: "t",
    partition: 0,
    dir,
    brokerId: "b1",
    log: { fsync: "interval", logger: silentLogger() },
    replicaLagMaxMs: 60_000,
    replicationTimeoutMs: 60_000,
    idempotencyWindow: 16,
    maxProducers: 16,
    idempotencyScanRecords: 100,
    shipUnsynced: true,
    startFetcher: () => ({ stop: async () => undefined }),
    logger: silentLogger(),
    ...overrides,
  });
}

/** Makes b1 the epoch-1 leader with b2 as its follower: the leader's generation and b2's stream. */
export async function leadWithFollowerB2(p: Partition): Promise<{ generation: number; stream: number }> {
  const self = { brokerId: "b1", address: "" };
  assert.ok(
    p.applyRole({
      role: "leader",
      epoch: 1,
      leader: self,
      replicas: [self, { brokerId: "b2", address: "" }],
    }),
  );
  const generation = await p.leaderReady();
  return { generation, stream: p.openStream("b2") };
}
