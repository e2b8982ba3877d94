import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestCluster, TopicLayout } from "../helpers/cluster.js";
import { spawnGroupMember, type GroupMember } from "../helpers/group-member.js";
import { waitFor } from "../helpers/wait.js";
import type { ConsumerReport, FaultConsumer } from "./harness.js";
import type { ChaosProducer } from "./workload.js";

/**
 * How soon after SIGCONT a paused member may still log the record it was handling when it froze (its
 * handler ran before the freeze; the line is written after). Anything later it processes is a stray.
 */
const IN_FLIGHT_GRACE_MS = 1_000;

/**
 * The consumer of the consumer-member faults: a group of members as real processes
 * (test/fixtures/group-consumer.ts, the Node SDK with auto commit every 200 ms), one of which the fault
 * kills or freezes. Everything checked comes from what the members reported (each processed record,
 * their assigned/revoked/lost/rejoined events) and from the committed offsets read from the partition
 * leaders, which a sampler reads every OFFSET_SAMPLE_MS from start() to stop() (never lower than before).
 */

const OFFSET_SAMPLE_MS = 50;

export interface MemberGroupOptions {
  group: string;
  /** Member processes (named a, b, c…). */
  members: number;
  /** Partitions of the topic; the members split them evenly before the fault. */
  partitions: number;
  sessionTimeoutMs: number;
  /** The failed member's partitions are consumed by the others within the session timeout + this. */
  takeoverBoundMs: number;
}

interface Failure {
  member: GroupMember;
  signal: "SIGKILL" | "SIGSTOP";
  at: number;
  /** The partitions it owned. */
  partitions: number[];
  /** SIGCONT (paused member only). */
  resumedAt?: number;
  /** Committed offsets by partition just before SIGCONT. */
  committedAtResume?: number[];
}

/** One processing of a record, by whom and when. */
interface Processing {
  member: GroupMember;
  t: number;
  value: string | undefined;
}

interface Analysis {
  processed: number;
  /** Acknowledged records no member processed, as "p/offset". */
  lost: string[];
  /** Records processed twice or more: extra processings. */
  duplicates: number;
  /** Duplicates that are not the failed member's uncommitted tail, described. */
  strayDuplicates: string[];
  /** Members whose records of a partition went back in offset order, described. */
  outOfOrder: string[];
  reassignedMs?: number;
  consumedAgainMs?: number;
}

export class MemberGroup implements FaultConsumer {
  readonly members: GroupMember[] = [];
  #topic = "";
  #victim: GroupMember | undefined;
  #failure: Failure | undefined;
  #producers: readonly ChaosProducer[] = [];
  #sampling: Promise<void> | undefined;
  #stopSampling = false;
  #offsetReads = 0;
  #lastOffsets: number[] = [];
  /** Committed offsets that went down between two reads, described. */
  readonly #backwards: string[] = [];
  /** Exit code of each member stopped by stop() (SIGTERM: close, commit, leave). */
  readonly #exitCodes = new Map<string, number | null>();
  #analysis: Analysis | undefined;
  #layout: Promise<TopicLayout> | undefined;

  constructor(
    private readonly cluster: TestCluster,
    private readonly options: MemberGroupOptions,
  ) {}

  async start(topic: string): Promise<void> {
    this.#topic = topic;
    for (let i = 0; i < this.options.members; i++) {
      this.members.push(
        spawnGroupMember(String.fromCharCode(97 + i), {
          sentinels: this.cluster.sentinelUrls,
          topic,
          group: this.options.group,
          sessionTimeoutMs: this.options.sessionTimeoutMs,
        }),
      );
    }
    await waitFor(
      () => {
        const gone = this.members.find((m) => !m.alive);
        if (gone)
          throw new Error(`member ${gone.name} exited (${gone.child.exitCode ?? gone.child.signalCode})`);
        return this.#balanced(this.members);
      },
      {
        timeoutMs: 30_000,
        what: `${this.options.members} members to split ${this.options.partitions} partitions`,
      },
    );
    this.#sampling = this.#sampleOffsets();
  }

  /**
   * Chooses the member to fail: the one owning the most partitions (the first of them). Resolves right
   * after it reported processing a record, so that failing it then leaves it (most likely) with
   * processed records it has not committed yet (auto commit runs every 200 ms).
   */
  async chooseVictim(): Promise<void> {
    const [first, ...rest] = this.members.filter((m) => m.alive);
    if (!first) throw new Error("no live member");
    const member = rest.reduce((best, m) => (m.owned.size > best.owned.size ? m : best), first);
    this.#victim = member;
    const seen = member.lines.length;
    await waitFor(() => member.lines.length > seen && member.lines[member.lines.length - 1]?.e === "msg", {
      timeoutMs: 10_000,
      intervalMs: 5,
      what: `${member.name} to process a record`,
    });
  }

  /** SIGKILL the chosen member; resolves once it is dead. */
  async kill(): Promise<void> {
    const member = this.#chosen();
    const at = this.#fail(member, "SIGKILL");
    member.child.kill("SIGKILL");
    await member.exited;
    member.died(at);
  }

  /** SIGSTOP the chosen member: it keeps its connections but sends nothing (no heartbeat, no commit). */
  pause(): void {
    const member = this.#chosen();
    this.#fail(member, "SIGSTOP");
    member.child.kill("SIGSTOP");
  }

  /** SIGCONT the paused member, after reading the committed offsets it must not move back. */
  async resume(): Promise<void> {
    const failure = this.#failed();
    failure.committedAtResume = await this.committedOffsets();
    failure.resumedAt = Date.now();
    failure.member.child.kill("SIGCONT");
  }

  /** Waits until the other members own every partition the failed member owned. */
  async takenOver(): Promise<void> {
    const failure = this.#failed();
    const others = this.members.filter((m) => m !== failure.member);
    await waitFor(() => failure.partitions.every((p) => others.some((m) => m.owned.has(this.#key(p)))), {
      timeoutMs: Math.max(1_000, failure.at + this.options.sessionTimeoutMs + 15_000 - Date.now()),
      intervalMs: 20,
      what: `the others to take over ${failure.member.name}'s partitions ${failure.partitions.join(", ")}`,
    });
  }

  /**
   * Waits until, on every partition of the paused member, the others committed past anything it had
   * processed: from then on, a commit it still makes would move the offset back.
   */
  async committedPast(): Promise<void> {
    const failure = this.#failed();
    await waitFor(
      async () => {
        const committed = await this.committedOffsets();
        return failure.partitions.every((p) => {
          const last = this.#lastOffsetBefore(failure.member, p, Infinity);
          return (committed[p] ?? -1) > last + 1;
        });
      },
      { timeoutMs: 15_000, what: `the others to commit past ${failure.member.name}'s positions` },
    );
  }

  /**
   * Waits until the resumed member reported its partitions lost, rejoined, and the group split the
   * partitions evenly again with it among the owners.
   */
  async rejoined(): Promise<void> {
    const failure = this.#failed();
    const zombie = failure.member;
    const since = failure.resumedAt ?? failure.at;
    await waitFor(
      () => {
        const lost = zombie.events("lost").filter((l) => l.t >= since);
        const reported = new Set(lost.flatMap((l) => l.parts ?? []));
        return (
          failure.partitions.every((p) => reported.has(this.#key(p))) &&
          zombie.events("rejoined").some((l) => l.t >= since)
        );
      },
      { timeoutMs: 15_000, what: `${zombie.name} to report its partitions lost and rejoin` },
    );
    await waitFor(() => this.#balanced(this.members) && zombie.owned.size > 0, {
      timeoutMs: 30_000,
      what: `the group to split the partitions again with ${zombie.name}`,
    });
  }

  /** Committed offset of the group on every partition (-1: none), read from each partition's leader. */
  async committedOffsets(): Promise<number[]> {
    // The leaders as the sentinels last said (no broker fails in these faults); asked again after an error.
    this.#layout ??= this.cluster.layout(this.#topic);
    const layout = await this.#layout;
    const offsets = await Promise.all(
      layout.partitions.map(async (p) => {
        // member_epoch 0: a plain read, which does not raise the group's fence.
        const res = await this.cluster
          .broker(p.leader)
          .client.getCommittedOffset(
            { consumerGroup: this.options.group, topic: this.#topic, partition: p.partition },
            { timeoutMs: 2_000 },
          );
        return [p.partition, Number(res.offset)] as const;
      }),
    ).catch((err: unknown) => {
      this.#layout = undefined;
      throw err;
    });
    const byPartition: number[] = [];
    for (const [partition, offset] of offsets) byPartition[partition] = offset;
    return byPartition;
  }

  async drained(producers: readonly ChaosProducer[]): Promise<void> {
    this.#producers = producers;
    await waitFor(() => this.#lostForGroup().length === 0, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "the members to process every acknowledged record",
    });
  }

  async stop(): Promise<void> {
    this.#stopSampling = true;
    await this.#sampling;
    const live = this.members.filter((m) => m.alive);
    for (const m of live) {
      m.child.kill("SIGCONT");
      m.child.kill("SIGTERM");
    }
    for (const m of live) {
      const closed = await waitFor(() => !m.alive, { timeoutMs: 15_000 }).catch(() => false);
      if (!closed) m.child.kill("SIGKILL");
      this.#exitCodes.set(m.name, closed ? m.child.exitCode : null);
    }
  }

  report(): ConsumerReport {
    const a = this.#analyse();
    const failure = this.#failure;
    const notes: string[] = [];
    const who = failure?.member.name ?? "the failed member";
    if (failure) {
      let resumed = "";
      if (failure.resumedAt !== undefined) {
        const since = failure.resumedAt;
        const rejoin = failure.member.events("rejoined").find((l) => l.t >= since);
        // What told it first that its partitions were gone: its heartbeat (no longer a member) or a
        // partition leader refusing its commit (the fence). A refusal after that is not reported.
        const fenced = failure.member
          .events("lost")
          .some((l) => l.t >= since && l.reason?.includes("given to another member"));
        resumed =
          `, SIGCONT at ${seconds(since - failure.at)} s, learned it was out from ${fenced ? "a fenced commit" : "its heartbeat"}` +
          `, rejoined at ${rejoin ? seconds(rejoin.t - failure.at) : "—"} s`;
      }
      notes.push(
        `${failure.signal} ${who} (${failure.partitions.length} of ${this.options.partitions} partitions)${resumed}`,
      );
    }
    notes.push(
      `group: ${a.processed} processed, ${a.lost.length} lost, ${a.duplicates} twice (${who}'s uncommitted tail${a.strayDuplicates.length > 0 ? ` + ${a.strayDuplicates.length} others` : ""}), ${a.outOfOrder.length} out of order`,
      `committed offsets ${this.#backwards.length === 0 ? "never went back" : `went back ${this.#backwards.length}×`} (${this.#offsetReads} reads)`,
    );
    return {
      notes: notes.join("; "),
      ...(a.reassignedMs === undefined ? {} : { reassignedMs: a.reassignedMs }),
      ...(a.consumedAgainMs === undefined ? {} : { consumedAgainMs: a.consumedAgainMs }),
    };
  }

  verify(): void {
    const a = this.#analyse();
    const failure = this.#failed();
    const bound = this.options.sessionTimeoutMs + this.options.takeoverBoundMs;
    assert.deepEqual(
      a.lost.slice(0, 5),
      [],
      `acknowledged records no member processed (of ${a.lost.length})`,
    );
    assert.deepEqual(a.outOfOrder, [], "each member processed each partition in offset order");
    assert.deepEqual(a.strayDuplicates, [], "the only duplicates are the failed member's uncommitted tail");
    assert.ok(
      a.consumedAgainMs !== undefined && a.consumedAgainMs <= bound,
      `the others consumed ${failure.member.name}'s partitions ${a.consumedAgainMs} ms after the ${failure.signal} (bound ${bound} ms)`,
    );
    assert.deepEqual(this.#backwards, [], "committed offsets never went back");
    if (failure.committedAtResume) {
      const before = failure.committedAtResume;
      const after = this.#lastOffsets;
      before.forEach((offset, p) =>
        assert.ok(
          (after[p] ?? -1) >= offset,
          `partition ${p}: committed ${offset} before SIGCONT, ${after[p]} at the end`,
        ),
      );
    }
    for (const [name, code] of this.#exitCodes) {
      assert.equal(code, 0, `member ${name} closed cleanly on SIGTERM`);
    }
  }

  #fail(member: GroupMember, signal: Failure["signal"]): number {
    if (this.#failure) throw new Error("one failure per group");
    const at = Date.now();
    const partitions = [...member.owned].map((key) => Number(key.slice(key.lastIndexOf("/") + 1)));
    this.#failure = { member, signal, at, partitions: partitions.sort((x, y) => x - y) };
    return at;
  }

  #chosen(): GroupMember {
    if (!this.#victim) throw new Error("no member chosen: call chooseVictim() first");
    return this.#victim;
  }

  #failed(): Failure {
    if (!this.#failure) throw new Error("no member failed");
    return this.#failure;
  }

  #key(partition: number): string {
    return `${this.#topic}/${partition}`;
  }

  /** Every partition owned once, and member loads differ by at most one (all live members own some). */
  #balanced(list: GroupMember[]): boolean {
    const live = list.filter((m) => m.alive);
    const loads = live.map((m) => m.owned.size);
    const union = new Set(live.flatMap((m) => [...m.owned]));
    const total = loads.reduce((n, l) => n + l, 0);
    return (
      union.size === this.options.partitions &&
      total === this.options.partitions &&
      Math.max(...loads) - Math.min(...loads) <= 1
    );
  }

  /** The last offset `member` processed on `partition` before `until` (-1: none). */
  #lastOffsetBefore(member: GroupMember, partition: number, until: number): number {
    let last = -1;
    for (const l of member.messages()) if (l.p === partition && l.t < until) last = Math.max(last, l.o ?? -1);
    return last;
  }

  async #sampleOffsets(): Promise<void> {
    while (!this.#stopSampling) {
      try {
        const offsets = await this.committedOffsets();
        this.#offsetReads++;
        offsets.forEach((offset, p) => {
          const previous = this.#lastOffsets[p] ?? -1;
          if (offset < previous) {
            const since = this.#failure
              ? `${Date.now() - this.#failure.at} ms after the fault`
              : "before the fault";
            this.#backwards.push(`partition ${p}: ${previous} → ${offset}, ${since}`);
          }
          this.#lastOffsets[p] = offset;
        });
      } catch {
        // A read that failed is not a reading; the next one counts.
      }
      await sleep(OFFSET_SAMPLE_MS);
    }
  }

  #processings(): Map<string, Processing[]> {
    const processed = new Map<string, Processing[]>();
    for (const member of this.members) {
      for (const l of member.messages()) {
        const key = `${l.p}/${l.o}`;
        const list = processed.get(key) ?? [];
        list.push({ member, t: l.t, value: l.v });
        processed.set(key, list);
      }
    }
    return processed;
  }

  /** Acknowledged records that no member processed (with the acknowledged payload), as "p/offset". */
  #lostForGroup(processed = this.#processings()): string[] {
    const lost: string[] = [];
    for (const producer of this.#producers) {
      for (const [id, offset] of producer.acked) {
        const key = `${producer.partition}/${offset}`;
        if (!processed.get(key)?.some((x) => x.value === `m-${id}`)) lost.push(key);
      }
    }
    return lost;
  }

  #analyse(): Analysis {
    if (this.#analysis) return this.#analysis;
    const processed = this.#processings();
    const failure = this.#failure;
    const victim = failure?.member;
    // What the failed member did before its failure (a paused one also works after SIGCONT).
    const before = failure?.resumedAt ?? Infinity;

    const outOfOrder: string[] = [];
    for (const m of this.members) {
      const last = new Map<number, number>();
      for (const l of m.messages()) {
        const p = l.p ?? -1;
        const o = l.o ?? -1;
        if (o <= (last.get(p) ?? -1))
          outOfOrder.push(`${m.name}: partition ${p} offset ${o} after ${last.get(p)}`);
        last.set(p, o);
      }
    }

    // A member frozen while it handled a record logs that record when it wakes up: part of its tail.
    const inFlight = new Map<number, number>();
    if (victim && failure?.resumedAt !== undefined) {
      for (const p of failure.partitions) {
        const last = this.#lastOffsetBefore(victim, p, before);
        const next = victim.messages().find((l) => l.p === p && l.t >= before);
        if (next?.o === last + 1 && next.t - before <= IN_FLIGHT_GRACE_MS) inFlight.set(p, next.o);
      }
    }

    let duplicates = 0;
    const strayDuplicates: string[] = [];
    const tails = new Map<number, number[]>();
    for (const [key, list] of processed) {
      if (list.length < 2) continue;
      duplicates += list.length - 1;
      const [p, o] = key.split("/").map(Number) as [number, number];
      const first = list[0] as Processing;
      const byVictim = list.filter((x) => x.member === victim && (x.t < before || inFlight.get(p) === o));
      const byOthers = list.filter((x) => x.member !== victim && failure && x.t >= failure.at);
      const tail =
        failure !== undefined &&
        failure.partitions.includes(p) &&
        list.length === 2 &&
        byVictim.length === 1 &&
        byOthers.length === 1;
      if (tail) tails.set(p, [...(tails.get(p) ?? []), o]);
      else
        strayDuplicates.push(
          `${key} by ${list.map((x) => `${x.member.name}@${failure ? x.t - failure.at : x.t - first.t}ms`).join(", ")}`,
        );
    }
    // The tail on a partition: one window of consecutive offsets ending at the failed member's last record.
    for (const [p, offsets] of tails) {
      const sorted = [...offsets].sort((x, y) => x - y);
      const last = inFlight.get(p) ?? (victim ? this.#lastOffsetBefore(victim, p, before) : -1);
      const low = sorted[0] as number;
      if (sorted[sorted.length - 1] !== last || sorted.length !== last - low + 1)
        strayDuplicates.push(
          `partition ${p}: duplicates ${low}…${sorted[sorted.length - 1]} (${sorted.length}), ${victim?.name}'s last was ${last}`,
        );
    }

    let reassignedMs: number | undefined;
    let consumedAgainMs: number | undefined;
    if (failure) {
      const others = this.members.filter((m) => m !== failure.member);
      const firstAfter = (times: number[]) => {
        const after = times.filter((t) => t >= failure.at);
        return after.length === 0 ? undefined : Math.min(...after);
      };
      const assigned = failure.partitions.map((p) =>
        firstAfter(
          others.flatMap((m) =>
            m
              .events("assigned")
              .filter((l) => l.parts?.includes(this.#key(p)))
              .map((l) => l.t),
          ),
        ),
      );
      const consumed = failure.partitions.map((p) =>
        firstAfter(
          others.flatMap((m) =>
            m
              .messages()
              .filter((l) => l.p === p)
              .map((l) => l.t),
          ),
        ),
      );
      const latest = (times: (number | undefined)[]) =>
        times.length > 0 && times.every((t) => t !== undefined)
          ? Math.max(...(times as number[])) - failure.at
          : undefined;
      reassignedMs = latest(assigned);
      consumedAgainMs = latest(consumed);
    }

    let processedCount = 0;
    for (const m of this.members) processedCount += m.messages().length;
    this.#analysis = {
      processed: processedCount,
      lost: this.#lostForGroup(processed),
      duplicates,
      strayDuplicates,
      outOfOrder,
      ...(reassignedMs === undefined ? {} : { reassignedMs }),
      ...(consumedAgainMs === undefined ? {} : { consumedAgainMs }),
    };
    return this.#analysis;
  }
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
