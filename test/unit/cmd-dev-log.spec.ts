import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { reportChildExit } from "../../src/cmd/dev.js";
import { createLogger } from "../../src/observability/logger.js";

describe("goulette dev's log lines", () => {
  it("name an exited child once, without a second 'process' key", async () => {
    const destination = new PassThrough();
    let text = "";
    destination.on("data", (chunk: Buffer) => (text += chunk.toString()));
    // As dev builds its logger.
    const logger = createLogger({ level: "info", base: { process: "dev" }, destination });
    reportChildExit(logger, "broker-1", { code: 1, signal: null }, "boom");
    logger.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const line = text.trim();
    // JSON.parse keeps the last of two equal keys: count them in the raw line.
    assert.equal(line.match(/"process":/g)?.length, 1, line);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.process, "dev");
    assert.equal(parsed.child, "broker-1");
    assert.equal(parsed.reason, "boom");
  });
});
