import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { brokerOptionSchema } from "../../src/config/broker-options.js";
import { formatHelp, loadOptions, option } from "../../src/config/options.js";
import { rpcLimitOptions, rpcLimitsFromOptions } from "../../src/config/rpc-limit-options.js";
import { sentinelOptionSchema } from "../../src/config/sentinel-options.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { DEFAULT_RPC_LIMITS, resolveRpcLimits } from "../../src/server/limits.js";

const dir = mkdtempSync(join(tmpdir(), "goulette-rpc-limits-spec-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function configFile(text: string): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

function assertInvalid(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    for (const pattern of patterns) assert.match(err.message, pattern);
    return true;
  });
}

/** The sentinel's limits from argv and env (never the process's environment). */
function sentinelLimits(argv: string[], env: Record<string, string> = {}) {
  return rpcLimitsFromOptions(loadOptions(sentinelOptionSchema, { argv, env }).values);
}

describe("RPC server limit options", () => {
  it("default to the server's own limits, with the request size and the budgets it sizes left to each server", () => {
    // The in-flight budgets grow with the request size when left to their defaults.
    const { maxInflightBytes, maxConnectionInflightBytes, ...fixed } = DEFAULT_RPC_LIMITS;
    assert.ok(maxInflightBytes > 0 && maxConnectionInflightBytes > 0);
    for (const schema of [sentinelOptionSchema, brokerOptionSchema]) {
      const { values } = loadOptions(schema, { argv: [], env: {} });
      assert.deepEqual(rpcLimitsFromOptions(values), fixed);
    }
  });

  it("are options of both the sentinel and the broker", () => {
    for (const name of Object.keys(rpcLimitOptions)) {
      assert.ok(Object.hasOwn(sentinelOptionSchema, name), `sentinel --${name}`);
      assert.ok(Object.hasOwn(brokerOptionSchema, name), `broker --${name}`);
    }
  });

  it("come from flags, GOULETTE_RPC_* variables and YAML, flags first", () => {
    const file = configFile(
      [
        "rpc-max-connections: 100",
        "rpcMaxConcurrentStreams: 50",
        "rpc-idle-timeout: 30000",
        "rpc-max-request-bytes: 65536",
      ].join("\n"),
    );
    const limits = sentinelLimits(
      ["--config", file, "--rpc-max-connections", "200", "--rpc-headers-timeout=5000"],
      { GOULETTE_RPC_MAX_CONNECTIONS: "300", GOULETTE_RPC_KEEPALIVE_TIMEOUT: "20000" },
    );
    assert.deepEqual(limits, {
      maxRequestBytes: 65536,
      maxConnections: 200,
      maxConcurrentStreams: 50,
      headersTimeoutMs: 5000,
      requestTimeoutMs: DEFAULT_RPC_LIMITS.requestTimeoutMs,
      keepAliveTimeoutMs: 20000,
      idleTimeoutMs: 30000,
      maxRequestElements: DEFAULT_RPC_LIMITS.maxRequestElements,
    });
  });

  it("refuse what is not a whole number, naming the source", () => {
    assertInvalid(() => sentinelLimits(["--rpc-max-connections", "1.5"]), /--rpc-max-connections/, /whole/);
    assertInvalid(
      () => sentinelLimits([], { GOULETTE_RPC_IDLE_TIMEOUT: "ten seconds" }),
      /GOULETTE_RPC_IDLE_TIMEOUT/,
      /must be a number/,
    );
    assertInvalid(
      () => sentinelLimits(["--config", configFile("rpc-max-concurrent-streams: true")]),
      /'rpc-max-concurrent-streams' in the config file/,
    );
    assertInvalid(() => sentinelLimits(["--rpc-request-timeout="]), /--rpc-request-timeout/, /number/);
  });

  it("refuse values out of range", () => {
    assertInvalid(() => sentinelLimits(["--rpc-max-connections", "0"]), /--rpc-max-connections/, /≥ 1/);
    assertInvalid(() => sentinelLimits(["--rpc-max-concurrent-streams", "-3"]), /≥ 1/);
    assertInvalid(
      () => sentinelLimits(["--rpc-max-concurrent-streams", String(2 ** 31)]),
      /--rpc-max-concurrent-streams/,
      /≤ 2147483647/,
    );
    assertInvalid(() => sentinelLimits(["--rpc-headers-timeout", "5"]), /--rpc-headers-timeout/, /≥ 100/);
    assertInvalid(() => sentinelLimits(["--rpc-idle-timeout", "1e12"]), /≤ 2147483647/);
    assertInvalid(() => sentinelLimits(["--rpc-max-request-bytes", "-1"]), /≥ 0/);
    // 0 means "the server's default"; anything else must hold a small request.
    assertInvalid(
      () => sentinelLimits(["--rpc-max-request-bytes", "100"]),
      /--rpc-max-request-bytes \(GOULETTE_RPC_MAX_REQUEST_BYTES\)/,
      /between 1024 and/,
    );
    assert.equal(sentinelLimits(["--rpc-max-request-bytes", "0"]).maxRequestBytes, undefined);
  });

  it("refuse a header deadline beyond the request deadline", () => {
    assertInvalid(
      () => sentinelLimits(["--rpc-headers-timeout", "70000"]),
      /--rpc-headers-timeout .* is 70000 ms, more than --rpc-request-timeout .*60000 ms/,
    );
    const ok = sentinelLimits(["--rpc-headers-timeout", "70000", "--rpc-request-timeout", "70000"]);
    assert.equal(ok.headersTimeoutMs, 70000);
  });

  it("refuse a request size below what the process must accept", () => {
    const { values } = loadOptions(brokerOptionSchema, {
      argv: ["--max-message-bytes", "1048576", "--rpc-max-request-bytes", "1048576"],
      env: {},
    });
    assertInvalid(
      () =>
        rpcLimitsFromOptions(values, {
          minRequestBytes: 1048576 + 65536,
          minRequestBytesReason: "one message",
        }),
      /--rpc-max-request-bytes .* is 1048576, below the 1114112 bytes one message/,
    );
    assert.equal(rpcLimitsFromOptions(values, { minRequestBytes: 1024 }).maxRequestBytes, 1048576);
  });

  it("are listed in --help with their variables and defaults", () => {
    const help = formatHelp("usage", sentinelOptionSchema);
    assert.match(
      help,
      /--rpc-max-connections <number>\n.*\n\s+env GOULETTE_RPC_MAX_CONNECTIONS, default: 8192/,
    );
    assert.match(help, /env GOULETTE_RPC_IDLE_TIMEOUT, default: 300000/);
  });
});

describe("number options: integer and max", () => {
  const schema = {
    count: option({ kind: "number", description: "A count", default: 1, min: 1, max: 10, integer: true }),
    ratio: option({ kind: "number", description: "A ratio", default: 0.5, max: 1 }),
  };
  const load = (argv: string[]) => loadOptions(schema, { argv, env: {} }).values;

  it("accepts whole numbers in range and fractions where allowed", () => {
    assert.deepEqual(load(["--count", "10", "--ratio", "0.25"]), { count: 10, ratio: 0.25 });
  });

  it("refuses fractions of an integer option and values above max", () => {
    assertInvalid(() => load(["--count", "2.5"]), /--count must be a whole number, got '2.5'/);
    assertInvalid(() => load(["--count", "11"]), /--count must be ≤ 10, got 11/);
    assertInvalid(() => load(["--ratio", "1.5"]), /--ratio must be ≤ 1/);
  });
});

describe("resolveRpcLimits", () => {
  it("fills in the defaults and keeps the request size unset", () => {
    assert.deepEqual(resolveRpcLimits(), { ...DEFAULT_RPC_LIMITS });
    assert.deepEqual(resolveRpcLimits({ maxConnections: 5 }), { ...DEFAULT_RPC_LIMITS, maxConnections: 5 });
  });

  it("refuses nonsense given in code, by the limit's name", () => {
    assertInvalid(
      () => resolveRpcLimits({ maxConcurrentStreams: 0 }),
      /maxConcurrentStreams must be between 1/,
    );
    assertInvalid(
      () => resolveRpcLimits({ idleTimeoutMs: Number.NaN }),
      /idleTimeoutMs must be a whole number/,
    );
    assertInvalid(() => resolveRpcLimits({ maxRequestBytes: 2 ** 40 }), /maxRequestBytes must be between/);
    assertInvalid(
      () => resolveRpcLimits({ headersTimeoutMs: 5_000, requestTimeoutMs: 1_000 }),
      /headersTimeoutMs is 5000 ms, more than requestTimeoutMs \(1000 ms\)/,
    );
  });
});
