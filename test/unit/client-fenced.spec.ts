import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { isFenced } from "../../src/client/errors.js";

describe("isFenced", () => {
  it("is the broker's ABORTED answer: another member owns the partition", () => {
    const fromBroker = new ConnectError(
      "commit refused: partition t/0 of group g was given to another member (epoch 3; this member's is 2)",
      Code.Aborted,
    );
    assert.equal(isFenced(fromBroker), true);
  });

  it("is not a connection reset, which Node's HTTP/2 client also reports as ABORTED", () => {
    // What a broker killed mid-commit gives the client: "[aborted] read ECONNRESET", caused by the socket
    // error. Taking it for a fence dropped the partition for good (seen when a broker was killed).
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET", syscall: "read" });
    const fromTransport = new ConnectError("read ECONNRESET", Code.Aborted, undefined, undefined, reset);
    assert.equal(isFenced(fromTransport), false);
    assert.equal(isFenced(new ConnectError("deadline", Code.DeadlineExceeded)), false);
    assert.equal(isFenced(new Error("aborted")), false);
  });
});
