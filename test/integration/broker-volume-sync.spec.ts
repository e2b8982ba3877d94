import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const PARTITIONS = 12;
const FSYNCS = "goulette_broker_fsync_duration_seconds_count";
const VOLUME_SYNCS = "goulette_broker_volume_sync_duration_seconds_count";

/** One record to every partition of `topic` on broker b1 (acks=leader: answered once written). */
async function writeEveryPartition(cluster: TestCluster, topic: string, round: number): Promise<void> {
  for (let partition = 0; partition < PARTITIONS; partition++) {
    const res = await sendOnce(cluster.broker("b1").client, {
      topic,
      partition,
      producerId: `volume-sync-${topic}-${partition}-${round}`,
      acks: Acks.LEADER,
      records: [{ messageId: 1n, payload: text(`round ${round}`) }],
    });
    assert.equal(res.acks[0]?.error, ProduceError.NONE, res.acks[0]?.errorMessage);
  }
}

/** The broker's fsync counters once every write it made is on disk (its oldest unsynced write is 0). */
async function afterEverythingSynced(cluster: TestCluster): Promise<{ fsyncs: number; volumeSyncs: number }> {
  const url = cluster.broker("b1").url;
  await waitFor(async () => (await readMetric(url, "goulette_broker_oldest_unsynced_write_seconds")) === 0, {
    what: "every write on disk",
  });
  return {
    fsyncs: (await readMetric(url, FSYNCS)) ?? 0,
    volumeSyncs: (await readMetric(url, VOLUME_SYNCS)) ?? 0,
  };
}

/** The pid of the broker's child running `sh` (the filesystem sync helper). */
function syncHelperOf(brokerPid: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === brokerPid && comm === "sh") return Number(entry);
    } catch {
      // the process ended meanwhile
    }
  }
  return undefined;
}

describe("fsync interval: one sync of the data directory's filesystem per interval", () => {
  it("covers every partition written in an interval with no fsync of their files; without its helper, files are fsynced", async () => {
    const cluster = await startCluster({
      sentinels: 1,
      brokers: 1,
      brokerArgs: ["--fsync", "interval", "--fsync-interval", "50"],
    });
    try {
      await cluster.createTopic("spread", { partitions: PARTITIONS, replicas: 1 });
      const before = await afterEverythingSynced(cluster);
      await writeEveryPartition(cluster, "spread", 1);
      const after = await afterEverythingSynced(cluster);
      assert.equal(after.fsyncs - before.fsyncs, 0, "no partition file was fsynced");
      assert.ok(after.volumeSyncs > before.volumeSyncs, "the volume was synced");
      assert.ok(
        after.volumeSyncs - before.volumeSyncs < PARTITIONS,
        `one sync covers many partitions (${after.volumeSyncs - before.volumeSyncs} for ${PARTITIONS})`,
      );

      // The helper dies: the broker keeps answering, and the files are fsynced one by one instead.
      const pid = cluster.broker("b1").process.pid as number;
      const helper = syncHelperOf(pid);
      assert.ok(helper !== undefined, "the broker runs its sync helper");
      process.kill(helper, "SIGKILL");
      await writeEveryPartition(cluster, "spread", 2);
      const fallback = await afterEverythingSynced(cluster);
      assert.ok(
        fallback.fsyncs - after.fsyncs >= PARTITIONS,
        `each written partition file fsynced (${fallback.fsyncs - after.fsyncs})`,
      );
      await writeEveryPartition(cluster, "spread", 3);
      const later = await afterEverythingSynced(cluster);
      assert.equal(later.volumeSyncs, fallback.volumeSyncs, "the volume is not tried again");
      assert.ok(later.fsyncs - fallback.fsyncs >= PARTITIONS);
    } finally {
      await cluster.stop();
    }
  });

  it("--interval-sync file fsyncs each written partition file, as before", async () => {
    const cluster = await startCluster({
      sentinels: 1,
      brokers: 1,
      brokerArgs: ["--fsync", "interval", "--fsync-interval", "50", "--interval-sync", "file"],
    });
    try {
      await cluster.createTopic("spread", { partitions: PARTITIONS, replicas: 1 });
      const before = await afterEverythingSynced(cluster);
      await writeEveryPartition(cluster, "spread", 1);
      const after = await afterEverythingSynced(cluster);
      assert.ok(after.fsyncs - before.fsyncs >= PARTITIONS, `fsyncs: ${after.fsyncs - before.fsyncs}`);
      assert.equal(after.volumeSyncs, 0);
      assert.equal(syncHelperOf(cluster.broker("b1").process.pid as number), undefined, "no helper runs");
    } finally {
      await cluster.stop();
    }
  });
});
