import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { BrokerService, RoleOutcome, type SetTopicRoleRequest } from "../../src/gen/goulette/v1/broker_pb.js";
import type { Command, Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { silentLogger } from "../../src/observability/logger.js";
import { RoleNotifier } from "../../src/sentinel/role-notifier.js";

interface SetupOptions {
  /** Calls (SetTopicRoles or SetTopicRole) that fail before the brokers take any. */
  failFirst?: number;
  /** Brokers that know SetTopicRoles (default: every broker, when `batch` is on). */
  batch?: boolean;
  /** A SetTopicRoles answer for one role other than APPLIED (called once per role received). */
  refuse?: (
    broker: string,
    req: SetTopicRoleRequest,
  ) => { outcome: RoleOutcome; code?: string; message?: string } | undefined;
  maxRolesPerCall?: number;
  legacyRecheckMs?: number;
  now?: () => number;
}

/** A cluster state fed by hand, and in-memory brokers recording the calls they get. */
function setup(options: SetupOptions = {}) {
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
  /** Every SetTopicRoles call received (including refused ones): broker and role count. */
  const batches: { broker: string; size: number }[] = [];
  /** SetTopicRole calls received. */
  const singles: string[] = [];
  const notifier = new RoleNotifier({
    state,
    logger: silentLogger(),
    retryBaseMs: 5,
    ...(options.maxRolesPerCall !== undefined ? { maxRolesPerCall: options.maxRolesPerCall } : {}),
    ...(options.legacyRecheckMs !== undefined ? { legacyRecheckMs: options.legacyRecheckMs } : {}),
    ...(options.now ? { now: options.now } : {}),
    transport: (baseUrl) => {
      counters.transports++;
      const broker = new URL(baseUrl).hostname;
      return createRouterTransport(({ service }) =>
        service(BrokerService, {
          async setTopicRole(req) {
            singles.push(broker);
            await gate;
            if (failures > 0) {
              failures--;
              throw new Error("broker busy");
            }
            roles.push({ broker, req });
            return {};
          },
          async setTopicRoles(req) {
            if (!options.batch) throw new ConnectError("unknown method", Code.Unimplemented);
            batches.push({ broker, size: req.roles.length });
            await gate;
            if (failures > 0) {
              failures--;
              throw new Error("broker busy");
            }
            const results = req.roles.map((role) => {
              const refused = options.refuse?.(broker, role);
              if (!refused) roles.push({ broker, req: role });
              return { outcome: RoleOutcome.APPLIED, ...refused };
            });
            return { results };
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
    batches,
    singles,
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

for (const batch of [true, false]) {
  describe(`RoleNotifier (${batch ? "SetTopicRoles" : "brokers without SetTopicRoles"})`, () => {
    it("does no work inside notify(): the calls go out on a later turn", async () => {
      const t = setup({ batch });
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
      const t = setup({ batch });
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
      assert.deepEqual(later.map((r) => `${r.broker}@${r.req.epoch}`).sort(), [
        "b0@4",
        "b1@4",
        "b3@2",
        "b3@4",
      ]);
      assert.deepEqual(t.removals, [{ broker: "b2", topic: "orders" }]);
      assert.equal(t.roles.filter((r) => r.req.epoch === 1n).length, 3, "the first round went out before");
      assert.ok(t.notifier.stats.superseded > 0);
      t.notifier.close();
    });

    it("retries a failing call with backoff until it is delivered", async () => {
      const t = setup({ failFirst: 3, batch });
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
      const t = setup({ batch });
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
}

const threePartitions = (topic: string): Command => ({
  type: "generateTopicReplicas",
  data: {
    topic,
    replicaCount: 3,
    partitions: [
      { partition: 0, replicas: ["b0", "b1", "b2"] },
      { partition: 1, replicas: ["b1", "b2", "b3"] },
      { partition: 2, replicas: ["b2", "b3", "b0"] },
    ],
  },
});

describe("RoleNotifier batching", () => {
  it("sends one SetTopicRoles per broker with every role queued for it, and no SetTopicRole", async () => {
    const t = setup({ batch: true });
    t.apply(threePartitions("orders"));
    t.apply(threePartitions("events"));
    t.notifier.notify("orders", undefined);
    t.notifier.notify("events", undefined);
    await t.notifier.idle();
    assert.deepEqual(
      t.batches.map((b) => `${b.broker}:${b.size}`).sort(),
      ["b0:4", "b1:4", "b2:6", "b3:4"],
      "2 topics × 3 partitions × 3 replicas = 18 roles in 4 calls",
    );
    assert.deepEqual(t.singles, []);
    assert.equal(t.roles.length, 18);
    assert.deepEqual(
      t.roles
        .filter((r) => r.broker === "b2")
        .map((r) => `${r.req.topic}#${r.req.partition}:${r.req.role}`)
        .sort(),
      ["events#0:2", "events#1:2", "events#2:1", "orders#0:2", "orders#1:2", "orders#2:1"],
    );
    assert.deepEqual(
      { sent: t.notifier.stats.sent, calls: t.notifier.stats.calls, batches: t.notifier.stats.batches },
      { sent: 18, calls: 4, batches: 4 },
    );
    t.notifier.close();
  });

  it("bounds the roles in one call (maxRolesPerCall)", async () => {
    const t = setup({ batch: true, maxRolesPerCall: 2 });
    t.apply({
      type: "generateTopicReplicas",
      data: {
        topic: "wide",
        replicaCount: 1,
        partitions: [0, 1, 2, 3, 4].map((partition) => ({ partition, replicas: ["b0"] })),
      },
    });
    t.notifier.notify("wide", undefined);
    await t.notifier.idle();
    assert.deepEqual(
      t.batches.map((b) => b.size),
      [2, 2, 1],
    );
    assert.deepEqual(
      t.roles.map((r) => r.req.partition),
      [0, 1, 2, 3, 4],
    );
    t.notifier.close();
  });

  it("retries only the roles a broker refused, with backoff, and resends none it applied", async () => {
    let refusals = 2;
    const t = setup({
      batch: true,
      refuse: (broker, req) => {
        if (broker !== "b1" || req.partition !== 1 || refusals === 0) return undefined;
        refusals--;
        return { outcome: RoleOutcome.ERROR, code: "unavailable", message: "disk busy" };
      },
    });
    t.apply(threePartitions("orders"));
    t.notifier.notify("orders", undefined);
    await t.notifier.idle();
    assert.deepEqual(
      t.batches.filter((b) => b.broker === "b1").map((b) => b.size),
      [2, 1, 1],
      "b1 got both its roles, then the refused one alone, twice",
    );
    assert.equal(t.roles.length, 9, "every role taken exactly once");
    assert.equal(t.notifier.stats.failed, 2);
    t.notifier.close();
  });

  it("treats a stale answer as delivered (the broker holds a newer role)", async () => {
    const t = setup({ batch: true, refuse: () => ({ outcome: RoleOutcome.STALE }) });
    t.apply(threePartitions("orders"));
    t.notifier.notify("orders", undefined);
    await t.notifier.idle();
    assert.equal(t.notifier.stats.failed, 0);
    assert.equal(t.notifier.stats.sent, 9);
    assert.equal(t.batches.length, 4);
    t.notifier.close();
  });

  it("falls back to SetTopicRole for a broker answering UNIMPLEMENTED, and tries SetTopicRoles again later", async () => {
    let clock = 1_000_000;
    const t = setup({ batch: false, legacyRecheckMs: 60_000, now: () => clock });
    t.apply(threePartitions("orders"));
    t.notifier.notify("orders", undefined);
    await t.notifier.idle();
    assert.equal(t.roles.length, 9, "every role delivered through SetTopicRole");
    assert.equal(t.singles.length, 9);
    assert.equal(t.notifier.stats.failed, 0, "UNIMPLEMENTED is not a failure");
    assert.equal(t.notifier.stats.batches, 0);
    const attempts = t.notifier.stats.calls - t.singles.length;
    assert.equal(attempts, 4, "one SetTopicRoles attempt per broker");
    // Within legacyRecheckMs the brokers get SetTopicRole straight away.
    t.apply(threePartitions("events"));
    t.notifier.notify("events", undefined);
    await t.notifier.idle();
    assert.equal(t.singles.length, 18);
    assert.equal(t.notifier.stats.calls - t.singles.length, 4, "no new SetTopicRoles attempt");
    // Once the window has passed, each broker is asked with SetTopicRoles once more (maybe upgraded).
    clock += 60_000;
    t.apply(threePartitions("more"));
    t.notifier.notify("more", undefined);
    await t.notifier.idle();
    assert.equal(t.roles.length, 27);
    assert.equal(t.notifier.stats.calls - t.singles.length, 8, "one more SetTopicRoles attempt per broker");
    t.notifier.close();
  });
});
