import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const SENTINEL_ARGS = ["--heartbeat-ttl", "3", "--probe-timeout", "500"];
const BROKER_ARGS = ["--fsync", "always", "--max-consumer-lag-series", "3"];
const LAG_METRIC = "goulette_broker_consumer_group_lag_messages";

/** The Connect code of a failed call, or "ok". */
async function outcome(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** The Connect error a call must fail with. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

describe("broker: fenced consumer-offset commits, DeleteCommittedOffset, lag per group (3 brokers)", () => {
  let cluster: TestCluster;

  /** The partition-0 leader as the sentinels see it, after reporting `unreachable` brokers. */
  const leaderOf = async (topic: string, unreachable: string[] = []): Promise<string> => {
    const res = await cluster.sentinel().getBrokers({ topic, unreachableBrokers: unreachable });
    const leader = res.partitions[0]?.leader;
    if (!leader) throw new Error(`${topic} has no leader`);
    return leader;
  };
  /** 10 records, acknowledged by every replica (the high watermark is then 10). */
  const produceTen = async (topic: string, leader: string) => {
    const res = await sendOnce(cluster.broker(leader).client, {
      topic,
      partition: 0,
      acks: Acks.ALL,
      records: Array.from({ length: 10 }, (_, i) => ({ messageId: BigInt(i + 1), payload: text(`m${i}`) })),
    });
    assert.ok(res.acks.every((a) => a.error === ProduceError.NONE));
  };
  /** The offset table one broker stored for orders/0. */
  const storedTable = async (broker: string) =>
    JSON.parse(
      await readFile(
        path.join(cluster.root, "brokers", broker, "orders", "0", "consumer-offsets.json"),
        "utf8",
      ),
    ) as { offsets: Record<string, number>; fences?: Record<string, number> };

  const billing = { topic: "orders", partition: 0, consumerGroup: "billing" };
  let ordersLeader: string;
  let ordersReplicas: string[];

  before(async () => {
    cluster = await startCluster({ brokers: 3, sentinelArgs: SENTINEL_ARGS, brokerArgs: BROKER_ARGS });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("the leader exports the lag of each group on /metrics, bounded by --max-consumer-lag-series", async () => {
    const layout = await cluster.createTopic("metered", { partitions: 1, replicas: 3 });
    const leader = layout.partitions[0]?.leader as string;
    await produceTen("metered", leader);
    const client = cluster.broker(leader).client;
    // Lags 9, 6, 2 and 1: with at most 3 series the two largest keep theirs, the rest is "_other".
    for (const [group, offset] of [
      ["a", 1n],
      ["b", 4n],
      ["c", 8n],
      ["d", 9n],
    ] as const) {
      await client.commitOffset({ topic: "metered", partition: 0, consumerGroup: group, offset });
    }
    const series = async (broker: string) =>
      (await (await fetch(`${cluster.broker(broker).url}/metrics`)).text())
        .split("\n")
        .filter((line) => line.startsWith(`${LAG_METRIC}{`))
        .map((line) => {
          const group = /group="([^"]*)"/.exec(line)?.[1];
          const topic = /topic="([^"]*)"/.exec(line)?.[1];
          return `${group}/${topic}=${line.slice(line.lastIndexOf(" ") + 1)}`;
        })
        .sort();
    assert.deepEqual(await series(leader), ["_other/metered=3", "a/metered=9", "b/metered=6"]);
    assert.equal(await readMetric(cluster.broker(leader).url, "goulette_broker_consumer_lag_messages"), 18);
    for (const follower of layout.partitions[0]?.replicas.filter((r) => r !== leader) ?? []) {
      assert.deepEqual(await series(follower), [], `${follower} follows: it reports no lag`);
    }
  });

  it("a commit with an older epoch after a take-over is ABORTED and changes nothing; epoch 0 is not fenced", async () => {
    const layout = await cluster.createTopic("orders", { partitions: 1, replicas: 3 });
    ordersLeader = layout.partitions[0]?.leader as string;
    ordersReplicas = layout.partitions[0]?.replicas ?? [];
    await produceTen("orders", ordersLeader);
    const client = cluster.broker(ordersLeader).client;

    await client.commitOffset({ ...billing, offset: 3n, memberEpoch: 3n });
    // A new owner takes the partition over with epoch 7: the fence is raised before it is answered.
    const takeOver = await client.getCommittedOffset({ ...billing, memberEpoch: 7n });
    assert.equal(takeOver.offset, 3n);
    assert.equal(takeOver.highWatermark, 10n);
    for (const replica of ordersReplicas) {
      assert.equal(
        (await storedTable(replica)).fences?.billing,
        7,
        `${replica} stored the fence before the answer`,
      );
    }

    const zombie = await failure(client.commitOffset({ ...billing, offset: 5n, memberEpoch: 3n }));
    assert.equal(zombie.code, Code.Aborted);
    assert.equal(
      zombie.rawMessage,
      "commit refused: partition orders/0 of group billing was given to another member " +
        "(epoch 7; this member's is 3) — rejoin the group",
    );
    assert.equal((await client.getCommittedOffset(billing)).offset, 3n, "the offset is unchanged");
    const staleTakeOver = await failure(client.getCommittedOffset({ ...billing, memberEpoch: 5n }));
    assert.equal(staleTakeOver.code, Code.Aborted);
    assert.match(staleTakeOver.rawMessage, /^offset fetch refused: .* \(epoch 7; this member's is 5\)/);

    await client.commitOffset({ ...billing, offset: 4n, memberEpoch: 7n });
    await client.commitOffset({ ...billing, offset: 6n });
    assert.equal((await client.getCommittedOffset(billing)).offset, 6n, "epoch 0 commits are accepted");
  });

  it("the fence survives a leader change: the new leader still refuses the old epoch", async () => {
    const killed = ordersLeader;
    await cluster.killBroker(killed, "SIGKILL");
    ordersLeader = await waitFor(
      async () => {
        const leader = await leaderOf("orders", [killed]);
        return leader !== killed ? leader : undefined;
      },
      { what: "a new leader of orders/0" },
    );
    const client = cluster.broker(ordersLeader).client;
    await waitFor(async () => (await outcome(client.getCommittedOffset(billing))) === "ok", {
      what: `${ordersLeader} to serve orders/0`,
    });
    assert.equal((await client.getCommittedOffset(billing)).offset, 6n);

    const zombie = await failure(client.commitOffset({ ...billing, offset: 8n, memberEpoch: 3n }));
    assert.equal(zombie.code, Code.Aborted);
    assert.match(zombie.rawMessage, /\(epoch 7; this member's is 3\) — rejoin the group$/);
    assert.equal((await client.getCommittedOffset(billing)).offset, 6n, "the offset is unchanged");

    await client.commitOffset({ ...billing, offset: 7n });
    await client.commitOffset({ ...billing, offset: 8n, memberEpoch: 7n });
    assert.equal((await client.getCommittedOffset(billing)).offset, 8n);
    await cluster.restartBroker(killed);
  });

  it("DeleteCommittedOffset forgets offset and fence on every replica, also across a leader change", async () => {
    const client = cluster.broker(ordersLeader).client;
    // The restarted replica has the table (with the fence) before the deletion.
    await waitFor(
      async () => {
        for (const replica of ordersReplicas)
          if ((await storedTable(replica)).offsets.billing !== 8) return false;
        return true;
      },
      { what: "every replica (the restarted one too) to hold billing's offset", timeoutMs: 20_000 },
    );

    assert.equal((await client.deleteCommittedOffset(billing)).deleted, true);
    assert.equal((await client.deleteCommittedOffset(billing)).deleted, false, "nothing left to delete");
    assert.equal((await client.getCommittedOffset(billing)).offset, -1n);
    const invalid = await failure(client.deleteCommittedOffset({ ...billing, consumerGroup: "" }));
    assert.equal(invalid.code, Code.InvalidArgument);

    await waitFor(
      async () => {
        for (const replica of ordersReplicas) {
          const table = await storedTable(replica);
          if ("billing" in table.offsets || "billing" in (table.fences ?? {})) return false;
        }
        return true;
      },
      { what: "the deletion on every replica" },
    );

    const killed = ordersLeader;
    await cluster.killBroker(killed, "SIGKILL");
    const leader = await waitFor(
      async () => {
        const l = await leaderOf("orders", [killed]);
        return l !== killed ? l : undefined;
      },
      { what: "another leader of orders/0" },
    );
    const next = cluster.broker(leader).client;
    const read = await waitFor(() => next.getCommittedOffset(billing), {
      what: `${leader} to serve orders/0`,
    });
    assert.equal(read.offset, -1n, "the new leader has no offset for the group");
    // The fence went with it: an old epoch is accepted again.
    assert.equal(await outcome(next.commitOffset({ ...billing, offset: 2n, memberEpoch: 3n })), "ok");
  });
});
