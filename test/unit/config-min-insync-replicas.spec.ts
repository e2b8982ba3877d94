import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { brokerOptionSchema } from "../../src/config/broker-options.js";
import { formatHelp, loadOptions } from "../../src/config/options.js";
import { InvalidArgumentError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "goulette-min-isr-options-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function load(argv: string[], env: NodeJS.ProcessEnv = {}): number {
  return loadOptions(brokerOptionSchema, { argv, env }).values.minInsyncReplicas;
}

function configFile(yaml: string): string {
  const path = join(dir, `broker-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

function assertInvalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `an InvalidArgumentError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("broker --min-insync-replicas", () => {
  it("defaults to 1 (the leader alone satisfies acks=all)", () => {
    assert.equal(load([]), 1);
  });

  it("is read from the flag, GOULETTE_MIN_INSYNC_REPLICAS and the YAML key, in that order", () => {
    const file = configFile("min-insync-replicas: 3\n");
    assert.equal(load(["--min-insync-replicas", "2"]), 2);
    assert.equal(load([], { GOULETTE_MIN_INSYNC_REPLICAS: "2" }), 2);
    assert.equal(load(["--config", file]), 3);
    assert.equal(load(["--config", configFile("minInsyncReplicas: 4\n")]), 4);
    assert.equal(load(["--config", file], { GOULETTE_MIN_INSYNC_REPLICAS: "2" }), 2);
    assert.equal(
      load(["--min-insync-replicas=5", "--config", file], { GOULETTE_MIN_INSYNC_REPLICAS: "2" }),
      5,
    );
  });

  it("accepts only whole numbers from 1 to 16 (the most replicas a topic can have), naming the source", () => {
    assert.equal(load(["--min-insync-replicas", "16"]), 16);
    assertInvalid(() => load(["--min-insync-replicas", "17"]), /--min-insync-replicas must be ≤ 16, got 17/);
    assertInvalid(() => load(["--min-insync-replicas", "0"]), /--min-insync-replicas must be ≥ 1, got 0/);
    assertInvalid(() => load(["--min-insync-replicas", "-2"]), /must be ≥ 1, got -2/);
    assertInvalid(() => load(["--min-insync-replicas", "1.5"]), /must be a whole number, got '1.5'/);
    assertInvalid(() => load(["--min-insync-replicas", "two"]), /must be a number, got 'two'/);
    assertInvalid(
      () => load([], { GOULETTE_MIN_INSYNC_REPLICAS: "0" }),
      /GOULETTE_MIN_INSYNC_REPLICAS must be ≥ 1/,
    );
    assertInvalid(
      () => load(["--config", configFile("min-insync-replicas: 0\n")]),
      /'min-insync-replicas' in the config file must be ≥ 1/,
    );
  });

  it("is documented in --help with its env variable and default", () => {
    assert.match(
      formatHelp("goulette broker", brokerOptionSchema),
      /--min-insync-replicas <number>\n.*in sync.*\n.*env GOULETTE_MIN_INSYNC_REPLICAS, default: 1$/m,
    );
  });
});
