import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { PartitionManager } from "../../src/broker/partition-manager.js";
import {
  PartitionRole,
  ReplicaRefSchema,
  SetTopicRoleRequestSchema,
  type SetTopicRoleRequest,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { silentLogger } from "../../src/observability/logger.js";

const REPLICAS = ["b1", "b2", "b3"].map((brokerId) =>
  create(ReplicaRefSchema, { brokerId, address: `127.0.0.1:${brokerId.slice(1)}` }),
);

/** b1's role for topic#partition, led by `leader`. */
function role(topic: string, partition: number, epoch = 1n, leader = "b2"): SetTopicRoleRequest {
  const replicas = [...REPLICAS].sort((a, b) => (a.brokerId === leader ? -1 : b.brokerId === leader ? 1 : 0));
  return create(SetTopicRoleRequestSchema, {
    topic,
    partition,
    role: leader === "b1" ? PartitionRole.LEADER : PartitionRole.FOLLOWER,
    leader: replicas[0],
    replicas,
    epoch,
  });
}

/**
 * The broker's half of the incremental KeepAlive: the digest it sends back is held only while its
 * partitions are exactly the reconciled list; anything else that touches a role clears it (real logs).
 */
describe("PartitionManager: the KeepAlive digest it holds", () => {
  let dir: string;
  let manager: PartitionManager;
  let absenceGraceMs = 0;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-held-digest-"));
    absenceGraceMs = 0;
    manager = new PartitionManager({
      dataDir: dir,
      brokerId: "b1",
      partition: {
        log: { fsync: "interval", logger: silentLogger() },
        replicaLagMaxMs: 10_000,
        replicationTimeoutMs: 15_000,
        idempotencyWindow: 16,
        maxProducers: 16,
        idempotencyScanRecords: 100,
        shipUnsynced: true,
      },
      startFetcher: () => ({ stop: () => Promise.resolve() }),
      get absenceGraceMs() {
        return absenceGraceMs;
      },
      logger: silentLogger(),
    });
  });
  afterEach(async () => {
    await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("is held after a complete reconciliation, and cleared by a pushed role or a removal", async () => {
    assert.equal(manager.heldAssignmentsDigest, "", "nothing reconciled yet");
    await manager.reconcile([role("a", 0), role("a", 1)], 5n, "v1.first");
    assert.equal(manager.heldAssignmentsDigest, "v1.first");
    assert.equal(manager.get("a", 1)?.role, "follower");

    await manager.applyRole(role("a", 0, 2n, "b1"));
    assert.equal(manager.heldAssignmentsDigest, "", "a pushed role is not in the list the digest names");
    assert.equal(manager.get("a", 0)?.role, "leader");

    await manager.reconcile([role("a", 0, 2n, "b1"), role("a", 1)], 6n, "v1.second");
    assert.equal(manager.heldAssignmentsDigest, "v1.second");
    await manager.remove("a", 1, false);
    assert.equal(manager.heldAssignmentsDigest, "", "a removed partition is not in the list any more");
  });

  it("is not held when the list could not be matched exactly", async () => {
    await manager.reconcile([role("a", 0, 3n)], 5n, "v1.newer");
    // A lagging sentinel lists an older epoch: the partition keeps the newer one.
    await manager.reconcile([role("a", 0, 2n)], 6n, "v1.older-epoch");
    assert.equal(manager.get("a", 0)?.epoch, 3);
    assert.equal(manager.heldAssignmentsDigest, "");

    // An answer from a sentinel behind one that answered before: extra partitions are not dropped.
    await manager.reconcile([role("a", 0, 3n), role("b", 0)], 7n, "v1.both");
    assert.equal(manager.heldAssignmentsDigest, "v1.both");
    await manager.reconcile([role("a", 0, 3n)], 6n, "v1.behind");
    assert.equal(manager.get("b", 0)?.role, "follower", "kept: that sentinel may not know it yet");
    assert.equal(manager.heldAssignmentsDigest, "");

    // A partition missing from the list but within its grace is kept, so the list is not matched.
    absenceGraceMs = 60_000;
    await manager.reconcile([role("a", 0, 3n)], 8n, "v1.without-b");
    assert.equal(manager.get("b", 0)?.role, "follower");
    assert.equal(manager.heldAssignmentsDigest, "");
    absenceGraceMs = 0;
    await manager.reconcile([role("a", 0, 3n)], 9n, "v1.without-b");
    assert.equal(manager.get("b", 0)?.role, "none", "dropped once its grace is over");
    assert.equal(manager.heldAssignmentsDigest, "v1.without-b");

    // A role the broker refuses (it is not listed as a replica) leaves the list unmatched.
    const foreign = create(SetTopicRoleRequestSchema, {
      ...role("c", 0),
      replicas: REPLICAS.filter((r) => r.brokerId !== "b1"),
    });
    await manager.reconcile([role("a", 0, 3n), foreign], 10n, "v1.foreign");
    assert.equal(manager.heldAssignmentsDigest, "");
  });

  it("is not held when a role is pushed while the reconciliation runs", async () => {
    const list = Array.from({ length: 40 }, (_, i) => role("many", i));
    const reconciling = manager.reconcile(list, 5n, "v1.many");
    // The push lands while the 40 new partitions are being opened.
    await manager.applyRole(role("pushed", 0));
    await reconciling;
    assert.equal(manager.heldAssignmentsDigest, "");
    await manager.reconcile([...list, role("pushed", 0)], 6n, "v1.all");
    assert.equal(manager.heldAssignmentsDigest, "v1.all");
  });
});
