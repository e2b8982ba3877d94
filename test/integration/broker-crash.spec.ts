import assert from "node:assert/strict";
import { open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Acks, ProduceError, type Message } from "../../src/gen/goulette/v1/broker_pb.js";
import { StreamProducer, pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/** The active segment file of a partition on a broker (the newest .log). */
async function segmentFiles(cluster: TestCluster, brokerId: string, topic: string): Promise<string[]> {
  const dir = path.join(cluster.root, "brokers", brokerId, topic, "0", "log");
  const names = (await readdir(dir)).filter((n) => n.endsWith(".log")).sort();
  return names.map((n) => path.join(dir, n));
}

/** Everything below the high watermark, read from the (single) broker. */
async function readAll(cluster: TestCluster, topic: string): Promise<Message[]> {
  const client = cluster.broker("b1").client;
  const [first] = await pullMessages(client, { topic, partition: 0, offset: 0n }, 1);
  const hw = Number(first?.highWatermark ?? 0n);
  return hw === 0 ? [] : pullMessages(client, { topic, partition: 0, offset: 0n }, hw);
}

/**
 * Waits until b1 leads the topic again after a restart. Nothing changed in the sentinels' state, so no
 * role is pushed: the broker learns it from its KeepAlive answer (reconciliation).
 */
async function waitLeading(cluster: TestCluster, topic: string): Promise<void> {
  await waitFor(
    async () =>
      (await cluster.broker("b1").client.getCommittedOffset({ consumerGroup: "probe", topic, partition: 0 }))
        .offset === -1n,
    { what: `b1 to lead ${topic} again` },
  );
}

/** One sentinel, one broker with fsync=always and small segments: crashes, torn writes, bit rot. */
describe("broker: crash recovery and corruption", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 1,
      brokerArgs: ["--fsync", "always", "--segment-bytes", "4096"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("kill -9 mid-stream: every acknowledged message is readable after the restart", async () => {
    await cluster.createTopic("crash", { partitions: 1, replicas: 1 });
    const producer = new StreamProducer(cluster.broker("b1").client, {
      topic: "crash",
      partition: 0,
      producerId: "crash-producer",
      acks: Acks.LEADER,
      batchSize: 5,
      window: 8,
      payload: (id) => text(`payload-${id}`),
    });
    await waitFor(() => producer.acked.size >= 400, { what: "400 acknowledged messages" });
    await cluster.killBroker("b1", "SIGKILL");
    const failure = await producer.done;
    assert.ok(failure instanceof Error, "the stream broke with the broker");
    const acked = new Map(producer.acked);
    assert.equal(producer.errors.length, 0);

    await cluster.restartBroker("b1");
    await waitLeading(cluster, "crash");
    const messages = await readAll(cluster, "crash");
    const byId = new Map(messages.map((m) => [m.messageId, m]));
    assert.equal(byId.size, messages.length, "no message id is stored twice");
    messages.forEach((m, i) => assert.equal(m.offset, BigInt(i), "offsets are contiguous from 0"));
    for (const [id, offset] of acked) {
      const m = byId.get(id);
      assert.ok(m, `acknowledged message ${id} survived`);
      assert.equal(m.offset, offset, `message ${id} kept its offset`);
      assert.equal(untext(m.payload), `payload-${id}`);
    }
    assert.ok(messages.length >= acked.size);
    // Idempotency survives the restart: a retry of an acknowledged message is not stored again.
    const [someId, someOffset] = [...acked][acked.size - 1] as [bigint, bigint];
    const retry = await sendOnce(cluster.broker("b1").client, {
      topic: "crash",
      partition: 0,
      producerId: "crash-producer",
      records: [{ messageId: someId, payload: text(`payload-${someId}`) }],
    });
    assert.deepEqual([retry.acks[0]?.duplicate, retry.acks[0]?.offset], [true, someOffset]);
  });

  it("a torn last record is cut on restart, not served, and the log continues after it", async () => {
    const before = await readAll(cluster, "crash");
    await cluster.killBroker("b1", "SIGKILL");
    const files = await segmentFiles(cluster, "b1", "crash");
    const active = files[files.length - 1] as string;
    const size = (await stat(active)).size;
    // Half a frame: a length field promising 300 bytes, then 40 bytes of it (a write cut by the crash).
    const torn = Buffer.alloc(44, 0x5a);
    torn.writeUInt32BE(300, 0);
    const handle = await open(active, "a");
    await handle.write(torn);
    await handle.close();

    await cluster.restartBroker("b1");
    await waitLeading(cluster, "crash");
    assert.equal((await stat(active)).size, size, "recovery cut the torn bytes off the segment");
    const after = await readAll(cluster, "crash");
    assert.deepEqual(
      after.map((m) => [m.offset, m.messageId]),
      before.map((m) => [m.offset, m.messageId]),
    );
    const next = await sendOnce(cluster.broker("b1").client, {
      topic: "crash",
      partition: 0,
      records: [{ messageId: 1n, payload: text("after-the-tear") }],
    });
    assert.equal(next.acks[0]?.offset, BigInt(before.length), "the next record takes the cut offset");
  });

  it("a corrupted byte in a segment is detected by CRC on read and reported, not returned", async () => {
    await cluster.createTopic("rot", { partitions: 1, replicas: 1 });
    const client = cluster.broker("b1").client;
    for (let batch = 0; batch < 10; batch++) {
      const res = await sendOnce(client, {
        topic: "rot",
        partition: 0,
        records: Array.from({ length: 10 }, (_, i) => ({
          messageId: BigInt(batch * 10 + i + 1),
          payload: text(`rot-${String(batch * 10 + i).padStart(3, "0")}-${"x".repeat(150)}`),
        })),
      });
      assert.ok(res.acks.every((a) => a.error === ProduceError.NONE));
    }
    // A clean stop, so that restart trusts the saved indexes and reads the damaged bytes as they are.
    await cluster.killBroker("b1", "SIGTERM");
    const files = await segmentFiles(cluster, "b1", "rot");
    assert.ok(files.length >= 3, "small segments rolled");
    const victim = files[0] as string;
    const bytes = await readFile(victim);
    const at = bytes.indexOf(Buffer.from("rot-012-"));
    assert.ok(at > 0, "the payload of offset 12 is in the first segment");
    bytes[at + 10] = (bytes[at + 10] as number) ^ 0x01;
    await writeFile(victim, bytes);

    await cluster.restartBroker("b1");
    await waitLeading(cluster, "rot");
    const received: Message[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of cluster
          .broker("b1")
          .client.pullMessage(
            { topic: "rot", partition: 0, offset: 0n, maxMessages: 100n },
            { timeoutMs: 10_000 },
          )) {
          received.push(m);
        }
      })(),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.DataLoss);
        assert.match(err.message, /corrupt record at offset 12/);
        return true;
      },
    );
    assert.deepEqual(
      received.map((m) => m.offset),
      Array.from({ length: 12 }, (_, i) => BigInt(i)),
      "the good records before the damage are served",
    );
    assert.ok(received.every((m) => !untext(m.payload).startsWith("rot-012")));
    // Reads past the damaged segment still work.
    const later = await pullMessages(
      cluster.broker("b1").client,
      { topic: "rot", partition: 0, offset: 90n },
      10,
    );
    assert.equal(untext(later[0]?.payload ?? new Uint8Array()).slice(0, 7), "rot-090");
  });
});
