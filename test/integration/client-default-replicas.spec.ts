import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { AbortedError } from "../../src/client/errors.js";
import { DefaultReplicaCount } from "../../src/client/default-replicas.js";
import { createNodeTransport } from "../../src/client/node.js";
import { SentinelPool } from "../../src/client/sentinel-pool.js";
import { TopicMetadata } from "../../src/client/topic-metadata.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { serveConnect, type ConnectTestServer } from "../helpers/connect-server.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The replica count a client asks for when it creates topics without naming one: asked of the sentinels
 * once per client, not once per topic (GetClusterStatus describes the whole cluster: a producer writing
 * to a thousand new topics cost a sentinel ten seconds of CPU), shared by concurrent callers, asked
 * again once it is old. A fake sentinel counts the status calls and can hold one open.
 */

class FakeSentinel {
  statusCalls = 0;
  healthy = 2;
  readonly replicaCounts: number[] = [];
  #gate: Promise<void> = Promise.resolve();
  #open: () => void = () => undefined;
  server!: ConnectTestServer;

  async start(): Promise<this> {
    this.server = await serveConnect((router) =>
      router.service(SentinelService, {
        getClusterStatus: async () => {
          this.statusCalls++;
          await this.#gate;
          const brokers = ["b1", "b2", "b3"].map((brokerId, i) => ({
            brokerId,
            address: "127.0.0.1:1",
            status: i < this.healthy ? BrokerStatus.HEALTHY : BrokerStatus.DOWN,
          }));
          return { brokers };
        },
        getBrokers: (req) => {
          this.replicaCounts.push(req.replicaCount);
          return {
            brokers: [{ brokerId: "b1", address: "127.0.0.1:1", status: BrokerStatus.HEALTHY }],
            partitions: [{ partition: 0, leader: "b1", replicas: ["b1"], epoch: 1n }],
            version: 1n,
          };
        },
      }),
    );
    return this;
  }

  /** GetClusterStatus answers only after release(). */
  hold(): void {
    this.#gate = new Promise<void>((resolve) => (this.#open = resolve));
  }

  release(): void {
    this.#open();
    this.#gate = Promise.resolve();
  }
}

describe("the default replica count of a client's new topics", () => {
  let sentinel: FakeSentinel;
  let pool: SentinelPool;

  before(async () => {
    sentinel = await new FakeSentinel().start();
    pool = new SentinelPool({
      urls: [sentinel.server.url],
      transport: createNodeTransport(),
      headers: {},
      timeoutMs: 5_000,
      emit: () => undefined,
    });
  });

  after(async () => {
    await sentinel.server.close();
  });

  beforeEach(() => {
    sentinel.statusCalls = 0;
    sentinel.healthy = 2;
    sentinel.replicaCounts.length = 0;
  });

  it("is asked once for many topics at once, and each new topic gets it", async () => {
    const defaults = new DefaultReplicaCount(pool);
    const topics = Array.from(
      { length: 50 },
      (_, i) =>
        new TopicMetadata({
          topic: `t${i}`,
          sentinels: pool,
          shape: undefined,
          defaultReplicas: defaults,
          emit: () => undefined,
        }),
    );
    await Promise.all(topics.map((t) => t.get()));
    assert.equal(sentinel.statusCalls, 1);
    assert.equal(defaults.requests, 1);
    assert.deepEqual(sentinel.replicaCounts, Array<number>(50).fill(2), "2 of the 3 brokers are healthy");
  });

  it("is asked again once older than its age limit, and follows the brokers' health", async () => {
    let now = 1_000_000;
    const defaults = new DefaultReplicaCount(pool, 30_000, () => now);
    assert.equal(await defaults.get(), 2);
    sentinel.healthy = 3;
    now += 29_999;
    assert.equal(await defaults.get(), 2, "still fresh");
    assert.equal(sentinel.statusCalls, 1);
    now += 1;
    assert.equal(await defaults.get(), 3);
    assert.equal(sentinel.statusCalls, 2);
  });

  it("is never more than 3, and at least 1 with no healthy broker", async () => {
    sentinel.healthy = 0;
    assert.equal(await new DefaultReplicaCount(pool).get(), 1);
    sentinel.healthy = 3;
    const defaults = new DefaultReplicaCount(pool);
    assert.equal(await defaults.get(), 3);
  });

  it("fails only the caller that gives up: the others get the shared answer", async () => {
    const defaults = new DefaultReplicaCount(pool);
    sentinel.hold();
    const abort = new AbortController();
    const leaving = defaults.get(abort.signal);
    const staying = defaults.get();
    await waitFor(() => sentinel.statusCalls === 1, {
      timeoutMs: 5_000,
      what: "the status call reaching the sentinel",
    });
    abort.abort(new Error("the caller's deadline"));
    await assert.rejects(leaving, (err: unknown) => err instanceof AbortedError);
    sentinel.release();
    assert.equal(await staying, 2);
    assert.equal(sentinel.statusCalls, 1);
    await assert.rejects(
      new DefaultReplicaCount(pool).get(AbortSignal.abort()),
      (err: unknown) => err instanceof AbortedError,
    );
    assert.equal(sentinel.statusCalls, 1, "an aborted caller asks nothing");
  });
});
