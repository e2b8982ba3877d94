import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { brokerOptionSchema } from "../../src/config/broker-options.js";
import { corsFromOptions, corsOptions } from "../../src/config/cors-options.js";
import { loadOptions } from "../../src/config/options.js";
import { sentinelOptionSchema } from "../../src/config/sentinel-options.js";
import { CORS_PASSTHROUGH, passthroughArgs, passthroughSchema } from "../../src/cmd/dev-passthrough.js";
import { InvalidArgumentError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "goulette-cors-spec-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const brokerCors = (argv: string[], env: Record<string, string> = {}) =>
  corsFromOptions(loadOptions(brokerOptionSchema, { argv, env }).values);

function assertInvalid(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    for (const pattern of patterns) assert.match(err.message, pattern);
    return true;
  });
}

describe("CORS options (--cors-allowed-origins, --cors-max-age)", () => {
  it("are off by default on sentinels and brokers", () => {
    for (const schema of [sentinelOptionSchema, brokerOptionSchema]) {
      assert.equal(schema["cors-allowed-origins"], corsOptions["cors-allowed-origins"]);
      assert.equal(corsFromOptions(loadOptions(schema, { argv: [], env: {} }).values), undefined);
    }
  });

  it("come from a flag, GOULETTE_CORS_* or the YAML file, normalised to what browsers send", () => {
    assert.deepEqual(
      brokerCors(["--cors-allowed-origins", "http://127.0.0.1:8080, HTTPS://App.Example.com:443/"]),
      {
        allowedOrigins: ["http://127.0.0.1:8080", "https://app.example.com"],
        maxAgeSeconds: 600,
      },
    );
    assert.deepEqual(
      brokerCors([], { GOULETTE_CORS_ALLOWED_ORIGINS: "https://a.example", GOULETTE_CORS_MAX_AGE: "60" }),
      { allowedOrigins: ["https://a.example"], maxAgeSeconds: 60 },
    );
    const file = join(dir, "config.yaml");
    writeFileSync(file, "corsAllowedOrigins:\n  - http://localhost:3000\ncors-max-age: 0\n");
    assert.deepEqual(brokerCors(["--config", file]), {
      allowedOrigins: ["http://localhost:3000"],
      maxAgeSeconds: 0,
    });
    assert.deepEqual(brokerCors(["--cors-allowed-origins", "*"])?.allowedOrigins, ["*"]);
  });

  it("refuse what is not an origin, naming the option and the entry", () => {
    for (const [value, pattern] of [
      ["app.example.com", /'app\.example\.com' is not an origin/],
      ["https://app.example.com/ui", /no path/],
      ["https://app.example.com?x=1", /no path/],
      ["https://user@app.example.com", /no path, query or user/],
      ["ftp://files.example.com", /not an http or https origin/],
      ["https://*.example.com", /wildcards are not supported/],
      ["*,https://app.example.com", /'\*' allows every origin: give it alone/],
    ] as const) {
      assertInvalid(
        () => brokerCors(["--cors-allowed-origins", value]),
        /--cors-allowed-origins \(GOULETTE_CORS_ALLOWED_ORIGINS\)/,
        pattern,
      );
    }
    assertInvalid(() => brokerCors(["--cors-max-age", "-1"]), /--cors-max-age must be ≥ 0/);
    assertInvalid(() => brokerCors(["--cors-max-age", "1.5"]), /whole number/);
  });

  it("are handed by goulette dev to every sentinel and broker when set", () => {
    assert.deepEqual([...CORS_PASSTHROUGH].sort(), Object.keys(corsOptions).sort());
    const { values, sources } = loadOptions(passthroughSchema, {
      argv: ["--cors-allowed-origins", "http://127.0.0.1:8080,http://localhost:8080"],
      env: {},
    });
    assert.deepEqual(
      passthroughArgs(CORS_PASSTHROUGH, values as unknown as Record<string, unknown>, sources),
      ["--cors-allowed-origins", "http://127.0.0.1:8080,http://localhost:8080"],
    );
  });
});
