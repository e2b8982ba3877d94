import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { decideAck, decideFailure } from "../../src/client/ack-decisions.js";
import { BrokerUnreachableError, MessageRejectedError } from "../../src/client/errors.js";
import { ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import { messageAck } from "../../src/broker/wire.js";

describe("decideAck", () => {
  it("acknowledges a record with its offset and duplicate flag", () => {
    assert.deepEqual(decideAck("t", 2, 7n, messageAck(7n, 41, ProduceError.NONE, "", true)), {
      kind: "acknowledged",
      ack: { topic: "t", partition: 2, offset: 41, messageId: 7, duplicate: true },
    });
  });

  it("retries leadership errors after asking where the leader is, and replica/storage errors as they are", () => {
    for (const [error, refresh] of [
      [ProduceError.NOT_LEADER, true],
      [ProduceError.UNKNOWN_PARTITION, true],
      [ProduceError.NOT_ENOUGH_REPLICAS, false],
      [ProduceError.STORAGE, false],
    ] as const) {
      const decision = decideAck("t", 0, 1n, messageAck(1n, -1, error, "why"));
      assert.equal(decision.kind, "retry", ProduceError[error]);
      assert.ok(decision.kind === "retry");
      assert.equal(decision.refresh, refresh, ProduceError[error]);
      assert.equal(decision.error.message, "why");
      assert.equal(decision.error.retryable, true);
      assert.equal(decision.reason, ProduceError[error]);
    }
  });

  it("rejects too large, invalid and unknown errors for good", () => {
    const reasons = [ProduceError.MESSAGE_TOO_LARGE, ProduceError.INVALID, 99 as ProduceError].map(
      (error) => {
        const decision = decideAck("t", 0, 1n, messageAck(1n, -1, error, "no"));
        assert.equal(decision.kind, "rejected");
        assert.ok(decision.kind === "rejected" && decision.error instanceof MessageRejectedError);
        return decision.error.reason;
      },
    );
    assert.deepEqual(reasons, ["message-too-large", "invalid", "unknown"]);
  });

  it("retries a record whose ack is missing or names another message", () => {
    for (const ack of [undefined, messageAck(8n, 3, ProduceError.NONE, "")]) {
      const decision = decideAck("t", 0, 7n, ack);
      assert.equal(decision.kind, "retry");
      assert.ok(decision.kind === "retry" && !decision.refresh);
      assert.equal(decision.reason, "incomplete response");
    }
  });
});

describe("decideFailure", () => {
  it("a broken connection or a request timeout reports the broker unreachable", () => {
    for (const err of [
      new ConnectError("timed out", Code.DeadlineExceeded),
      new ConnectError("reset", Code.Unavailable, undefined, undefined, new Error("ECONNRESET")),
    ]) {
      const decision = decideFailure("b1", "127.0.0.1:9", err);
      assert.equal(decision.kind, "unreachable");
      assert.ok(decision.error instanceof BrokerUnreachableError);
      assert.equal(decision.error.brokerId, "b1");
    }
  });

  it("retries retryable errors and fails the others", () => {
    assert.equal(decideFailure("b1", "a:1", new ConnectError("busy", Code.ResourceExhausted)).kind, "retry");
    const denied = decideFailure("b1", "a:1", new ConnectError("no", Code.PermissionDenied));
    assert.equal(denied.kind, "fail");
    assert.equal(denied.error.code, Code.PermissionDenied);
  });
});
