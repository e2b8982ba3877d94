import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { OverloadedError, toConnectError } from "../../src/errors.js";
import { backoffDelay, retryHintMs } from "../../src/client/backoff.js";
import { toClientError } from "../../src/client/errors.js";
import { CreationAdmission } from "../../src/sentinel/admission.js";
import {
  DEFAULT_VERDICT_LIMITS,
  decideVerdict,
  type SuspectEvidence,
  type VerdictInput,
} from "../../src/sentinel/failure-verdict.js";

const silent = (brokerId: string, extra: Partial<SuspectEvidence> = {}): SuspectEvidence => ({
  brokerId,
  heartbeatPresent: false,
  probeAnswered: false,
  suspectForMs: 300,
  ...extra,
});

const input = (suspects: SuspectEvidence[], extra: Partial<VerdictInput> = {}): VerdictInput => ({
  suspects,
  healthyBrokers: 5,
  eventLoopLagMs: 20,
  etcdLatencyMs: 5,
  limits: DEFAULT_VERDICT_LIMITS,
  ...extra,
});

describe("decideVerdict (failure detector)", () => {
  it("declares a broker down when its heartbeat is gone and its Health probe fails", () => {
    assert.deepEqual(decideVerdict(input([silent("b1")])), { down: ["b1"], cleared: [], held: [] });
  });

  it("clears a suspect whose heartbeat is back", () => {
    const verdict = decideVerdict(input([silent("b1", { heartbeatPresent: true })]));
    assert.deepEqual(verdict, { down: [], cleared: ["b1"], held: [] });
  });

  it("holds the verdict on a broker that still answers Health, for probeHoldMs", () => {
    const verdict = decideVerdict(input([silent("b1", { probeAnswered: true }), silent("b2")]));
    assert.deepEqual(verdict.down, ["b2"]);
    assert.deepEqual(verdict.held, [{ brokerId: "b1", reason: "probe-answers" }]);
    // Still no heartbeat after the grace: cut off from the sentinels (it has fenced itself), so down.
    const later = decideVerdict(
      input([silent("b1", { probeAnswered: true, suspectForMs: DEFAULT_VERDICT_LIMITS.probeHoldMs })]),
    );
    assert.deepEqual(later, { down: ["b1"], cleared: [], held: [] });
  });

  it("holds every verdict while this sentinel's event loop lagged or etcd was slow", () => {
    const lagging = decideVerdict(input([silent("b1")], { eventLoopLagMs: 1_500 }));
    assert.deepEqual(lagging.down, []);
    assert.deepEqual(lagging.held, [{ brokerId: "b1", reason: "sentinel-lagging" }]);
    const slowEtcd = decideVerdict(input([silent("b1")], { etcdLatencyMs: 2_000 }));
    assert.deepEqual(slowEtcd.held, [{ brokerId: "b1", reason: "etcd-slow" }]);
  });

  it("treats more than half of the brokers dead at once as suspect", () => {
    const three = [silent("b1"), silent("b2"), silent("b3")];
    const verdict = decideVerdict(input(three, { healthyBrokers: 5 }));
    assert.deepEqual(verdict.down, []);
    assert.deepEqual(
      verdict.held.map((h) => h.reason),
      ["mass-verdict", "mass-verdict", "mass-verdict"],
    );
    // Half is not more than half: 2 of 4 go down; and one broker of one is simply down.
    assert.deepEqual(decideVerdict(input(three.slice(0, 2), { healthyBrokers: 4 })).down, ["b1", "b2"]);
    assert.deepEqual(decideVerdict(input([silent("b1")], { healthyBrokers: 1 })).down, ["b1"]);
  });

  it("stops holding after maxHoldMs: a broker etcd still has no heartbeat from goes down", () => {
    const limits = { ...DEFAULT_VERDICT_LIMITS, maxHoldMs: 10_000 };
    const old = { suspectForMs: 10_000 };
    const verdict = decideVerdict(
      input([silent("b1", { ...old, probeAnswered: true }), silent("b2", old), silent("b3")], {
        eventLoopLagMs: 5_000,
        limits,
      }),
    );
    assert.deepEqual(verdict.down, ["b1", "b2"]);
    assert.deepEqual(verdict.held, [{ brokerId: "b3", reason: "sentinel-lagging" }]);
  });
});

describe("CreationAdmission", () => {
  it("admits up to its bound, refuses one more with a retryable ResourceExhausted, and frees places", () => {
    const admission = new CreationAdmission({ maxPending: 2, retryAfterMs: 300 });
    const first = admission.admit("topic 'a'");
    admission.admit("topic 'b'");
    assert.equal(admission.pending, 2);
    assert.throws(
      () => admission.admit("topic 'c'"),
      (err: unknown) =>
        err instanceof OverloadedError &&
        err.code === Code.ResourceExhausted &&
        err.retryable &&
        err.retryAfterMs === 300 &&
        /topic 'c' was not created, retry in about 300 ms/.test(err.message),
    );
    first();
    first(); // a second release is a no-op
    assert.equal(admission.pending, 1);
    admission.admit("topic 'c'");
    assert.equal(admission.pending, 2);
  });

  it("refuses creations while the brokers have too many role changes to apply", () => {
    let backlog = 11;
    const admission = new CreationAdmission({
      maxPending: 100,
      roleBacklog: () => backlog,
      maxRoleBacklog: 10,
    });
    assert.throws(
      () => admission.admit("topic 'a'"),
      (err: unknown) => err instanceof OverloadedError && /11 role changes still to apply/.test(err.message),
    );
    assert.equal(admission.pending, 0, "a refusal takes no place");
    backlog = 10;
    admission.admit("topic 'a'");
    assert.equal(admission.pending, 1);
  });
});

describe("overload refusals on the wire", () => {
  it("carry their retry hint to the client, which waits at least that long with full jitter", () => {
    const wire = toConnectError(new OverloadedError("busy", 400));
    assert.equal(wire.code, Code.ResourceExhausted);
    const received = toClientError(wire);
    assert.ok(received instanceof OverloadedError && received.retryable);
    assert.equal(retryHintMs(received), 400);
    const delays = Array.from({ length: 200 }, () =>
      backoffDelay(3, 100, 5_000, { jitter: "full", floorMs: 400 }),
    );
    assert.ok(
      delays.every((d) => d === 400),
      "attempt 3 (jitter up to 400 ms) never waits less than the 400 ms hint",
    );
    const spread = Array.from({ length: 200 }, () => backoffDelay(6, 100, 5_000, { jitter: "full" }));
    assert.ok(spread.every((d) => d >= 0 && d <= 3_200));
    assert.ok(Math.min(...spread) < 800 && Math.max(...spread) > 2_400, "full jitter spreads over the range");
  });
});
