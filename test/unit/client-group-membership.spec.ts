import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import {
  GroupHeartbeatResponseSchema,
  MemberAssignmentSchema,
  type GroupHeartbeatRequest,
  type GroupHeartbeatResponse,
  type MemberAssignment,
} from "../../src/gen/goulette/v1/group_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { GroupMembership, type MembershipHost } from "../../src/client/group-membership.js";
import type { ClientEvent } from "../../src/client/events.js";
import { SentinelPool } from "../../src/client/sentinel-pool.js";
import type { ClientTransport } from "../../src/client/transport.js";
import type { GouletteError } from "../../src/errors.js";
import { waitFor } from "../helpers/wait.js";

/**
 * GroupMembership against an in-memory SentinelService (no network): what the member sends, and what
 * it does with the answers a real cluster gives only in rare moments (a push crossing a heartbeat
 * answer, NOT_FOUND after a pause, a refused join, sentinels without the group RPCs).
 */

type HeartbeatHandler = (req: GroupHeartbeatRequest, n: number) => GroupHeartbeatResponse;

class FakeSentinel {
  readonly requests: GroupHeartbeatRequest[] = [];
  readonly watches: string[] = [];
  #push: ((a: MemberAssignment) => void) | undefined;
  constructor(public onHeartbeat: HeartbeatHandler) {}

  transport(): ClientTransport {
    const groupHeartbeat = (req: GroupHeartbeatRequest) => {
      this.requests.push(req);
      return this.onHeartbeat(req, this.requests.length - 1);
    };
    const watch = (memberId: string, signal: AbortSignal) => this.#watch(memberId, signal);
    const routes = createRouterTransport((router) =>
      router.service(SentinelService, {
        groupHeartbeat,
        watchGroupAssignment: (req, ctx) => watch(req.memberId, ctx.signal),
      }),
    );
    return {
      produceMode: "stream",
      sentinel: () => routes,
      broker: () => routes,
      forget: () => undefined,
      close: () => undefined,
    };
  }

  async *#watch(memberId: string, signal: AbortSignal): AsyncGenerator<MemberAssignment> {
    this.watches.push(memberId);
    const queue: MemberAssignment[] = [];
    let wake: (() => void) | undefined;
    this.#push = (a) => {
      queue.push(a);
      wake?.();
    };
    while (!signal.aborted) {
      const next = queue.shift();
      if (next) yield next;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  push(a: MemberAssignment): void {
    assert.ok(this.#push, "a watch stream is open");
    this.#push(a);
  }
}

function answer(
  memberId: string,
  generation: number,
  partitions: number[],
  intervalMs = 60_000,
): GroupHeartbeatResponse {
  return create(GroupHeartbeatResponseSchema, {
    assignment: assignment(memberId, generation, partitions),
    heartbeatIntervalMs: intervalMs,
    sessionTimeoutMs: 10_000,
  });
}

function assignment(memberId: string, generation: number, partitions: number[]): MemberAssignment {
  return create(MemberAssignmentSchema, {
    memberId,
    generation: BigInt(generation),
    partitions: partitions.map((partition) => ({ topic: "t", partition, epoch: BigInt(generation) })),
  });
}

interface Recorder extends MembershipHost {
  applied: Array<{ generation: number; partitions: number[] }>;
  lost: string[];
  fatalErrors: GouletteError[];
  uncoordinatedReasons: string[];
  ownedNow: number[];
}

function recorder(): Recorder {
  const r: Recorder = {
    applied: [],
    lost: [],
    fatalErrors: [],
    uncoordinatedReasons: [],
    ownedNow: [],
    owned: () => r.ownedNow.map((partition) => ({ topic: "t", partition })),
    apply: (a) =>
      r.applied.push({ generation: Number(a.generation), partitions: a.partitions.map((p) => p.partition) }),
    membershipLost: (reason) => r.lost.push(reason),
    answered: () => undefined,
    fatal: (error) => r.fatalErrors.push(error),
    uncoordinated: (reason) => r.uncoordinatedReasons.push(reason),
  };
  return r;
}

function membership(fake: FakeSentinel, host: MembershipHost, events: ClientEvent[] = [], instanceId = "") {
  const transport = fake.transport();
  return new GroupMembership({
    group: "g",
    topics: ["t"],
    instanceId,
    sessionTimeoutMs: 6_000,
    clientId: "test/1",
    sentinels: new SentinelPool({
      urls: ["http://s1"],
      transport,
      headers: {},
      timeoutMs: 2_000,
      emit: (e) => events.push(e),
    }),
    emit: (e) => events.push(e),
    host,
    retryBackoffMs: 10,
    maxRetryBackoffMs: 50,
  });
}

describe("GroupMembership", () => {
  it("joins, reports what it owns, applies pushes and answers in generation order, leaves on close", async () => {
    const fake = new FakeSentinel((req) => answer(req.memberId || "m1", 3, [0, 1]));
    const host = recorder();
    const events: ClientEvent[] = [];
    const member = membership(fake, host, events, "pod-0");
    member.start();
    await member.joined();
    const join = fake.requests[0];
    assert.ok(join);
    assert.deepEqual(
      [
        join.group,
        join.memberId,
        join.instanceId,
        join.topics,
        join.sessionTimeoutMs,
        join.clientId,
        join.owned,
      ],
      ["g", "", "pod-0", ["t"], 6_000, "test/1", []],
    );
    assert.equal(member.memberId, "m1");
    assert.deepEqual(host.applied, [{ generation: 3, partitions: [0, 1] }]);
    assert.deepEqual(events.filter((e) => e.type === "joined").length, 1);
    await waitFor(() => fake.watches.includes("m1"), { what: "the watch stream" });

    fake.push(assignment("m1", 5, [0]));
    await waitFor(() => host.applied.length === 2, { what: "the push applied" });
    fake.push(assignment("m1", 4, [0, 1])); // older: crossed the newer one
    fake.push(assignment("old", 9, [])); // another member id
    fake.push(assignment("m1", 6, [0, 2]));
    await waitFor(() => host.applied.length === 3, { what: "the third push" });
    assert.deepEqual(
      host.applied.map((a) => a.generation),
      [3, 5, 6],
    );

    // A release: heartbeat at once with what is still owned (the interval is a minute).
    host.ownedNow = [0, 2];
    fake.onHeartbeat = (req) => answer(req.memberId, 6, [0, 2]);
    member.heartbeatNow();
    await waitFor(() => fake.requests.length === 2, { what: "the immediate heartbeat" });
    const beat = fake.requests[1];
    assert.deepEqual(
      [beat?.memberId, beat?.owned.map((p) => p.partition), beat?.generation, beat?.topics, beat?.leave],
      ["m1", [0, 2], 6n, [], false],
    );

    await member.close(true);
    const leave = fake.requests.at(-1);
    assert.deepEqual([leave?.memberId, leave?.leave], ["m1", true]);
  });

  it("rejoins (same instance id) after NOT_FOUND, losing its partitions first", async () => {
    let joins = 0;
    const fake = new FakeSentinel((req) => {
      // m1 heartbeats again after 30 ms (and is refused); m2 not within the test.
      if (req.memberId === "") return answer(`m${++joins}`, joins * 10, [0], joins === 1 ? 30 : 60_000);
      if (req.memberId === "m1") throw new ConnectError("member m1 is not in group g", Code.NotFound);
      return answer(req.memberId, 20, [0], 60_000);
    });
    const host = recorder();
    const events: ClientEvent[] = [];
    const member = membership(fake, host, events, "pod-0");
    member.start();
    await waitFor(() => member.memberId === "m2", { what: "the rejoin" });
    assert.equal(host.lost.length, 1);
    assert.match(host.lost[0] ?? "", /no longer knows member m1/);
    const rejoin = fake.requests.filter((r) => r.memberId === "").at(-1);
    assert.deepEqual([rejoin?.instanceId, rejoin?.owned], ["pod-0", []]);
    const rejoined = events.find((e) => e.type === "rejoined");
    assert.ok(rejoined?.type === "rejoined");
    assert.deepEqual([rejoined.memberId, rejoined.previousMemberId], ["m2", "m1"]);
    assert.deepEqual(
      host.applied.map((a) => a.generation),
      [10, 20],
      "the new member's first assignment applies although nothing orders it after the old one's",
    );
    await member.close(false);
  });

  it("ends on a join refused for good, with the sentinel's message", async () => {
    const fake = new FakeSentinel(() => {
      throw new ConnectError("group g has 1000 members, the limit", Code.ResourceExhausted);
    });
    const host = recorder();
    const member = membership(fake, host);
    member.start();
    await assert.rejects(member.joined(), /group g has 1000 members/);
    assert.equal(host.fatalErrors[0]?.code, Code.ResourceExhausted);
    assert.equal(fake.requests.length, 1, "not retried");
    await member.close(true);
    assert.equal(fake.requests.length, 1, "nothing to leave");
  });

  it("retries a join that failed for a retryable reason", async () => {
    const fake = new FakeSentinel((req, n) => {
      if (n < 2) throw new ConnectError("no leader yet", Code.Unavailable);
      return answer(req.memberId || "m1", 1, [0]);
    });
    const events: ClientEvent[] = [];
    const member = membership(fake, recorder(), events);
    member.start();
    await member.joined();
    assert.equal(fake.requests.length, 3);
    assert.equal(events.filter((e) => e.type === "error").length, 2, "each failure reported");
    await member.close(false);
  });

  it("tells the consumer when the sentinels do not serve groups", async () => {
    const fake = new FakeSentinel(() => {
      throw new ConnectError("not implemented", Code.Unimplemented);
    });
    const host = recorder();
    const member = membership(fake, host);
    member.start();
    await member.joined();
    assert.equal(host.uncoordinatedReasons.length, 1);
    assert.equal(host.fatalErrors.length, 0);
    await member.close(true);
  });
});
