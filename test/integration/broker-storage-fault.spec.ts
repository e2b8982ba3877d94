import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startBroker, type Broker } from "../../src/broker/broker.js";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createFaultyFileSystem, errnoError } from "../../src/storage/index.js";
import { brokerClient, pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { freePort } from "../helpers/ports.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Disk failures need a fault-injecting file system, which only an in-process broker can take: the
 * broker runs in the test process (real files), against a real sentinel process and a real etcd.
 */
describe("broker: storage failures fail the produce and never corrupt the log", () => {
  let etcd: TestEtcd;
  let sentinel: SentinelProcess;
  let dataDir: string;
  let port: number;
  let broker: Broker | undefined;
  const faults = { write: false, fsync: false };

  const start = async (faulty: boolean) => {
    broker = await startBroker({
      id: "faulty",
      address: `127.0.0.1:${port}`,
      dataDir,
      sentinels: [sentinel.url],
      fsync: "always",
      fsyncIntervalMs: 200,
      segmentBytes: 1024 * 1024,
      maxMessageBytes: 1024 * 1024,
      keepAliveIntervalMs: 300,
      replicaLagMaxMs: 3_000,
      logger: silentLogger(),
      ...(faulty
        ? {
            fileSystem: createFaultyFileSystem({
              before: (op) => {
                if (op.kind === "write" && faults.write && op.path.endsWith(".log")) {
                  // The disk fills up part-way through the write.
                  return { error: errnoError("ENOSPC", "write"), partialBytes: 20 };
                }
                if (op.kind === "datasync" && faults.fsync && op.path.endsWith(".log")) {
                  return { error: errnoError("EIO", "fsync") };
                }
                return undefined;
              },
            }),
          }
        : {}),
    });
    await waitFor(() => broker?.ready, { what: "the broker to register" });
  };
  const client = () => brokerClient(`127.0.0.1:${port}`);
  const produce = (producerId: string, ids: number[]) =>
    sendOnce(client(), {
      topic: "disk",
      partition: 0,
      producerId,
      acks: Acks.LEADER,
      records: ids.map((id) => ({ messageId: BigInt(id), payload: text(`${producerId}-${id}`) })),
    });

  before(async () => {
    etcd = await startEtcd();
    sentinel = await startSentinelProcess({
      id: "s1",
      etcdEndpoint: etcd.endpoint,
      args: ["--log-level", "warn"],
    });
    dataDir = await mkdtemp(path.join(tmpdir(), "goulette-faulty-"));
    port = await freePort();
    await start(true);
    await sentinel.client.getBrokers({ topic: "disk", partitions: 1, replicaCount: 1 });
    await waitFor(
      async () =>
        (await client().getCommittedOffset({ consumerGroup: "probe", topic: "disk", partition: 0 }))
          .offset === -1n,
      { what: "the broker to lead disk#0" },
    );
  });
  after(async () => {
    await broker?.stop();
    await sentinel?.kill();
    await etcd?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("a failed write (ENOSPC) answers STORAGE; nothing of it is readable; the retry is appended", async () => {
    const ok = await produce("p", [1, 2, 3]);
    assert.deepEqual(
      ok.acks.map((a) => a.offset),
      [0n, 1n, 2n],
    );
    faults.write = true;
    const failed = await produce("p", [4, 5]);
    faults.write = false;
    for (const a of failed.acks) {
      assert.equal(a.error, ProduceError.STORAGE);
      assert.match(a.errorMessage, /ENOSPC/);
    }
    const retried = await produce("p", [4, 5]);
    assert.deepEqual(
      retried.acks.map((a) => [a.offset, a.duplicate, a.error]),
      [
        [3n, false, ProduceError.NONE],
        [4n, false, ProduceError.NONE],
      ],
      "the failed attempt left no offset behind and no duplicate entry",
    );
  });

  it("a failed fsync (EIO) answers STORAGE and rolls the unsynced records back", async () => {
    faults.fsync = true;
    const failed = await produce("q", [1]);
    faults.fsync = false;
    assert.equal(failed.acks[0]?.error, ProduceError.STORAGE);
    const next = await produce("q", [1, 2]);
    assert.deepEqual(
      next.acks.map((a) => a.offset),
      [5n, 6n],
    );
  });

  it("after a restart the log holds exactly the acknowledged records", async () => {
    await broker?.stop();
    await start(false);
    const messages = await waitFor(
      async () => {
        const all = await pullMessages(client(), { topic: "disk", partition: 0, offset: 0n }, 7, 3_000);
        return all.length === 7 ? all : undefined;
      },
      { what: "the restarted broker to serve disk#0" },
    );
    assert.deepEqual(
      messages.map((m) => untext(m.payload)),
      ["p-1", "p-2", "p-3", "p-4", "p-5", "q-1", "q-2"],
    );
  });
});
