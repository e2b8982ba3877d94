import assert from "node:assert/strict";
import { cp, open, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { openPartitionLog } from "../../src/storage/index.js";
import { pullMessages, sendOnce, text, untext } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const TOPIC = "scrubbed";
const MESSAGES = 200;
const payloadOf = (i: number) => `msg-${String(i).padStart(4, "0")}-${"y".repeat(120)}`;

function logDir(cluster: TestCluster, broker: string, topic = TOPIC): string {
  return path.join(cluster.root, "brokers", broker, topic, "0", "log");
}

/** Sends MESSAGES acks=all messages to partition 0 of `topic` through its leader, 10 per request. */
async function produceAll(cluster: TestCluster, topic: string, leader: string): Promise<void> {
  for (let batch = 0; batch < MESSAGES / 10; batch++) {
    const res = await sendOnce(cluster.broker(leader).client, {
      topic,
      partition: 0,
      acks: Acks.ALL,
      records: Array.from({ length: 10 }, (_, i) => ({
        messageId: BigInt(batch * 10 + i + 1),
        payload: text(payloadOf(batch * 10 + i)),
      })),
    });
    assert.ok(res.acks.every((a) => a.error === ProduceError.NONE));
  }
}

/** Every message of partition 0 of `topic`, read from its leader now, is there in order. */
async function assertEveryMessageReadable(cluster: TestCluster, topic: string): Promise<void> {
  const now = await cluster.layout(topic);
  const messages = await pullMessages(
    cluster.broker(now.partitions[0]?.leader as string).client,
    { topic, partition: 0, offset: 0n },
    MESSAGES,
  );
  assert.deepEqual(
    messages.map((m) => untext(m.payload)),
    Array.from({ length: MESSAGES }, (_, i) => payloadOf(i)),
  );
}

/** The value of a metric (with `label`, e.g. event="repaired", among its labels) on a broker. */
async function metric(url: string, name: string, label = ""): Promise<number> {
  const body = await (await fetch(`${url}/metrics`)).text();
  const line = body
    .split("\n")
    .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Three broker processes with small segments and a scrub every second: a bit flipped in a sealed
 * segment of the partition leader (the saved index hides it from the restart) is found by the scrub
 * once the restarted broker follows, and exactly the damaged range is fetched again from the new leader.
 */
describe("broker: the scrub repairs a damaged sealed segment from a replica", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 3,
      readyTimeoutMs: 60_000,
      brokerArgs: [
        "--fsync",
        "always",
        "--segment-bytes",
        "4096",
        "--min-insync-replicas",
        "2",
        "--scrub-interval",
        "1000",
      ],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("flip a bit in the leader's sealed segment: found, repaired, every message intact", async () => {
    const layout = await cluster.createTopic(TOPIC, { partitions: 1, replicas: 3 });
    const leader = layout.partitions[0]?.leader as string;
    await produceAll(cluster, TOPIC, leader);
    // A clean stop: the restart trusts the saved indexes, so only the scrub can find the damage.
    await cluster.killBroker(leader, "SIGTERM");
    const names = (await readdir(logDir(cluster, leader))).filter((n) => n.endsWith(".log")).sort();
    assert.ok(names.length >= 4, "small segments rolled");
    const victim = path.join(logDir(cluster, leader), names[1] as string);
    const bytes = await readFile(victim);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0x20;
    await writeFile(victim, bytes);

    const restarted = await cluster.restartBroker(leader);
    await waitFor(
      async () =>
        (await metric(restarted.url, "goulette_broker_log_repairs_total", 'event="repaired"')) === 1,
      {
        what: "the scrub to repair the damaged segment",
        timeoutMs: 60_000,
      },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${restarted.logTail(80)}`);
    });
    assert.equal(await metric(restarted.url, "goulette_broker_log_repairs_total", 'event="detected"'), 1);
    assert.equal(await metric(restarted.url, "goulette_broker_damaged_partitions"), 0);
    assert.ok((await metric(restarted.url, "goulette_broker_scrub_bytes_total")) > 0);
    assert.match(restarted.logTail(200), /damaged sealed segment range repaired from a replica/);

    // The repaired file holds what another replica holds, byte for byte.
    const other = layout.partitions[0]?.replicas.find((b) => b !== leader) as string;
    assert.deepEqual(
      await readFile(victim),
      await readFile(path.join(logDir(cluster, other), names[1] as string)),
    );
    // Every message is intact in the repaired replica's log (read from a copy: the broker holds it open)...
    const copy = path.join(cluster.root, "repaired-copy");
    await cp(logDir(cluster, leader), copy, { recursive: true });
    const log = await openPartitionLog({ dir: copy });
    const stored = await log.read(0, 1000, 1 << 24);
    await log.close();
    assert.deepEqual(
      stored.map((r) => untext(r.payload)),
      Array.from({ length: MESSAGES }, (_, i) => payloadOf(i)),
    );
    // ...and a consumer of the partition reads every one of them.
    await assertEveryMessageReadable(cluster, TOPIC);
  });

  it("flip a bit in a sealed segment under a running leader: it steps down, another replica leads, the range is repaired", async () => {
    const topic = `${TOPIC}-live`;
    const layout = await cluster.createTopic(topic, { partitions: 1, replicas: 3 });
    const leader = layout.partitions[0]?.leader as string;
    await produceAll(cluster, topic, leader);
    const names = (await readdir(logDir(cluster, leader, topic))).filter((n) => n.endsWith(".log")).sort();
    assert.ok(names.length >= 4, "small segments rolled");
    const victim = path.join(logDir(cluster, leader, topic), names[1] as string);
    const damaged = cluster.broker(leader);
    // The first test may have repaired a range on this broker already.
    const repairedBefore =
      (await metric(damaged.url, "goulette_broker_log_repairs_total", 'event="repaired"')) || 0;
    // One byte flipped in place (the broker holds the file open and keeps leading meanwhile).
    const file = await open(victim, "r+");
    try {
      const { size } = await file.stat();
      const at = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0x20;
      await file.write(byte, 0, 1, at);
    } finally {
      await file.close();
    }

    const handedOver = await waitFor(
      async () => {
        const now = (await cluster.layout(topic)).partitions[0]?.leader;
        return now !== undefined && now !== leader ? now : undefined;
      },
      { what: "the sentinels to move the leadership off the damaged leader", timeoutMs: 60_000 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${cluster.broker(leader).logTail(80)}`);
    });
    await waitFor(
      async () =>
        (await metric(damaged.url, "goulette_broker_log_repairs_total", 'event="repaired"')) > repairedBefore,
      { what: "the former leader to repair the range as a follower", timeoutMs: 60_000 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${damaged.logTail(80)}`);
    });
    assert.match(damaged.logTail(400), /refusing to lead/);
    assert.deepEqual(
      await readFile(victim),
      await readFile(path.join(logDir(cluster, handedOver, topic), names[1] as string)),
    );
    await assertEveryMessageReadable(cluster, topic);
  });
});
