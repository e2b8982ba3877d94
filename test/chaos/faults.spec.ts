import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";
import {
  EtcdControl,
  PullConsumer,
  controlPlaneServes,
  createTopicLedBy,
  formatTable,
  longestAckGap,
  readPartition,
  waitForHealthyBrokers,
  waitForSentinelAgreement,
  type FaultConsumer,
  type FaultRow,
} from "./harness.js";
import { MemberGroup } from "./members.js";
import { ChaosProducer, leaderOf } from "./workload.js";

/**
 * The fault-injection suite: one real cluster on loopback (etcd, 3 sentinels, 3
 * brokers, replication factor 3, acks=all, fsync=always) and, per fault, a fresh topic with an
 * idempotent producer and a consumer group running through it. After every fault: nothing acknowledged
 * is lost, nothing is duplicated or reordered in the partition, the consumer group saw everything, one
 * sentinel leads and all sentinels hold the same state digest, and both planes serve again within
 * RECOVERY_BOUND_MS of the end of the fault. The consumer-member faults run on a topic of several
 * partitions (a producer each) consumed by a group of members as processes (test/chaos/members.ts),
 * one of which is killed or frozen. The table at the end is the one in docs/reliability.md.
 *
 * Broker roles in the suite: b1 reaches the sentinels only through TCP proxies (the partition fault),
 * b2 keeps its data on a small tmpfs (the disk-full fault), b3 leads the topics of the broker faults.
 */

const ELECTION_TTL_S = 2;
const HEARTBEAT_TTL_S = 3;
/** Both planes serve again within this long after a fault ends (stated in docs/reliability.md). */
const RECOVERY_BOUND_MS = 12_000;
/** Acknowledged messages before a fault, and again after it (proof that it serves), over all partitions. */
const WARMUP = 100;
/** The consumer-member faults: partitions of the topic, member processes, their session timeout. */
const MEMBER_PARTITIONS = 4;
const GROUP_MEMBERS = 3;
const MEMBER_SESSION_MS = 3_000;
/**
 * The failed member's partitions are consumed by the others within its session timeout + this (stated
 * in docs/reliability.md): the protocol's 1 s plus scheduling slack on a loaded 2-core machine.
 */
const MEMBER_TAKEOVER_BOUND_MS = 2_500;

const rows: FaultRow[] = [];
/** Faults after which a sentinel still named a stale leader URL (checked by the last test). */
const staleLeaderUrls: string[] = [];

describe(
  "chaos: faults under an acks=all idempotent producer and a consumer group",
  { timeout: 420_000 },
  () => {
    let cluster: TestCluster;
    let etcd: EtcdControl;
    const proxies: TcpProxy[] = [];
    /** Flags a broker must be restarted with to keep its role in the suite. */
    const brokerArgs = new Map<string, string[]>();
    let diskDir: string | undefined;
    let diskSkip = "";

    before(async () => {
      cluster = await startCluster({
        sentinels: 3,
        brokers: 3,
        sentinelArgs: [
          "--election-ttl",
          String(ELECTION_TTL_S),
          "--heartbeat-ttl",
          String(HEARTBEAT_TTL_S),
          "--probe-timeout",
          "500",
        ],
        brokerArgs: ["--fsync", "always"],
      });
      etcd = new EtcdControl(cluster);
      for (const url of cluster.sentinelUrls) {
        proxies.push(await startTcpProxy({ target: new URL(url).host }));
      }
      brokerArgs.set("b1", ["--sentinels", proxies.map((p) => `http://${p.address}`).join(",")]);
      const dir = mkdtempSync(path.join(tmpdir(), "goulette-chaos-disk-"));
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir], { stdio: "pipe" });
        diskDir = dir;
        brokerArgs.set("b2", ["--data-dir", path.join(dir, "b2")]);
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        diskSkip = `cannot mount a tmpfs (${(err as Error).message.split("\n")[0]}): disk-full fault skipped`;
      }
      // No topic exists yet, so moving b1 behind the proxies and b2 onto the tmpfs moves no data.
      for (const [id, args] of brokerArgs) await cluster.restartBroker(id, args);
      await waitForHealthyBrokers(cluster);
      await waitForSentinelAgreement(cluster);
    });

    after(async () => {
      if (rows.length > 0) console.log(`\nchaos suite results\n${formatTable(rows)}\n`);
      // Each step on its own, so one failing does not leave the others' processes or mounts behind.
      await etcd?.stop().catch(() => undefined);
      await cluster?.stop().catch(() => undefined);
      for (const p of proxies) await p.close().catch(() => undefined);
      if (diskDir) {
        try {
          execFileSync("umount", [diskDir], { stdio: "pipe" });
        } catch {
          execFileSync("umount", ["-l", diskDir], { stdio: "pipe" });
        }
        rmSync(diskDir, { recursive: true, force: true });
      }
    });

    interface FaultContext {
      topic: string;
      /** The leader of partition 0 when the fault starts. */
      partitionLeader: string;
      /** The sentinel leader when the fault starts. */
      sentinelLeader: string;
      /** The producer of partition 0. */
      producer: ChaosProducer;
    }

    interface Fault {
      /** Row name in the table. */
      name: string;
      /** The broker that must lead the fault's topic (default: wherever the ring puts it); 1 partition. */
      leader?: string;
      /** Partitions of the fault's topic, each with its own producer (default 1). */
      partitions?: number;
      /** What consumes the topic (default: a PullConsumer of partition 0, group "chaos-group"). */
      consumer?: FaultConsumer;
      /** Runs right before the injection (not timed), to choose its moment. */
      prepare?(ctx: FaultContext): Promise<void>;
      /** Injects the fault; returns at once (a kill, a signal) or after a restart. */
      inject(ctx: FaultContext): Promise<void> | void;
      /** How long the fault lasts before heal() (a fault duration, not a synchronisation). */
      holdMs?: number;
      /** Checks made while the fault holds (after holdMs), then the heal. */
      during?(ctx: FaultContext): Promise<void>;
      heal?(ctx: FaultContext): Promise<void> | void;
      /** Brings killed processes back so the next fault starts from a whole cluster. */
      restore?(ctx: FaultContext): Promise<void>;
    }

    async function runFault(fault: Fault): Promise<void> {
      const slug = fault.name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-|-$/g, "");
      const partitions = fault.partitions ?? 1;
      const topic = fault.leader
        ? await createTopicLedBy(cluster, `chaos-${slug}`, fault.leader)
        : (await cluster.createTopic(`chaos-${slug}`, { partitions, replicas: 3 })).topic;
      const producers = Array.from(
        { length: partitions },
        (_, p) =>
          new ChaosProducer(cluster, topic, partitions === 1 ? `producer-${slug}` : `producer-${slug}-${p}`, {
            partition: p,
          }),
      );
      const [producer] = producers as [ChaosProducer];
      const consumer = fault.consumer ?? new PullConsumer(cluster, "chaos-group");
      const stopProducers = () => Promise.all(producers.map((p) => p.stop()));
      // WARMUP acknowledgements spread over the partitions: each one serves.
      const warmup = Math.ceil(WARMUP / partitions);
      try {
        await consumer.start(topic);
        await waitFor(() => producers.every((p) => p.acked.size >= warmup), {
          timeoutMs: 15_000,
          what: `${WARMUP} acks before the fault`,
        });
        const ctx: FaultContext = {
          topic,
          partitionLeader: await leaderOf(cluster, topic),
          sentinelLeader: (await waitForSentinelAgreement(cluster, 15_000, 0)).leader,
          producer,
        };
        await fault.prepare?.(ctx);
        const t0 = Date.now();
        await fault.inject(ctx);
        const control = controlPlaneServes(cluster, `probe-${slug}`, 60_000);
        if (fault.holdMs) await sleep(fault.holdMs);
        await fault.during?.(ctx);
        await fault.heal?.(ctx);
        const healedAt = Date.now();
        const ackedAtHeal = producers.map((p) => p.acked.size);
        await waitFor(() => producers.every((p, i) => p.acked.size >= (ackedAtHeal[i] as number) + warmup), {
          timeoutMs: RECOVERY_BOUND_MS + 10_000,
          what: `${WARMUP} more acks after the fault`,
        });
        const controlAt = await control;
        // Produce outage: the longest gap between acknowledgements (of one producer) from the injection on.
        let gap = 0;
        let gapEnd = t0;
        for (const p of producers) {
          const longest = longestAckGap(p, t0);
          if (longest.gap > gap) [gap, gapEnd] = [longest.gap, longest.end];
        }
        const produceBackMs = gapEnd - t0;
        const controlBackMs = controlAt - t0;

        await fault.restore?.(ctx);
        await waitForHealthyBrokers(cluster);
        await stopProducers();
        const logs = [];
        for (const p of producers)
          logs.push({ producer: p, ...(await readPartition(cluster, topic, p.partition)) });
        await consumer.drained(producers);
        await consumer.stop();
        const agreement = await waitForSentinelAgreement(cluster);
        if (!agreement.urlsAgree) staleLeaderUrls.push(`${fault.name}: ${agreement.last}`);
        const staleNote = agreement.urlsAgree ? "" : "a follower kept a stale leader URL";

        let lost: [bigint, bigint][] = [];
        let duplicated = 0;
        let reordered = 0;
        const errors = new Map<string, number>();
        for (const { producer: p, messages } of logs) {
          const ids = messages.map((m) => m.messageId);
          lost = lost.concat(
            [...p.acked].filter(([id, offset]) => messages[Number(offset)]?.messageId !== id),
          );
          duplicated += ids.length - new Set(ids).size;
          reordered += ids.filter((id, i) => i > 0 && id <= (ids[i - 1] as bigint)).length;
          for (const [k, v] of p.errors) errors.set(k, (errors.get(k) ?? 0) + v);
        }
        const errorNotes = [...errors].map(([k, v]) => `${k}×${v}`).join(" ");
        const consumed = consumer.report();
        rows.push({
          fault: fault.name,
          faultMs: healedAt - t0,
          produceGapMs: gap,
          produceBackMs,
          controlBackMs,
          acknowledged: producers.reduce((n, p) => n + p.acked.size, 0),
          lost: lost.length,
          duplicated,
          reordered,
          ...(consumed.reassignedMs === undefined ? {} : { reassignedMs: consumed.reassignedMs }),
          ...(consumed.consumedAgainMs === undefined ? {} : { consumedAgainMs: consumed.consumedAgainMs }),
          notes: [errorNotes, consumed.notes, staleNote].filter(Boolean).join("; "),
        });

        assert.deepEqual(lost.slice(0, 5), [], `acknowledged messages lost (of ${lost.length})`);
        assert.equal(duplicated, 0, "no message id twice in the partition");
        assert.equal(reordered, 0, "message ids in produce order");
        for (const { producer: p, messages } of logs) {
          assert.equal(
            BigInt(messages.length),
            p.sent,
            `every message sent is in the log of partition ${p.partition} once (all were retried to an ack)`,
          );
        }
        consumer.verify();
        assert.deepEqual(agreement.leadersByMetric, [agreement.leader], "exactly one sentinel leads");
        assert.ok(
          produceBackMs - (healedAt - t0) <= RECOVERY_BOUND_MS,
          `produce served again ${produceBackMs - (healedAt - t0)} ms after the fault ended`,
        );
        assert.ok(
          controlBackMs - (healedAt - t0) <= RECOVERY_BOUND_MS,
          `the sentinels served a write ${controlBackMs - (healedAt - t0)} ms after the fault ended`,
        );
      } finally {
        await stopProducers().catch(() => undefined);
        await consumer.stop().catch(() => undefined);
      }
    }

    /** A produce straight to `broker` (with a producer id of its own): is it refused? */
    async function refusesProduce(broker: string, topic: string): Promise<boolean> {
      const res = await sendOnce(
        cluster.broker(broker).client,
        {
          topic,
          partition: 0,
          producerId: "split-brain-probe",
          acks: Acks.LEADER,
          records: [{ messageId: 1n, payload: text("must not be written") }],
        },
        2_000,
      );
      return res.acks[0]?.error === ProduceError.NOT_LEADER;
    }

    it("SIGKILL the sentinel leader", { timeout: 60_000 }, async () => {
      await runFault({
        name: "SIGKILL sentinel leader",
        async inject(ctx) {
          await cluster.killSentinel(ctx.sentinelLeader, "SIGKILL");
        },
        async restore(ctx) {
          await cluster.restartSentinel(ctx.sentinelLeader);
        },
      });
    });

    it(
      "SIGSTOP the sentinel leader for longer than its election TTL, then SIGCONT",
      { timeout: 60_000 },
      async () => {
        await runFault({
          name: `SIGSTOP sentinel leader ${ELECTION_TTL_S * 2 + 1} s`,
          inject(ctx) {
            cluster.sentinels.get(ctx.sentinelLeader)?.process.kill("SIGSTOP");
          },
          holdMs: (ELECTION_TTL_S * 2 + 1) * 1000,
          async during(ctx) {
            // The others elected a new leader while the old one sleeps.
            const others = [...cluster.sentinels.values()].filter((s) => s.id !== ctx.sentinelLeader);
            await waitFor(
              async () => {
                const status = await Promise.all(
                  others.map((s) => s.client.getClusterStatus({}, { timeoutMs: 1_000 })),
                );
                const paused = cluster.sentinels.get(ctx.sentinelLeader)?.url;
                return status.every((s) => s.leaderUrl !== "" && s.leaderUrl !== paused);
              },
              { timeoutMs: 5_000, what: "a new sentinel leader while the old one is paused" },
            );
          },
          heal(ctx) {
            cluster.sentinels.get(ctx.sentinelLeader)?.process.kill("SIGCONT");
          },
        });
      },
    );

    it("SIGKILL the partition-leader broker", { timeout: 60_000 }, async () => {
      await runFault({
        name: "SIGKILL partition leader",
        leader: "b3",
        async inject(ctx) {
          await cluster.killBroker(ctx.partitionLeader, "SIGKILL");
        },
        async restore(ctx) {
          await cluster.restartBroker(ctx.partitionLeader, brokerArgs.get(ctx.partitionLeader));
        },
      });
    });

    it(
      "SIGSTOP the partition-leader broker for longer than the heartbeat TTL, then SIGCONT",
      { timeout: 60_000 },
      async () => {
        await runFault({
          name: `SIGSTOP partition leader ${HEARTBEAT_TTL_S + 2} s`,
          leader: "b3",
          inject(ctx) {
            cluster.broker(ctx.partitionLeader).pause();
          },
          holdMs: (HEARTBEAT_TTL_S + 2) * 1000,
          async during(ctx) {
            await waitFor(async () => (await leaderOf(cluster, ctx.topic)) !== ctx.partitionLeader, {
              timeoutMs: 5_000,
              what: "the sentinels to move the partition away from the paused leader",
            });
          },
          async heal(ctx) {
            cluster.broker(ctx.partitionLeader).resume();
            // Split-brain guard: woken up, the old leader must not take a write for the partition.
            assert.ok(
              await refusesProduce(ctx.partitionLeader, ctx.topic),
              "the resumed old leader refuses produce",
            );
          },
        });
      },
    );

    it("kill etcd and start it again on the same data dir and ports", { timeout: 60_000 }, async () => {
      await runFault({
        name: "restart etcd",
        async inject() {
          await etcd.restart();
        },
      });
    });

    it("SIGSTOP etcd for longer than the lease TTLs, then SIGCONT", { timeout: 60_000 }, async () => {
      await runFault({
        name: `SIGSTOP etcd ${HEARTBEAT_TTL_S + 2} s`,
        inject() {
          etcd.pause();
        },
        holdMs: (HEARTBEAT_TTL_S + 2) * 1000,
        heal() {
          etcd.resume();
        },
      });
    });

    it(
      "partition the leader broker from the sentinels but not from clients",
      { timeout: 60_000 },
      async () => {
        await runFault({
          name: `partition leader from sentinels ${HEARTBEAT_TTL_S + 3} s`,
          leader: "b1",
          inject() {
            for (const p of proxies) p.setMode("blackhole");
          },
          holdMs: (HEARTBEAT_TTL_S + 3) * 1000,
          async during(ctx) {
            // Clients still reach b1, and it fences itself: it answers, but refuses writes.
            assert.ok(
              await refusesProduce(ctx.partitionLeader, ctx.topic),
              "the isolated leader refuses produce",
            );
            assert.notEqual(
              await leaderOf(cluster, ctx.topic),
              ctx.partitionLeader,
              "the sentinels moved leadership",
            );
          },
          heal() {
            for (const p of proxies) p.setMode("forward");
          },
        });
      },
    );

    it("fill the partition leader's disk, then free it", { timeout: 60_000 }, async (t) => {
      if (!diskDir) {
        t.skip(diskSkip);
        rows.push({
          fault: "disk full",
          faultMs: 0,
          produceGapMs: 0,
          produceBackMs: 0,
          controlBackMs: 0,
          acknowledged: 0,
          lost: 0,
          duplicated: 0,
          reordered: 0,
          notes: `skipped: ${diskSkip}`,
        });
        return;
      }
      const ballast = path.join(diskDir, "ballast");
      await runFault({
        name: "disk full on partition leader 3 s",
        leader: "b2",
        async inject() {
          await fillDisk(ballast);
        },
        holdMs: 3_000,
        async during(ctx) {
          assert.ok((ctx.producer.errors.get("STORAGE") ?? 0) > 0, "the full leader answered STORAGE");
        },
        async heal() {
          await rm(ballast, { force: true });
        },
      });
    });

    const memberGroup = (group: string) =>
      new MemberGroup(cluster, {
        group,
        members: GROUP_MEMBERS,
        partitions: MEMBER_PARTITIONS,
        sessionTimeoutMs: MEMBER_SESSION_MS,
        takeoverBoundMs: MEMBER_TAKEOVER_BOUND_MS,
      });

    it("SIGKILL a consumer-group member", { timeout: 90_000 }, async () => {
      const group = memberGroup("chaos-members-kill");
      await runFault({
        name: "SIGKILL consumer-group member",
        partitions: MEMBER_PARTITIONS,
        consumer: group,
        async prepare() {
          await group.chooseVictim();
        },
        async inject() {
          await group.kill();
        },
        async restore() {
          await group.takenOver();
        },
      });
    });

    it(
      "SIGSTOP a consumer-group member past its session timeout, then SIGCONT",
      { timeout: 90_000 },
      async () => {
        const group = memberGroup("chaos-members-pause");
        await runFault({
          name: `SIGSTOP consumer-group member past its ${MEMBER_SESSION_MS / 1000} s session`,
          partitions: MEMBER_PARTITIONS,
          consumer: group,
          async prepare() {
            await group.chooseVictim();
          },
          inject() {
            group.pause();
          },
          // Frozen for at least its session timeout, and until the others own its partitions and
          // committed past its positions: a commit it still makes when it wakes up would move an offset back.
          holdMs: MEMBER_SESSION_MS,
          async during() {
            await group.takenOver();
            await group.committedPast();
          },
          async heal() {
            await group.resume();
          },
          async restore() {
            await group.rejoined();
          },
        });
      },
    );

    it("every follower names the leader's URL again after each fault", () => {
      assert.deepEqual(staleLeaderUrls, [], "faults after which a follower named a stale leader URL");
    });
  },
);

/** Writes `file` until the file system says ENOSPC. */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, "w");
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    await handle.close();
  }
}
