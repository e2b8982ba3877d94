import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { CLOCK_STEP_PRELOAD } from "../helpers/clock-step-preload.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The leader's isolation fence (no answered KeepAlive within the heartbeat TTL: no writes) holds at
 * acknowledgement, not only at admission, and is measured on the monotonic clock.
 */
describe("broker: isolation fence at acknowledgement", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 2,
      sentinelArgs: ["--heartbeat-ttl", "2"],
      // The follower stays in the in-sync set (and the acks=all waiter alive) for the whole test.
      brokerArgs: ["--replica-lag-max", "30000", "--min-insync-replicas", "2"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("does not acknowledge an acks=all write admitted before it lost the sentinels", async () => {
    const layout = await cluster.createTopic("fenced-ack", { partitions: 1, replicas: 2 });
    const { leader, replicas } = layout.partitions[0] as { leader: string; replicas: string[] };
    const follower = replicas.find((id) => id !== leader) as string;
    let id = 0n;
    const produce = (acks: Acks) =>
      sendOnce(
        cluster.broker(leader).client,
        {
          topic: "fenced-ack",
          partition: 0,
          acks,
          producerId: "fence-ack-test",
          records: [{ messageId: ++id, payload: text(`m${id}`) }],
        },
        60_000,
      );
    const warm = (await produce(Acks.ALL)).acks[0];
    assert.equal(warm?.error, ProduceError.NONE, warm?.errorMessage);

    // Admitted while in contact; it waits for the (frozen) follower.
    cluster.broker(follower).pause();
    const admitted = produce(Acks.ALL);
    // Then the leader loses the sentinels, and its fence expires (a new write is refused at admission).
    cluster.sentinels.get("s1")?.process.kill("SIGSTOP");
    try {
      await waitFor(async () => (await produce(Acks.LEADER)).acks[0]?.error === ProduceError.NOT_LEADER, {
        what: "the leader's fence to expire",
        timeoutMs: 15_000,
      });
      // The follower catches up now: the high watermark would pass the admitted record.
      cluster.broker(follower).resume();
      const ack = (await admitted).acks[0];
      assert.equal(ack?.error, ProduceError.NOT_LEADER, "acknowledged after the fence expired");
      assert.match(ack?.errorMessage ?? "", /heartbeat TTL/);
    } finally {
      cluster.broker(follower).resume();
      cluster.sentinels.get("s1")?.process.kill("SIGCONT");
    }
  });
});

describe("broker: a wall-clock step does not stretch the fence", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      brokers: 1,
      sentinelArgs: ["--heartbeat-ttl", "2"],
      brokerEnv: { NODE_OPTIONS: `--import=${CLOCK_STEP_PRELOAD}` },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("fences itself one TTL after its last answered beat although its clock went back an hour", async () => {
    await cluster.createTopic("stepped", { partitions: 1, replicas: 1 });
    let id = 0n;
    const produce = () =>
      sendOnce(cluster.broker("b1").client, {
        topic: "stepped",
        partition: 0,
        producerId: "clock-step-test",
        records: [{ messageId: ++id, payload: text("x") }],
      });
    assert.equal((await produce()).acks[0]?.error, ProduceError.NONE);

    const sentinel = cluster.sentinels.get("s1")?.process;
    sentinel?.kill("SIGSTOP");
    try {
      cluster.broker("b1").process.kill("SIGUSR2"); // Date.now() one hour back
      const refused = await waitFor(
        async () => {
          const ack = (await produce()).acks[0];
          return ack?.error === ProduceError.NOT_LEADER ? ack : undefined;
        },
        { what: "the leader to fence itself despite the clock step", timeoutMs: 10_000 },
      );
      assert.match(refused.errorMessage, /heartbeat TTL/);
    } finally {
      sentinel?.kill("SIGCONT");
    }
  });
});
