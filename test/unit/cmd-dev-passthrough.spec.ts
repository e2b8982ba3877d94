import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { brokerOptionSchema } from "../../src/config/broker-options.js";
import { loadOptions } from "../../src/config/options.js";
import { rpcLimitOptions } from "../../src/config/rpc-limit-options.js";
import { sentinelOptionSchema } from "../../src/config/sentinel-options.js";
import {
  BROKER_PASSTHROUGH,
  RPC_PASSTHROUGH,
  SENTINEL_PASSTHROUGH,
  passthroughArgs,
  passthroughSchema,
} from "../../src/cmd/dev-passthrough.js";

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const { values, sources } = loadOptions(passthroughSchema, { argv, env });
  return { values: values as unknown as Record<string, unknown>, sources };
};

describe("goulette dev option pass-through", () => {
  it("uses the sentinel's and broker's own option specs, and every --rpc-* option", () => {
    for (const name of SENTINEL_PASSTHROUGH)
      assert.equal(passthroughSchema[name], sentinelOptionSchema[name]);
    for (const name of BROKER_PASSTHROUGH) assert.equal(passthroughSchema[name], brokerOptionSchema[name]);
    assert.deepEqual([...RPC_PASSTHROUGH].sort(), Object.keys(rpcLimitOptions).sort());
    assert.ok(RPC_PASSTHROUGH.every((name) => name in sentinelOptionSchema && name in brokerOptionSchema));
  });

  it("passes only what was set (flag or env), in the child's flag syntax", () => {
    const { values, sources } = load(["--rpc-max-connections", "77", "--virtual-nodes", "20"], {
      GOULETTE_SEGMENT_BYTES: "1048576",
    });
    assert.deepEqual(passthroughArgs(RPC_PASSTHROUGH, values, sources), ["--rpc-max-connections", "77"]);
    assert.deepEqual(passthroughArgs(SENTINEL_PASSTHROUGH, values, sources), ["--virtual-nodes", "20"]);
    assert.deepEqual(passthroughArgs(BROKER_PASSTHROUGH, values, sources), ["--segment-bytes", "1048576"]);
  });

  it("passes nothing when nothing was set", () => {
    const { values, sources } = load([]);
    for (const names of [RPC_PASSTHROUGH, SENTINEL_PASSTHROUGH, BROKER_PASSTHROUGH])
      assert.deepEqual(passthroughArgs(names, values, sources), []);
  });

  it("writes booleans and lists the way the option loader reads them back", () => {
    const values = { flagOn: true, flagOff: false, items: ["a", "b"] };
    const sources = { flagOn: "flag", flagOff: "env", items: "file" };
    assert.deepEqual(passthroughArgs(["flag-on", "flag-off", "items"], values, sources), [
      "--flag-on",
      "--no-flag-off",
      "--items",
      "a,b",
    ]);
  });
});
