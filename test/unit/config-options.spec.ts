import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  envName,
  formatHelp,
  loadOptions,
  option,
  toCamelCase,
  type LoadOptionsInput,
} from "../../src/config/options.js";
import { sentinelOptionSchema } from "../../src/config/sentinel-options.js";
import { InvalidArgumentError } from "../../src/errors.js";

const schema = {
  id: option({ kind: "string", description: "Node id", default: "node-0" }),
  "etcd-endpoints": option({
    kind: "list",
    description: "etcd client URLs",
    default: ["http://127.0.0.1:2379"],
  }),
  "enable-embedded-etcd": option({ kind: "boolean", description: "Run etcd as a child", default: false }),
  "auto-create": option({ kind: "boolean", description: "Create topics on first use", default: true }),
  "etcd-port": option({ kind: "number", description: "etcd client port", default: 2379, min: 1 }),
  "log-level": option({
    kind: "string",
    description: "Log level",
    default: "info",
    choices: ["debug", "info", "warn"],
  }),
  "data-dir": option({ kind: "string", description: "Where data lives", default: "" }),
};

const dir = mkdtempSync(join(tmpdir(), "goulette-config-spec-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes a YAML config file and returns its path. */
function configFile(text: string): string {
  const path = join(dir, `config-${files++}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** loadOptions with an explicit (never the process's) environment. */
function load(argv: string[], env: Record<string, string> = {}, extra: Partial<LoadOptionsInput> = {}) {
  return loadOptions(schema, { argv, env, ...extra });
}

/** Asserts an InvalidArgumentError whose message matches every pattern. */
function assertInvalid(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    for (const pattern of patterns) assert.match(err.message, pattern);
    return true;
  });
}

const shortSchema = {
  topic: option({ kind: "string", description: "Topic", default: "", short: "t" }),
  key: option({ kind: "string", description: "Key", default: "", short: "k" }),
  json: option({ kind: "boolean", description: "JSON", default: false, short: "J" }),
  sentinels: option({
    kind: "list",
    description: "Sentinel URLs",
    default: ["http://127.0.0.1:9090"],
    aliases: ["sentinel"],
  }),
  header: option({
    kind: "list",
    description: "Header k=v",
    default: [],
    short: "H",
    split: false,
    repeatable: true,
  }),
};

describe("short flags, aliases and repeated lists", () => {
  const notices: string[] = [];
  const loadShort = (argv: string[], env: Record<string, string> = {}) =>
    loadOptions(shortSchema, { argv, env, allowPositionals: true, warn: (m) => notices.push(m) });

  it("reads -k value and -kvalue, and refuses an unknown short flag instead of taking it as a message", () => {
    const loaded = loadShort(["-t", "orders", "-kuser1", "-J", "hello"]);
    assert.equal(loaded.values.topic, "orders");
    assert.equal(loaded.values.key, "user1");
    assert.equal(loaded.values.json, true);
    assert.deepEqual(loaded.positionals, ["hello"]);
    assert.throws(() => loadShort(["-t", "orders", "-x", "user1", "hello"]), /unknown flag -x/);
    assert.throws(() => loadShort(["-t"]), /-t \(--topic\) needs a value/);
    assert.throws(() => loadShort(["-Jx"]), /-J takes no value/);
  });

  it("adds up a repeatable list flag (split: false keeps commas); another list keeps its last value", () => {
    const loaded = loadShort(["--sentinels", "a,b", "--sentinels=c", "-H", "x=1,2", "--header", "y=3"]);
    // A wrapper appends a flag again to override it (the test clusters do so for a broker's sentinels).
    assert.deepEqual(loaded.values.sentinels, ["c"]);
    assert.deepEqual(loaded.values.header, ["x=1,2", "y=3"]);
  });

  it("reads a deprecated alias from flags, env and says so once", () => {
    notices.length = 0;
    assert.deepEqual(loadShort(["--sentinel", "http://s:1"]).values.sentinels, ["http://s:1"]);
    assert.deepEqual(notices, ["--sentinel is deprecated; use --sentinels"]);
    notices.length = 0;
    assert.deepEqual(loadShort([], { GOULETTE_SENTINEL: "http://e:1" }).values.sentinels, ["http://e:1"]);
    assert.match(notices[0] ?? "", /GOULETTE_SENTINEL is deprecated; use GOULETTE_SENTINELS/);
    notices.length = 0;
    loadShort(["--sentinels", "http://s:1"]);
    assert.deepEqual(notices, []);
  });

  it("shows short forms, repeatability and deprecated spellings in --help", () => {
    const help = formatHelp("Usage: x", shortSchema);
    assert.match(help, /-k, --key <string>/);
    assert.match(help, /-H, --header <list> \(repeatable\)/);
    assert.match(help, /deprecated spelling: --sentinel/);
  });
});

describe("option names", () => {
  it("maps flags to camelCase properties and GOULETTE_* variables", () => {
    assert.equal(toCamelCase("etcd-peer-port"), "etcdPeerPort");
    assert.equal(toCamelCase("id"), "id");
    assert.equal(toCamelCase("tls-2-ca"), "tls2Ca");
    assert.equal(envName("etcd-peer-port"), "GOULETTE_ETCD_PEER_PORT");
    assert.equal(envName("id"), "GOULETTE_ID");
  });
});

describe("loadOptions", () => {
  it("uses the defaults when no source sets anything", () => {
    const loaded = load([]);
    assert.deepEqual(loaded.values, {
      id: "node-0",
      etcdEndpoints: ["http://127.0.0.1:2379"],
      enableEmbeddedEtcd: false,
      autoCreate: true,
      etcdPort: 2379,
      logLevel: "info",
      dataDir: "",
    });
    assert.ok(Object.values(loaded.sources).every((s) => s === "default"));
    assert.equal(loaded.help, false);
    assert.deepEqual(loaded.positionals, []);
  });

  it("takes a flag over an env variable over the config file over the default", () => {
    const path = configFile(
      "id: from-file\netcd-port: 1000\netcd-endpoints: [http://file:2379]\nlog-level: warn\n",
    );
    const env = { GOULETTE_CONFIG: path, GOULETTE_ID: "from-env", GOULETTE_ETCD_PORT: "2000" };
    const loaded = load(["--id", "from-flag"], env);
    assert.equal(loaded.values.id, "from-flag");
    assert.equal(loaded.values.etcdPort, 2000);
    assert.deepEqual(loaded.values.etcdEndpoints, ["http://file:2379"]);
    assert.equal(loaded.values.logLevel, "warn");
    assert.equal(loaded.values.dataDir, "");
    assert.deepEqual(loaded.sources, {
      id: "flag",
      etcdPort: "env",
      etcdEndpoints: "file",
      logLevel: "file",
      dataDir: "default",
      enableEmbeddedEtcd: "default",
      autoCreate: "default",
    });

    // Peel the sources off one by one: each time the next one down shows through.
    assert.equal(load([], env).values.id, "from-env");
    assert.equal(load([], { GOULETTE_CONFIG: path }).values.id, "from-file");
    assert.equal(load([]).values.id, "node-0");
  });

  it("lets --config choose the file over GOULETTE_CONFIG", () => {
    const envFile = configFile("id: env-file\n");
    const flagFile = configFile("id: flag-file\n");
    assert.equal(load([`--config=${flagFile}`], { GOULETTE_CONFIG: envFile }).values.id, "flag-file");
    assert.equal(load(["--config", flagFile], { GOULETTE_CONFIG: envFile }).values.id, "flag-file");
  });

  it("reads both --x v and --x=v, keeping '=' inside the value", () => {
    assert.equal(load(["--id", "a"]).values.id, "a");
    assert.equal(load(["--id=a=b"]).values.id, "a=b");
    assert.equal(load(["--data-dir="]).values.dataDir, "");
    assert.equal(load(["--etcd-port=7"]).values.etcdPort, 7);
    // The last occurrence wins.
    assert.equal(load(["--id", "first", "--id=second"]).values.id, "second");
  });

  it("reads booleans from bare flags, --no-x, --x=value, env and YAML", () => {
    assert.equal(load(["--enable-embedded-etcd"]).values.enableEmbeddedEtcd, true);
    assert.equal(load(["--no-auto-create"]).values.autoCreate, false);
    assert.equal(
      load(["--no-enable-embedded-etcd"], { GOULETTE_ENABLE_EMBEDDED_ETCD: "true" }).values
        .enableEmbeddedEtcd,
      false,
    );
    assert.equal(load(["--no-auto-create"]).sources.autoCreate, "flag");
    for (const [text, expected] of [
      ["true", true],
      ["1", true],
      ["yes", true],
      ["ON", true],
      ["false", false],
      ["0", false],
      ["no", false],
      ["off", false],
    ] as const) {
      assert.equal(
        load([`--enable-embedded-etcd=${text}`]).values.enableEmbeddedEtcd,
        expected,
        `flag ${text}`,
      );
      assert.equal(load([], { GOULETTE_AUTO_CREATE: text }).values.autoCreate, expected, `env ${text}`);
    }
    const path = configFile("enable-embedded-etcd: true\nautoCreate: false\n");
    const fromFile = load(["--config", path]).values;
    assert.equal(fromFile.enableEmbeddedEtcd, true);
    assert.equal(fromFile.autoCreate, false);
    assertInvalid(() => load(["--auto-create=maybe"]), /--auto-create must be true or false, got 'maybe'/);
    assertInvalid(
      () => load([], { GOULETTE_AUTO_CREATE: "2" }),
      /GOULETTE_AUTO_CREATE must be true or false/,
    );
  });

  it("does not let a bare boolean flag swallow the next argument", () => {
    const loaded = load(["--enable-embedded-etcd", "serve"], {}, { allowPositionals: true });
    assert.equal(loaded.values.enableEmbeddedEtcd, true);
    assert.deepEqual(loaded.positionals, ["serve"]);
  });

  it("splits lists on commas, trimming blanks, from flags, env and YAML", () => {
    assert.deepEqual(load(["--etcd-endpoints", " http://a:1 ,http://b:2,, "]).values.etcdEndpoints, [
      "http://a:1",
      "http://b:2",
    ]);
    assert.deepEqual(load([], { GOULETTE_ETCD_ENDPOINTS: "http://c:3,http://d:4" }).values.etcdEndpoints, [
      "http://c:3",
      "http://d:4",
    ]);
    const sequence = configFile("etcd-endpoints:\n  - http://e:5\n  - ' http://f:6 '\n");
    assert.deepEqual(load(["--config", sequence]).values.etcdEndpoints, ["http://e:5", "http://f:6"]);
    const commaString = configFile("etcdEndpoints: http://g:7,http://h:8\n");
    assert.deepEqual(load(["--config", commaString]).values.etcdEndpoints, ["http://g:7", "http://h:8"]);
  });

  it("enforces choices from every source, naming the source and the choices", () => {
    assert.equal(load(["--log-level", "debug"]).values.logLevel, "debug");
    assertInvalid(
      () => load(["--log-level", "loud"]),
      /--log-level must be one of debug, info, warn, got 'loud'/,
    );
    assertInvalid(
      () => load([], { GOULETTE_LOG_LEVEL: "LOUD" }),
      /GOULETTE_LOG_LEVEL must be one of/,
      /'LOUD'/,
    );
    const path = configFile("log-level: trace\n");
    assertInvalid(() => load(["--config", path]), /'log-level' in the config file must be one of/, /'trace'/);
  });

  it("parses numbers and enforces the minimum", () => {
    assert.equal(load(["--etcd-port", "1"]).values.etcdPort, 1);
    assert.equal(load([], { GOULETTE_ETCD_PORT: " 42 " }).values.etcdPort, 42);
    assertInvalid(() => load(["--etcd-port=0"]), /--etcd-port must be ≥ 1, got 0/);
    assertInvalid(() => load(["--etcd-port", "-5"]), /must be ≥ 1, got -5/);
    assertInvalid(() => load(["--etcd-port", "many"]), /--etcd-port must be a number, got 'many'/);
    assertInvalid(() => load([], { GOULETTE_ETCD_PORT: "" }), /GOULETTE_ETCD_PORT must be a number/);
    assertInvalid(
      () => load(["--config", configFile("etcd-port: 0\n")]),
      /'etcd-port' in the config file must be ≥ 1/,
    );
    assertInvalid(() => load(["--config", configFile("etcd-port: seven\n")]), /must be a number/);
  });

  it("rejects unknown flags", () => {
    assertInvalid(() => load(["--nope"]), /unknown flag --nope/);
    assertInvalid(() => load(["--nope=1"]), /unknown flag --nope/);
    assertInvalid(() => load(["--no-nope"]), /unknown flag --no-nope/);
    assertInvalid(() => load(["--ID", "x"]), /unknown flag --ID/);
  });

  it("asks for a missing value", () => {
    assertInvalid(() => load(["--id"]), /--id needs a value/);
    assertInvalid(() => load(["--etcd-endpoints"]), /--etcd-endpoints needs a value/);
    assertInvalid(() => load(["--config"]), /--config needs a file path/);
  });

  it("rejects positionals unless allowed, and passes everything after -- through", () => {
    assertInvalid(() => load(["stray"]), /unexpected argument 'stray'/);
    assertInvalid(() => load(["-v"]), /unknown flag -v/);
    assert.deepEqual(load(["-"], {}, { allowPositionals: true }).positionals, ["-"]);
    const loaded = load(
      ["one", "--id", "x", "two", "--", "--not-a-flag", "three"],
      {},
      { allowPositionals: true },
    );
    assert.deepEqual(loaded.positionals, ["one", "two", "--not-a-flag", "three"]);
    assert.equal(loaded.values.id, "x");
  });

  it("reports --help and -h without failing", () => {
    assert.equal(load(["--help"]).help, true);
    assert.equal(load(["--id", "x", "-h"]).help, true);
  });

  it("reads kebab-case and camelCase keys from the file, kebab-case first", () => {
    const path = configFile(
      "etcdPort: 3000\ndata-dir: /var/kebab\ndataDir: /var/camel\nenableEmbeddedEtcd: yes\n",
    );
    const loaded = load(["--config", path]);
    assert.equal(loaded.values.etcdPort, 3000);
    assert.equal(loaded.values.dataDir, "/var/kebab");
    assert.equal(loaded.values.enableEmbeddedEtcd, true);
    assert.equal(loaded.sources.etcdPort, "file");
    // A number where a string is expected is taken as its text (ids like 1 are common in YAML).
    assert.equal(load(["--config", configFile("id: 7\n")]).values.id, "7");
  });

  it("treats an empty config file as setting nothing", () => {
    assert.deepEqual(load(["--config", configFile("")]).values, load([]).values);
    assert.deepEqual(load(["--config", configFile("# only a comment\n")]).values, load([]).values);
  });

  it("explains a missing, malformed or non-mapping config file", () => {
    const missing = join(dir, "does-not-exist.yaml");
    assertInvalid(
      () => load(["--config", missing]),
      /cannot read config file/,
      new RegExp(missing.replace(/[.]/g, "\\.")),
    );
    assertInvalid(() => load([], { GOULETTE_CONFIG: missing }), /cannot read config file/);
    const bad = configFile("id: [unclosed\n  port: : :\n");
    assertInvalid(() => load(["--config", bad]), /is not valid YAML/, new RegExp(bad.replace(/[.]/g, "\\.")));
    assertInvalid(() => load(["--config", configFile("- a\n- b\n")]), /must be a YAML mapping/);
    assertInvalid(() => load(["--config", configFile("just a string\n")]), /must be a YAML mapping/);
    assertInvalid(
      () => load(["--config", configFile("id: [1, 2]\n")]),
      /'id' in the config file must be a string/,
    );
  });

  it("rejects --no-x for an option that is not a boolean", () => {
    assertInvalid(() => load(["--no-log-level", "debug"]), /--no-log-level/);
  });

  it("does not turn an empty YAML list value into the string 'undefined'", () => {
    let endpoints: string[] | undefined;
    try {
      endpoints = load(["--config", configFile("etcd-endpoints:\n")]).values.etcdEndpoints;
    } catch (err) {
      assert.ok(err instanceof InvalidArgumentError, String(err));
      return;
    }
    assert.ok(!endpoints.includes("undefined"), `got ${JSON.stringify(endpoints)}`);
  });

  it("rejects flags named like Object.prototype members as unknown", () => {
    assertInvalid(() => load(["--constructor", "x"]), /unknown flag --constructor/);
    assertInvalid(() => load(["--toString"]), /unknown flag --toString/);
  });
});

describe("formatHelp", () => {
  const help = formatHelp("Usage: goulette thing [options]", schema);
  const lines = help.split("\n");

  it("starts with the usage line", () => {
    assert.equal(lines[0], "Usage: goulette thing [options]");
  });

  it("lists every option with its kind, description, env variable and default", () => {
    for (const [name, spec] of Object.entries(schema)) {
      const at = lines.findIndex((line) => line.trim().startsWith(`--${name}`));
      assert.ok(at > 0, `--${name} is listed`);
      const flagLine = lines[at] ?? "";
      if (spec.kind === "boolean") assert.equal(flagLine.trim(), `--${name}`);
      else assert.equal(flagLine.trim(), `--${name} <${spec.kind}>`);
      assert.equal(lines[at + 1]?.trim(), spec.description);
      assert.match(lines[at + 2] ?? "", new RegExp(`env ${envName(name)}, default: `));
    }
  });

  it("prints defaults readably: lists joined, empty strings quoted", () => {
    assert.match(help, /env GOULETTE_ETCD_ENDPOINTS, default: http:\/\/127\.0\.0\.1:2379$/m);
    assert.match(help, /env GOULETTE_DATA_DIR, default: ""$/m);
    assert.match(help, /env GOULETTE_ETCD_PORT, default: 2379$/m);
    assert.match(help, /env GOULETTE_AUTO_CREATE, default: true$/m);
  });

  it("documents --config and GOULETTE_CONFIG", () => {
    assert.match(help, /--config <file>/);
    assert.match(help, /GOULETTE_CONFIG/);
  });
});

describe("sentinelOptionSchema", () => {
  it("keeps the seed's flag names", () => {
    for (const name of [
      "id",
      "address",
      "etcd-endpoints",
      "enable-embedded-etcd",
      "etcd-port",
      "etcd-peer-port",
      "etcd-data-dir",
      "log-level",
    ]) {
      assert.ok(name in sentinelOptionSchema, name);
    }
  });

  it("loads its defaults and takes every source", () => {
    const path = configFile("etcdPeerPort: 12380\nvirtual-nodes: 64\n");
    const { values } = loadOptions(sentinelOptionSchema, {
      argv: ["--id", "sentinel-1", "--enable-embedded-etcd", "--config", path],
      env: { GOULETTE_LOG_LEVEL: "debug", GOULETTE_ETCD_ENDPOINTS: "http://x:1,http://y:2" },
    });
    assert.equal(values.id, "sentinel-1");
    assert.equal(values.enableEmbeddedEtcd, true);
    assert.equal(values.logLevel, "debug");
    assert.deepEqual(values.etcdEndpoints, ["http://x:1", "http://y:2"]);
    assert.equal(values.etcdPeerPort, 12380);
    assert.equal(values.virtualNodes, 64);
    assert.equal(values.address, "0.0.0.0:9090");
    assert.equal(values.etcdPrefix, "/goulette");
    assert.equal(values.heartbeatTtl, 10);
    assertInvalid(
      () => loadOptions(sentinelOptionSchema, { argv: ["--heartbeat-ttl", "1"], env: {} }),
      /--heartbeat-ttl must be ≥ 2, got 1/,
    );
  });
});
