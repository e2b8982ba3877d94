import assert from "node:assert/strict";
import { readdir, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { pullMessages, sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const TOPIC = "restarted";
const COUNT = 20;

/**
 * A leader that restarts within the heartbeat TTL, having lost the tail it had not fsynced (a power
 * loss with --fsync interval), must not lead again under its old epoch: its followers, which hold every
 * acknowledged record, would be truncated to its shorter log.
 */
describe("broker: a restarted leader gets a new epoch", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      // A TTL far longer than the restart: the sentinels never see the broker's heartbeat expire.
      sentinelArgs: ["--heartbeat-ttl", "15"],
      brokerArgs: ["--fsync", "interval", "--min-insync-replicas", "2"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("loses no acknowledged acks=all record when the leader restarts quickly with a shorter log", async () => {
    const layout = await cluster.createTopic(TOPIC, { partitions: 1, replicas: 3 });
    const before = layout.partitions[0] as { leader: string; epoch: bigint };
    for (let i = 1; i <= COUNT; i++) {
      const ack = (
        await sendOnce(cluster.broker(before.leader).client, {
          topic: TOPIC,
          partition: 0,
          acks: Acks.ALL,
          producerId: "restart-test",
          records: [{ messageId: BigInt(i), payload: text(`m${i}`) }],
        })
      ).acks[0];
      assert.equal(ack?.error, ProduceError.NONE, ack?.errorMessage);
    }

    // SIGKILL, then the unsynced tail is gone: half of the active segment, as after a power loss.
    await cluster.killBroker(before.leader);
    const dir = path.join(cluster.root, "brokers", before.leader, TOPIC, "0", "log");
    const segment = (await readdir(dir))
      .filter((f) => f.endsWith(".log"))
      .sort()
      .at(-1) as string;
    const size = (await stat(path.join(dir, segment))).size;
    await truncate(path.join(dir, segment), Math.floor(size / 2));
    await cluster.restartBroker(before.leader);

    const messages = await waitFor(
      async () => {
        const now = (await cluster.layout(TOPIC)).partitions[0] as { leader: string };
        const read = await pullMessages(
          cluster.broker(now.leader).client,
          { topic: TOPIC, partition: 0, offset: 0n },
          COUNT,
          3_000,
        );
        return read.length === COUNT ? read : undefined;
      },
      { what: `all ${COUNT} acknowledged records to be readable`, timeoutMs: 20_000 },
    );
    assert.deepEqual(
      messages.map((m) => new TextDecoder().decode(m.payload)),
      Array.from({ length: COUNT }, (_, i) => `m${i + 1}`),
    );
    const after = (await cluster.layout(TOPIC)).partitions[0] as { epoch: bigint };
    assert.ok(after.epoch > before.epoch, `a new epoch (was ${before.epoch}, now ${after.epoch})`);
  });
});
