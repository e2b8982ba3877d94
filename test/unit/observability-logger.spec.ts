import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLogger } from "../../src/observability/logger.js";

/** Every JSON line a logger wrote to `stream` so far. */
function lines(stream: PassThrough): Array<Record<string, unknown>> {
  const text = (stream.read() as Buffer | null)?.toString("utf8") ?? "";
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("logger", () => {
  it("an error logged under `err` keeps its type, message, stack and code", () => {
    const out = new PassThrough();
    const logger = createLogger({ destination: out, base: { broker: "b1" } });
    logger
      .child({ component: "replication" })
      .warn({ err: new ConnectError("no leader yet", Code.Unavailable) }, "failed");
    const [line] = lines(out);
    const err = line?.err as Record<string, unknown>;
    assert.equal(err.type, "ConnectError");
    assert.equal(err.message, "[unavailable] no leader yet");
    assert.equal(err.code, Code.Unavailable);
    assert.match(String(err.stack), /ConnectError: \[unavailable\] no leader yet\n\s+at /);
    assert.equal(line?.broker, "b1");
    assert.equal(line?.component, "replication");
  });

  it("a thrown non-Error value is logged as it is", () => {
    const out = new PassThrough();
    createLogger({ destination: out }).error({ err: "plain string" }, "odd throw");
    assert.equal(lines(out)[0]?.err, "plain string");
  });
});
