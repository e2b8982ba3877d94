import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { pullMessages, sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Retention and the closing of idle segment files run on timers; options also come from GOULETTE_*
 * environment variables.
 */
describe("broker: retention and idle segment files", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 1,
      // Segment files unused for a second are closed (the second spec); reads reopen them.
      brokerArgs: ["--segment-bytes", "4096", "--segment-file-idle-timeout", "1000"],
      // 0.001 h = 3.6 s of retention, checked every second.
      brokerEnv: { GOULETTE_RETENTION_HOURS: "0.001" },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("deletes whole expired segments on its own; readers start at the new log start", async () => {
    await cluster.createTopic("logs", { partitions: 1, replicas: 1 });
    const client = cluster.broker("b1").client;
    const old = BigInt(Date.now() - 2 * 3_600_000);
    for (let batch = 0; batch < 6; batch++) {
      const res = await sendOnce(client, {
        topic: "logs",
        partition: 0,
        records: Array.from({ length: 10 }, (_, i) => ({
          messageId: BigInt(batch * 10 + i + 1),
          payload: text("y".repeat(200)),
          // Two hours old: expired as soon as the segment holding it is sealed.
          timestamp: old,
        })),
      });
      assert.ok(res.acks.every((a) => a.error === ProduceError.NONE));
    }
    const start = await waitFor(
      async () => {
        const [first] = await pullMessages(
          client,
          { topic: "logs", partition: 0, offset: -1n, consumerGroup: "new" },
          1,
        );
        return first && first.offset > 0n ? first.offset : undefined;
      },
      { what: "retention to delete the oldest segments", timeoutMs: 15_000 },
    );
    assert.ok(start > 0n && start < 60n, "the active segment is kept");
    // 60 payloads of 200 bytes were written; what is left on disk is less than the payloads alone. A pass
    // deletes the expired segments one after the other: a reader may see the new start mid-pass.
    let sizeAfter: number | undefined;
    await waitFor(
      async () => {
        sizeAfter = (await readMetric(cluster.broker("b1").url, "goulette_broker_log_bytes")) ?? 0;
        return sizeAfter > 0 && sizeAfter < 60 * 200;
      },
      { what: `log bytes to go down below the payloads written (last ${sizeAfter})`, timeoutMs: 10_000 },
    );
    await assert.rejects(
      pullMessages(client, { topic: "logs", partition: 0, offset: 0n }, 1),
      (err: unknown) => err instanceof ConnectError && err.code === Code.OutOfRange,
    );
  });

  it("closes the segment files of a partition nobody writes or reads, and reopens them on a write", async () => {
    await cluster.createTopic("quiet", { partitions: 1, replicas: 1 });
    const client = cluster.broker("b1").client;
    const res = await sendOnce(client, {
      topic: "quiet",
      partition: 0,
      records: [{ messageId: 1n, payload: text("still here") }],
    });
    assert.ok(res.acks.every((a) => a.error === ProduceError.NONE));
    const openFiles = async () =>
      (await readMetric(cluster.broker("b1").url, "goulette_broker_open_segment_files")) ?? -1;
    await waitFor(async () => (await openFiles()) === 0, {
      what: "every segment file to be closed once unused for a second",
      timeoutMs: 10_000,
    });
    // A write reopens the active segment (a read of recent records is served from memory).
    const again = await sendOnce(client, {
      topic: "quiet",
      partition: 0,
      records: [{ messageId: 2n, payload: text("and again") }],
    });
    assert.ok(again.acks.every((a) => a.error === ProduceError.NONE));
    assert.ok((await openFiles()) > 0, "writing reopened the segment");
    const read = await pullMessages(client, { topic: "quiet", partition: 0, offset: 0n }, 2);
    assert.deepEqual(
      read.map((m) => Buffer.from(m.payload).toString()),
      ["still here", "and again"],
    );
  });
});
