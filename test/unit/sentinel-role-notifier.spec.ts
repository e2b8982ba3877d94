import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRouterTransport } from "@connectrpc/connect";
import { BrokerService, type SetTopicRoleRequest } from "../../src/gen/goulette/v1/broker_pb.js";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { silentLogger } from "../../src/observability/logger.js";
import { RoleNotifier } from "../../src/sentinel/role-notifier.js";

/** A cluster state fed by hand, and in-memory brokers recording the calls they get. */
function setup(options: { failFirst?: number } = {}) {
  const state = new ClusterState();
  let id = 0;
  const apply = (command: Command) =>
    state.apply({ ...command, id: ++id, timestamp: 1, leaderId: "s" } as Operation);
  for (const b of ["b0", "b1", "b2", "b3"])
    apply({ type: "registerBroker", data: { brokerId: b, address: `${b}:9000` } });
  const roles: { broker: string; req: SetTopicRoleRequest }[] = [];
  const removals: { broker: string; topic: string }[] = [];
  let gate: Promise<void> = Promise.resolve();
  let failures = options.failFirst ?? 0;
  const counters = { transports: 0 };
  const notifier = new RoleNotifier({
    state,
    logger: silentLogger(),
    retryBaseMs: 5,
    transport: (baseUrl) => {
      counters.transports++;
      return createRouterTransport(({ service }) =>
        service(BrokerService, {
          async setTopicRole(req) {
            await gate;
            if (failures > 0) {
              failures--;
              throw new Error("broker busy");
            }
            roles.push({ broker: new URL(baseUrl).hostname, req });
            return {};
          },
          removeTopic(req) {
            removals.push({ broker: new URL(baseUrl).hostname, topic: req.topic });
            return {};
          },
        }),
      );
    },
  });
  return {
    state,
    apply,
    counters,
    notifier,
    roles,
    removals,
    hold: () => {
      let release = () => {};
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => release();
    },
  };
}

const place = (topic: string, replicas: string[]): Command => ({
  type: "reassignPartitions",
  data: { changes: [{ topic, partitions: [{ partition: 0, replicas }] }] },
});

describe("RoleNotifier", () => {
  it("does no work inside notify(): the calls go out on a later turn", async () => {
    const t = setup();
    t.apply({
      type: "generateTopicReplicas",
      data: {
        topic: "orders",
        replicaCount: 3,
        partitions: [{ partition: 0, replicas: ["b0", "b1", "b2"] }],
      },
    });
    t.notifier.notify("orders", undefined);
    assert.equal(t.counters.transports, 0, "no client, request or call made inside notify()");
    assert.equal(t.roles.length, 0, "nothing sent synchronously");
    await t.notifier.idle();
    assert.deepEqual(t.roles.map((r) => r.broker).sort(), ["b0", "b1", "b2"]);
    assert.equal(t.roles.find((r) => r.broker === "b0")?.req.role, 1 /* LEADER */);
    t.notifier.close();
  });

  it("coalesces: a partition changed several times while a call is in flight gets its newest role once", async () => {
    const t = setup();
    t.apply({
      type: "generateTopicReplicas",
      data: {
        topic: "orders",
        replicaCount: 3,
        partitions: [{ partition: 0, replicas: ["b0", "b1", "b2"] }],
      },
    });
    const release = t.hold();
    t.notifier.notify("orders", undefined);
    // Let the first round go out (and block in the brokers), then change the partition three times.
    await new Promise((resolve) => setImmediate(resolve));
    for (const replicas of [
      ["b1", "b2", "b3"],
      ["b2", "b3", "b0"],
      ["b3", "b0", "b1"],
    ]) {
      const before = t.state.topic("orders");
      t.apply(place("orders", replicas));
      t.notifier.notify("orders", before);
      await new Promise((resolve) => setImmediate(resolve));
    }
    release();
    await t.notifier.idle();
    const finalEpoch = BigInt(t.state.topic("orders")?.partitions[0]?.epoch ?? 0);
    assert.equal(finalEpoch, 4n);
    const later = t.roles.filter((r) => r.req.epoch > 1n);
    // b3 had nothing in flight, so epoch 2 reached it at once; everything else queued behind the held
    // calls and only the newest message per partition went out: epoch 3 never, b2 only its removal.
    assert.deepEqual(later.map((r) => `${r.broker}@${r.req.epoch}`).sort(), ["b0@4", "b1@4", "b3@2", "b3@4"]);
    assert.deepEqual(t.removals, [{ broker: "b2", topic: "orders" }]);
    assert.equal(t.roles.filter((r) => r.req.epoch === 1n).length, 3, "the first round went out before");
    assert.ok(t.notifier.stats.superseded > 0);
    t.notifier.close();
  });

  it("retries a failing call with backoff until it is delivered", async () => {
    const t = setup({ failFirst: 3 });
    t.apply({
      type: "generateTopicReplicas",
      data: { topic: "orders", replicaCount: 1, partitions: [{ partition: 0, replicas: ["b2"] }] },
    });
    t.notifier.notify("orders", undefined);
    await t.notifier.idle();
    assert.deepEqual(
      t.roles.map((r) => r.broker),
      ["b2"],
    );
    assert.equal(t.notifier.stats.failed, 3);
    t.notifier.close();
  });

  it("tells a broker that lost a partition to remove it", async () => {
    const t = setup();
    t.apply({
      type: "generateTopicReplicas",
      data: { topic: "orders", replicaCount: 2, partitions: [{ partition: 0, replicas: ["b0", "b1"] }] },
    });
    const before = t.state.topic("orders");
    t.apply(place("orders", ["b1", "b2"]));
    t.notifier.notify("orders", before);
    await t.notifier.idle();
    assert.deepEqual(t.removals, [{ broker: "b0", topic: "orders" }]);
    assert.deepEqual(t.roles.map((r) => r.broker).sort(), ["b1", "b2"]);
    t.notifier.close();
  });
});
