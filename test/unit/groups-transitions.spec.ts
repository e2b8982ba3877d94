import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generator, member, type Generator } from "../helpers/group-fixtures.js";
import { assignTargets, type PartitionCounts } from "../../src/groups/assignor.js";
import {
  emptyGroupState,
  parsePartitionKey,
  partitionKey,
  type GroupState,
  type MemberRecord,
  type MemberView,
  type PartitionKey,
} from "../../src/groups/model.js";
import {
  groupPhase,
  memberView,
  nextGroupState,
  renewEpochs,
  sameGroupState,
  type OwnedReport,
} from "../../src/groups/transitions.js";

const keyOf = (tp: { topic: string; partition: number }) => partitionKey(tp.topic, tp.partition);
const keysOf = (tps: readonly { topic: string; partition: number }[]) => tps.map(keyOf).sort();

/**
 * A group driven the way the coordinator drives it: joins, leaves and crashes change the members map,
 * and members heartbeat with the partitions they consume. A member consumes what its last answer told
 * it to (owned and targeted), at the epoch it was given, and stops what it is revoking; it reports the
 * stop in its next heartbeat. Every transition and every member's consumption is checked as it happens.
 */
class Group {
  readonly members = new Map<string, MemberRecord>();
  /** What each live member's process consumes: partition → the epoch it consumes it at. */
  readonly consuming = new Map<string, Map<PartitionKey, number>>();
  /** Processes the group no longer counts as members that may still be running (paused, replaced). */
  readonly zombies: { member: string; partitions: Map<PartitionKey, number> }[] = [];
  readonly partitions: Record<string, number> = {};
  state: GroupState = emptyGroupState();
  /** Every owner epoch each partition has had, in order. */
  readonly epochs = new Map<PartitionKey, number[]>();
  /** How many times each partition was stopped by a member it was being revoked from. */
  readonly stops = new Map<PartitionKey, number>();
  transitions = 0;
  readonly trail: string[] = [];

  counts(): PartitionCounts {
    const table = new Map(Object.entries(this.partitions));
    return (topic) => table.get(topic);
  }

  where(): string {
    return `after ${this.trail.slice(-6).join(" > ")} (generation ${this.state.generation})`;
  }

  /** The coordinator's step: the next state from the stored one, checked against the previous. */
  #advance(report?: OwnedReport): void {
    const before = this.state;
    const after = nextGroupState(before, this.members, this.counts(), report);
    this.#checkTransition(before, after, report);
    this.state = after;
    this.#checkConsumers();
  }

  join(id: string, topics: readonly string[]): void {
    this.trail.push(`join ${id}`);
    this.members.set(id, member(id, topics));
    this.consuming.set(id, new Map());
    this.#advance();
  }

  /** A member that closes: stops everything, sends leave, is deleted at once. */
  leave(id: string): void {
    this.trail.push(`leave ${id}`);
    this.members.delete(id);
    this.consuming.delete(id);
    this.#advance();
  }

  /** A member whose process died: its lease expires (to the coordinator, like a leave: its key is gone). */
  crash(id: string): void {
    this.trail.push(`crash ${id}`);
    this.members.delete(id);
    this.consuming.delete(id);
    this.#advance();
  }

  /** A member paused past its session timeout: removed, but its process still believes it consumes. */
  pause(id: string): void {
    this.trail.push(`pause ${id}`);
    this.members.delete(id);
    this.zombies.push({ member: id, partitions: this.consuming.get(id) ?? new Map() });
    this.consuming.delete(id);
    this.#advance();
  }

  /** A static member's pod restarts within its session: same member, new process, new epochs. */
  restart(id: string): void {
    this.trail.push(`restart ${id}`);
    this.zombies.push({ member: id, partitions: this.consuming.get(id) ?? new Map() });
    this.consuming.set(id, new Map());
    const before = this.state;
    const after = renewEpochs(before, id);
    assert.equal(after.generation, before.generation + 1, this.where());
    this.#recordEpochs(before, after);
    this.state = after;
    this.#checkConsumers();
  }

  subscribe(id: string, topics: readonly string[]): void {
    this.trail.push(`subscribe ${id} ${topics.join(",")}`);
    this.members.set(id, member(id, topics));
    this.#advance();
  }

  setPartitions(topic: string, count: number): void {
    this.trail.push(`partitions ${topic}=${count}`);
    this.partitions[topic] = count;
    this.#advance();
  }

  /** A heartbeat: report what it consumes, then act on the answer. */
  heartbeat(id: string): MemberView {
    this.trail.push(`heartbeat ${id}`);
    const mine = this.consuming.get(id) as Map<PartitionKey, number>;
    this.#advance({ member: id, owned: new Set(mine.keys()) });
    const view = memberView(this.state, id);
    this.#checkView(id, view);
    for (const tp of view.revoking) {
      if (mine.delete(keyOf(tp))) this.stops.set(keyOf(tp), (this.stops.get(keyOf(tp)) ?? 0) + 1);
    }
    for (const p of view.partitions) {
      const consumedAt = mine.get(keyOf(p));
      // A partition that stays never restarts: it keeps the epoch its consumer started with.
      if (consumedAt !== undefined) assert.equal(consumedAt, p.epoch, `${id} ${keyOf(p)} ${this.where()}`);
      else mine.set(keyOf(p), p.epoch);
    }
    for (const key of mine.keys()) {
      assert.ok(
        view.partitions.some((p) => keyOf(p) === key),
        `${id} consumes ${key}, not in its answer`,
      );
    }
    this.#checkConsumers();
    return view;
  }

  /** Every live member heartbeats once, in a random order. */
  round(rng: Generator): void {
    for (const id of rng.shuffle([...this.members.keys()].sort())) this.heartbeat(id);
  }

  /** Every partition is where it should be, and every member consumes exactly its partitions. */
  settled(): boolean {
    if (groupPhase(this.state, this.members) === "rebalancing") return false;
    for (const [id, mine] of this.consuming) {
      const view = memberView(this.state, id);
      if (view.pending.length > 0 || view.revoking.length > 0) return false;
      if (mine.size !== view.partitions.length) return false;
    }
    return true;
  }

  /**
   * Heartbeat rounds until settled. A member learns of a revocation in its first heartbeat and reports
   * the release in its second; the new owner starts the partition in the heartbeat after that, which
   * can fall in the third round. Returns the rounds until the phase was stable, and until settled.
   */
  converge(rng: Generator): { stable: number; settled: number } {
    let stable = groupPhase(this.state, this.members) === "rebalancing" ? -1 : 0;
    for (let rounds = 1; rounds <= 3; rounds++) {
      this.round(rng);
      if (stable < 0 && groupPhase(this.state, this.members) !== "rebalancing") stable = rounds;
      if (this.settled()) {
        // Settled means settled: one more round of heartbeats changes nothing, not even the generation.
        const state = this.state;
        this.round(rng);
        assert.equal(this.state, state, `a settled group does not change ${this.where()}`);
        return { stable, settled: rounds };
      }
    }
    assert.fail(`not settled within 3 rounds ${this.where()}: ${JSON.stringify(this.state)}`);
  }

  #recordEpochs(before: GroupState, after: GroupState): void {
    for (const [key, owner] of Object.entries(after.owners)) {
      const previous = before.owners[key];
      if (previous?.member === owner.member && previous.epoch === owner.epoch) continue;
      assert.equal(
        owner.epoch,
        after.generation,
        `${key}: a new epoch is the generation that made it ${this.where()}`,
      );
      const history = this.epochs.get(key) ?? [];
      assert.ok(
        history.every((e) => e < owner.epoch),
        `${key}: epoch ${owner.epoch} after ${history.join(",")} ${this.where()}`,
      );
      this.epochs.set(key, [...history, owner.epoch]);
    }
  }

  #checkTransition(before: GroupState, after: GroupState, report: OwnedReport | undefined): void {
    const where = this.where();
    if (after === before) {
      const recomputed = assignTargets([...this.members.values()], this.counts(), before.targets);
      assert.deepEqual(before.targets, recomputed, `unchanged, so the targets were current ${where}`);
      return;
    }
    this.transitions++;
    assert.equal(after.generation, before.generation + 1, `every change is one generation ${where}`);
    assert.ok(
      !sameGroupState({ ...after, generation: before.generation }, before),
      `a new state changes something ${where}`,
    );
    // A partition whose previous owner is alive changes hands only once that owner reported it no longer
    // consumes it, in this very heartbeat.
    const released = (key: PartitionKey, previous: string) =>
      !this.members.has(previous) || (report?.member === previous && !report.owned.has(key));
    for (const [key, owner] of Object.entries(before.owners)) {
      const now = after.owners[key];
      if (now?.member === owner.member) {
        assert.equal(now.epoch, owner.epoch, `${key} keeps its epoch while its owner keeps it ${where}`);
        continue;
      }
      assert.ok(
        released(key, owner.member),
        `${key} taken from ${owner.member} before it released it ${where}`,
      );
      if (now === undefined)
        assert.equal(after.targets[key], undefined, `${key} is freed only if nobody should have it`);
      if (before.targets[key] === owner.member && after.targets[key] === owner.member) {
        assert.fail(`${key} moved while its target stayed its owner ${where}`);
      }
    }
    for (const [key, target] of Object.entries(after.targets)) {
      const owner = after.owners[key];
      assert.ok(owner !== undefined, `${key} has a target but no owner ${where}`);
      assert.ok(
        this.members.get(target)?.topics.includes(parsePartitionKey(key).topic),
        `${key} → ${target} ${where}`,
      );
      if (before.owners[key]?.member !== owner.member)
        assert.equal(owner.member, target, `${key} goes to its target`);
    }
    for (const [key, owner] of Object.entries(after.owners)) {
      assert.ok(this.members.has(owner.member), `${key} owned by ${owner.member}, not a member ${where}`);
    }
    this.#recordEpochs(before, after);
  }

  /**
   * A member consumes a partition only while the state says it owns it, at the epoch it owns it at: so no
   * two live members consume the same partition. A zombie may still be running, but with an epoch below
   * the current owner's, so its commits are refused.
   */
  #checkConsumers(): void {
    const where = this.where();
    for (const [id, mine] of this.consuming) {
      for (const [key, epoch] of mine) {
        assert.deepEqual(
          this.state.owners[key],
          { member: id, epoch },
          `${id} consumes ${key} at ${epoch} ${where}`,
        );
      }
    }
    for (const zombie of this.zombies) {
      for (const [key, epoch] of zombie.partitions) {
        const owner = this.state.owners[key];
        if (owner !== undefined)
          assert.ok(owner.epoch > epoch, `${zombie.member}'s old ${key}@${epoch} is fenced ${where}`);
      }
    }
  }

  #checkView(id: string, view: MemberView): void {
    const where = `${id} ${this.where()}`;
    const owned = Object.keys(this.state.owners).filter((k) => this.state.owners[k]?.member === id);
    const targeted = Object.keys(this.state.targets).filter((k) => this.state.targets[k] === id);
    assert.equal(view.generation, this.state.generation, where);
    assert.deepEqual(keysOf(view.partitions), owned.filter((k) => targeted.includes(k)).sort(), where);
    for (const p of view.partitions) assert.equal(p.epoch, this.state.owners[keyOf(p)]?.epoch, where);
    assert.deepEqual(keysOf(view.revoking), owned.filter((k) => !targeted.includes(k)).sort(), where);
    assert.deepEqual(keysOf(view.pending), targeted.filter((k) => !owned.includes(k)).sort(), where);
  }
}

const TOPICS = ["orders", "audit.log", "payments-v2"];

/** A settled group of `n` members over the topics, built by joins one at a time. */
function settledGroup(rng: Generator, n: number, partitions: Record<string, number>): Group {
  const group = new Group();
  Object.assign(group.partitions, partitions);
  for (let i = 0; i < n; i++) {
    group.join(`member-${i}`, Object.keys(partitions));
    group.converge(rng);
  }
  return group;
}

function ownersSnapshot(state: GroupState) {
  return structuredClone(state.owners);
}

describe("nextGroupState: cooperative hand-over", () => {
  it("a join moves only the newcomer's share, each partition after its owner released it, and converges", () => {
    const rng = generator(1);
    for (let run = 0; run < 40; run++) {
      const n = rng.int(1, 12);
      const topicCount = rng.int(1, 3);
      const partitions = Object.fromEntries(TOPICS.slice(0, topicCount).map((t) => [t, rng.int(1, 40)]));
      const total = Object.values(partitions).reduce((a, b) => a + b, 0);
      const group = settledGroup(rng, n, partitions);
      const before = ownersSnapshot(group.state);
      const generation = group.state.generation;
      group.stops.clear();

      const newcomer = rng.pick(["aaa-new", "member-5x", "zzz-new"]);
      group.join(newcomer, Object.keys(partitions));
      const moving = Object.keys(group.state.targets).filter(
        (k) => group.state.targets[k] !== before[k]?.member,
      );
      assert.equal(moving.length, Math.floor(total / (n + 1)), `${group.where()}: the newcomer's fair share`);
      const rounds = group.converge(rng);
      assert.ok(rounds.stable <= 2 && rounds.settled <= 3, JSON.stringify(rounds));

      const after = group.state.owners;
      for (const [key, owner] of Object.entries(before)) {
        if (moving.includes(key)) {
          assert.equal(after[key]?.member, newcomer, key);
          assert.ok((after[key]?.epoch ?? 0) > generation, `${key}: a new epoch`);
          assert.equal(group.stops.get(key), 1, `${key} was stopped once by ${owner.member}`);
        } else {
          assert.deepEqual(after[key], owner, `${key} did not move: same owner, same epoch`);
          assert.equal(group.stops.get(key), undefined, `${key} was never paused`);
        }
      }
      assert.equal(
        group.state.generation > generation,
        moving.length > 0,
        "a new generation iff something moved",
      );
    }
  });

  it("a leave or crash moves only the departed member's partitions, at once, and converges", () => {
    const rng = generator(2);
    for (let run = 0; run < 40; run++) {
      const n = rng.int(2, 12);
      const partitions = Object.fromEntries(TOPICS.slice(0, rng.int(1, 3)).map((t) => [t, rng.int(1, 40)]));
      const group = settledGroup(rng, n, partitions);
      const before = ownersSnapshot(group.state);
      const generation = group.state.generation;
      const departed = `member-${rng.int(0, n - 1)}`;
      group.stops.clear();

      if (run % 2 === 0) group.leave(departed);
      else group.crash(departed);
      const held = Object.keys(before).filter((k) => before[k]?.member === departed);
      // No one to wait for: the departed member's partitions have their new owners in this very step.
      for (const key of held) {
        assert.notEqual(group.state.owners[key]?.member, departed, key);
        assert.equal(group.state.owners[key]?.epoch, group.state.generation, key);
      }
      if (held.length > 0) assert.equal(group.state.generation, generation + 1);
      const rounds = group.converge(rng);
      assert.equal(rounds.stable, 0, "stable at once");
      assert.ok(rounds.settled <= 1, JSON.stringify(rounds));
      for (const [key, owner] of Object.entries(before)) {
        if (owner.member !== departed) assert.deepEqual(group.state.owners[key], owner, `${key} stays`);
      }
      assert.equal(group.stops.size, 0, "nobody paused anything");
    }
  });

  it("random joins, leaves, crashes, pauses, restarts, subscription changes and new topics, mid-rebalance too", () => {
    const rng = generator(3);
    let transitions = 0;
    for (let run = 0; run < 60; run++) {
      const group = new Group();
      let nextId = 0;
      const live = () => [...group.members.keys()];
      const someTopics = () => {
        const topics = TOPICS.filter(() => rng.next() < 0.6);
        return topics.length > 0 ? topics : [rng.pick(TOPICS)];
      };
      group.partitions.orders = rng.int(1, 30);
      for (let step = 0; step < 120; step++) {
        const r = rng.next();
        if (live().length === 0 || (r < 0.12 && live().length < 10))
          group.join(`m-${nextId++}`, someTopics());
        else if (r < 0.16) group.leave(rng.pick(live()));
        else if (r < 0.2) group.crash(rng.pick(live()));
        else if (r < 0.22) group.pause(rng.pick(live()));
        else if (r < 0.24) group.restart(rng.pick(live()));
        else if (r < 0.28) group.subscribe(rng.pick(live()), someTopics());
        else if (r < 0.3) {
          const topic = rng.pick(TOPICS);
          group.setPartitions(topic, (group.partitions[topic] ?? 0) + rng.int(1, 8));
        } else group.heartbeat(rng.pick(live()));
      }
      if (live().length === 0) group.join(`m-${nextId++}`, someTopics());
      const rounds = group.converge(rng);
      assert.ok(rounds.stable <= 2 && rounds.settled <= 3, `${JSON.stringify(rounds)} ${group.where()}`);
      assert.equal(groupPhase(group.state, group.members), "stable");
      // Settled on a balanced assignment: what the assignor answers for these members.
      assert.deepEqual(
        assignTargets([...group.members.values()], group.counts(), group.state.targets),
        group.state.targets,
      );
      transitions += group.transitions;
    }
    assert.ok(transitions > 2_000, `${transitions} transitions checked`);
  });

  it("partitions of a topic that does not exist yet are handed out once it does", () => {
    const rng = generator(4);
    const group = new Group();
    group.partitions.orders = 4;
    group.join("a", ["orders", "later"]);
    group.join("b", ["later"]);
    group.converge(rng);
    assert.deepEqual(keysOf(memberView(group.state, "b").partitions), []);
    assert.equal(groupPhase(group.state, group.members), "stable");
    const generation = group.state.generation;
    group.setPartitions("later", 6);
    assert.ok(group.state.generation > generation);
    group.converge(rng);
    const later = Object.keys(group.state.owners).filter((k) => parsePartitionKey(k).topic === "later");
    assert.equal(later.length, 6);
    assert.ok(memberView(group.state, "b").partitions.length > 0, "b consumes the new topic");
  });

  it("a partition whose topic is no longer subscribed stays with its owner until it releases it", () => {
    const rng = generator(5);
    const group = new Group();
    group.partitions.orders = 3;
    group.partitions.audit = 2;
    group.join("a", ["audit", "orders"]);
    group.converge(rng);
    const auditEpochs = ["audit/0", "audit/1"].map((k) => group.state.owners[k]?.epoch);
    group.subscribe("a", ["orders"]);
    assert.deepEqual(keysOf(memberView(group.state, "a").revoking), ["audit/0", "audit/1"]);
    assert.equal(groupPhase(group.state, group.members), "rebalancing");
    assert.deepEqual(
      ["audit/0", "audit/1"].map((k) => group.state.owners[k]?.epoch),
      auditEpochs,
      "still a's, at the same epochs",
    );
    group.heartbeat("a"); // still consuming: learns it must stop
    assert.equal(group.state.owners["audit/0"]?.member, "a");
    group.heartbeat("a"); // reports it stopped
    assert.equal(group.state.owners["audit/0"], undefined);
    assert.equal(groupPhase(group.state, group.members), "stable");
  });

  it("returns the current state itself when nothing changes", () => {
    const rng = generator(6);
    const group = settledGroup(rng, 3, { orders: 7 });
    const state = group.state;
    const counts = group.counts();
    assert.equal(nextGroupState(state, group.members, counts), state);
    for (const id of group.members.keys()) {
      const owned = new Set(keysOf(memberView(state, id).partitions));
      assert.equal(nextGroupState(state, group.members, counts, { member: id, owned }), state);
      // Not having started a partition it owns and targets is no release.
      assert.equal(nextGroupState(state, group.members, counts, { member: id, owned: new Set() }), state);
    }
    const empty = emptyGroupState();
    assert.equal(nextGroupState(empty, new Map(), counts), empty);
  });

  it("a heartbeat sent before the member learned it owns a partition does not release it", () => {
    // a was given orders/0 at generation 5 and consumes it; b joined, so orders/0 should move. a's
    // heartbeat was written at generation 4, before a applied the assignment that gave it orders/0 (a
    // push arrived while the heartbeat was in flight), so it does not list the partition.
    const counts: PartitionCounts = (t) => (t === "orders" ? 2 : undefined);
    const members = new Map([
      ["a", member("a", ["orders"])],
      ["b", member("b", ["orders"])],
    ]);
    const state: GroupState = {
      generation: 5,
      targets: { "orders/0": "b", "orders/1": "a" },
      owners: { "orders/0": { member: "a", epoch: 5 }, "orders/1": { member: "a", epoch: 3 } },
    };
    const stale = nextGroupState(state, members, counts, {
      member: "a",
      owned: new Set(["orders/1"]),
      generation: 4,
    });
    assert.equal(stale.owners["orders/0"]?.member, "a", "a still consumes it");
    const current = nextGroupState(state, members, counts, {
      member: "a",
      owned: new Set(["orders/1"]),
      generation: 5,
    });
    assert.equal(current.owners["orders/0"]?.member, "b", "released once a knew of it and let it go");
    assert.ok((current.owners["orders/0"]?.epoch ?? 0) > 5);
  });
});

describe("renewEpochs", () => {
  it("gives the member's partitions a new, higher epoch and touches no one else", () => {
    const rng = generator(7);
    let renewedInAll = 0;
    for (let run = 0; run < 20; run++) {
      const n = rng.int(1, 8);
      const group = settledGroup(rng, n, { orders: rng.int(1, 30), "audit.log": rng.int(1, 10) });
      // Sometimes mid-rebalance: a newcomer waits for partitions the renewed member may be revoking.
      if (run % 2 === 1) group.join("newcomer", ["orders", "audit.log"]);
      const before = group.state;
      const id = `member-${rng.int(0, n - 1)}`;
      const highest = Math.max(0, ...Object.values(before.owners).map((o) => o.epoch));
      const after = renewEpochs(before, id);
      assert.equal(after.generation, before.generation + 1);
      assert.deepEqual(after.targets, before.targets);
      assert.deepEqual(Object.keys(after.owners).sort(), Object.keys(before.owners).sort());
      let renewed = 0;
      for (const [key, owner] of Object.entries(before.owners)) {
        if (owner.member === id) {
          renewed++;
          assert.equal(after.owners[key]?.member, id, key);
          assert.equal(after.owners[key]?.epoch, after.generation, key);
          assert.ok((after.owners[key]?.epoch ?? 0) > highest, `${key}: above every epoch so far`);
        } else {
          assert.deepEqual(after.owners[key], owner, key);
        }
      }
      renewedInAll += renewed;
      assert.ok(!sameGroupState(after, before));
      // The stored state is not modified.
      assert.notEqual(after.owners, before.owners);
    }
    assert.ok(renewedInAll > 20, `${renewedInAll} epochs renewed`);
  });

  it("a restarted member's old process is fenced and the group settles without moving anything", () => {
    const rng = generator(8);
    const group = settledGroup(rng, 4, { orders: 12 });
    const before = ownersSnapshot(group.state);
    group.stops.clear();
    group.restart("member-2");
    const rounds = group.converge(rng);
    assert.equal(rounds.stable, 0);
    for (const [key, owner] of Object.entries(before)) {
      assert.equal(group.state.owners[key]?.member, owner.member, key);
      if (owner.member !== "member-2") assert.deepEqual(group.state.owners[key], owner, key);
      else assert.ok((group.state.owners[key]?.epoch ?? 0) > owner.epoch, key);
    }
    assert.equal(group.stops.size, 0);
  });
});

describe("memberView and groupPhase", () => {
  const state: GroupState = {
    generation: 9,
    targets: { "t/0": "a", "t/1": "b", "t/2": "a", "u/0": "b" },
    owners: {
      "t/0": { member: "a", epoch: 3 },
      "t/1": { member: "a", epoch: 5 },
      "t/2": { member: "a", epoch: 9 },
      "u/0": { member: "c", epoch: 4 },
      "v/0": { member: "c", epoch: 2 },
    },
  };

  it("tells each member what to consume, to stop and to wait for", () => {
    const a = memberView(state, "a");
    assert.equal(a.generation, 9);
    assert.deepEqual(
      [...a.partitions].sort((x, y) => x.partition - y.partition),
      [
        { topic: "t", partition: 0, epoch: 3 },
        { topic: "t", partition: 2, epoch: 9 },
      ],
    );
    assert.deepEqual(a.revoking, [{ topic: "t", partition: 1 }]);
    assert.deepEqual(a.pending, []);
    const b = memberView(state, "b");
    assert.deepEqual(b.partitions, []);
    assert.deepEqual(b.revoking, []);
    assert.deepEqual(keysOf(b.pending), ["t/1", "u/0"]);
    const c = memberView(state, "c");
    assert.deepEqual(keysOf(c.revoking), ["u/0", "v/0"]);
    assert.deepEqual(memberView(state, "nobody"), {
      generation: 9,
      partitions: [],
      revoking: [],
      pending: [],
    });
  });

  it("is empty without members, stable when every partition is with its target, rebalancing otherwise", () => {
    const members = new Map([
      ["a", member("a", ["t"])],
      ["b", member("b", ["t", "u"])],
    ]);
    assert.equal(groupPhase(state, new Map()), "empty");
    assert.equal(groupPhase(state, members), "rebalancing");
    assert.equal(groupPhase(emptyGroupState(), members), "stable");
    const settled: GroupState = {
      generation: 2,
      targets: { "t/0": "a", "u/0": "b" },
      owners: { "t/0": { member: "a", epoch: 1 }, "u/0": { member: "b", epoch: 2 } },
    };
    assert.equal(groupPhase(settled, members), "stable");
    assert.equal(
      groupPhase({ ...settled, owners: { "t/0": { member: "a", epoch: 1 } } }, members),
      "rebalancing",
    );
    assert.equal(
      groupPhase({ ...settled, owners: { ...settled.owners, "x/0": { member: "a", epoch: 2 } } }, members),
      "rebalancing",
      "an owner of a partition nobody should have must still release it",
    );
  });
});
