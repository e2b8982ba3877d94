import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { Producer } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { readMetric } from "../helpers/sentinel-process.js";

const PRODUCERS = 400;

/** Log lines that mean the control plane or replication degraded (every process logs at warn). */
const DEGRADED = {
  heartbeatExpired: /broker heartbeat expired|sent no heartbeat for a whole TTL/,
  leaseOverdue: /could not renew the election lease in time|election lease lost/,
  isrShrink: /follower left the in-sync replicas/,
  circuitOpen: /circuit breaker is open/,
};
type Degradation = keyof typeof DEGRADED;

/** Counts the lines of a process's output matching each DEGRADED pattern, from now on. */
function countDegradations(streams: (Readable | null)[], counts: Record<Degradation, number>): void {
  for (const stream of streams) {
    let rest = "";
    stream?.on("data", (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        for (const [name, pattern] of Object.entries(DEGRADED)) {
          if (pattern.test(line)) counts[name as Degradation]++;
        }
      }
    });
  }
}

/**
 * A burst of 400 producers each creating its own topic (3 partitions × 3 replicas) on first send, all at
 * once, against a dev-sized cluster of real processes (etcd, 3 sentinels, 3 brokers with the default
 * heartbeat, election and keep-alive timings). The control plane must absorb it: every send succeeds,
 * the sentinel leader and its term stay the same, no lease renewal is late, etcd's client never opens
 * its circuit breaker, every topic is created once. And nothing is declared down: no heartbeat expires,
 * no replica moves, no follower leaves an in-sync replica set — which also needs the brokers to carry
 * 1,200 partitions each without saturating their event loops (replication sessions per broker pair).
 *
 * Opt-in (GOULETTE_TOPIC_BURST=1, `npm run test:burst`): with replication sessions and the control
 * plane's admission it passed in 24 s here once (0 failed sends, nothing degraded). Later runs on a
 * shared machine sent everything (0 failed sends) but tripped the liveness assertions: at load average
 * 2.3, 4 etcd calls met the bulk client's open circuit breaker; at 17–24, 6 late lease renewals and
 * 11 ISR shrinks, in 57 s; at 14–22, 2 late lease renewals, in 36 s. On an otherwise idle machine it
 * then passed 3 runs of 3 back to back (17.5–19.5 s, nothing degraded). It stays out of the default
 * suite, where it would share two cores with other specs.
 */
const OPT_IN = process.env["GOULETTE_TOPIC_BURST"] === "1";

describe(
  `a burst of ${PRODUCERS} concurrent topic creations`,
  {
    skip: OPT_IN ? false : "opt-in: GOULETTE_TOPIC_BURST=1 (a long overload run: npm run test:burst)",
  },
  () => {
    let cluster: TestCluster;
    const counts: Record<Degradation, number> = {
      heartbeatExpired: 0,
      leaseOverdue: 0,
      isrShrink: 0,
      circuitOpen: 0,
    };
    let failed: string[] = [];
    const operations = new Map<string, number>();
    let leadershipBefore: Awaited<ReturnType<typeof leadership>>;
    let leadershipAfter: Awaited<ReturnType<typeof leadership>>;

    /** The leader's id and URL, and every sentinel's leader-change count (a new term counts on each). */
    async function leadership() {
      const status = await cluster.sentinel().getClusterStatus({});
      const changes = await Promise.all(
        [...cluster.sentinels.values()].map((s) =>
          readMetric(s.url, "goulette_sentinel_leader_changes_total"),
        ),
      );
      const leader = status.sentinels.find((s) => s.isLeader);
      return {
        leaderId: status.leaderId,
        leaderUrl: leader?.url,
        changes,
        candidates: status.sentinels.length,
      };
    }

    before(async () => {
      cluster = await startCluster({
        sentinels: 3,
        brokers: 3,
        // The defaults of `goulette sentinel` and `goulette broker` (the helper shortens some for speed).
        sentinelArgs: ["--election-ttl", "5", "--heartbeat-ttl", "10"],
        brokerArgs: ["--keepalive-interval", "3000", "--replica-lag-max", "10000", "--fsync", "interval"],
      });
      for (const p of [...cluster.sentinels.values(), ...cluster.brokers.values()]) {
        countDegradations([p.process.stdout, p.process.stderr], counts);
      }
      leadershipBefore = await leadership();
      const headBefore = (await cluster.sentinel().getClusterStatus({})).oplogHeadId;

      const started = Date.now();
      const results = await Promise.allSettled(
        Array.from({ length: PRODUCERS }, async (_, i) => {
          const producer = new Producer({
            sentinels: cluster.sentinelUrls,
            topic: `burst-${String(i).padStart(3, "0")}`,
            createTopic: { partitions: 3, replicas: 3 },
          });
          try {
            return await producer.send({ key: `k${i}`, value: `message ${i}` });
          } finally {
            await producer.close();
          }
        }),
      );
      failed = results.flatMap((r, i) =>
        r.status === "rejected" ? [`burst-${i}: ${String(r.reason)}`] : [],
      );
      leadershipAfter = await leadership();
      for (let afterId = headBefore; ;) {
        const page = await cluster.sentinel().listOperations({ afterId, limit: 1000 });
        for (const op of page.operations) operations.set(op.type, (operations.get(op.type) ?? 0) + 1);
        if (page.nextAfterId === 0n) break;
        afterId = page.nextAfterId;
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        `${PRODUCERS} producers: ${seconds} s, ${failed.length} failed; operations ` +
          `${JSON.stringify(Object.fromEntries(operations))}; log ${JSON.stringify(counts)}`,
      );
    });
    after(async () => {
      await cluster?.stop();
    });

    it("the control plane absorbs it: every send succeeds, same leader and term, liveness on time", () => {
      assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${PRODUCERS} sends failed`);
      assert.equal(leadershipBefore.candidates, 3);
      assert.deepEqual(leadershipAfter, leadershipBefore, "the same sentinel leads, in the same term");
      assert.equal(operations.get("generateTopicReplicas"), PRODUCERS, "every topic created once");
      assert.equal(counts.leaseOverdue, 0, "no election lease renewal was late");
      assert.equal(counts.circuitOpen, 0, "no etcd call met an open circuit breaker");
    });

    it("nothing is declared down: no heartbeat expiry, no replica moved, no ISR shrink", () => {
      assert.equal(operations.get("handleUnreachableBrokers"), undefined, "no broker was declared down");
      assert.equal(operations.get("reassignPartitions"), undefined, "no replica moved");
      assert.deepEqual(
        { heartbeatExpired: counts.heartbeatExpired, isrShrink: counts.isrShrink },
        { heartbeatExpired: 0, isrShrink: 0 },
      );
    });
  },
);
