import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { runGoulette, type GouletteRun } from "../helpers/goulette-process.js";

/** Runs `goulette <args>` with `input` on stdin, without GOULETTE_* from the environment. */
const goulette = (args: string[], input = "", timeoutMs = 60_000): Promise<GouletteRun> =>
  runGoulette(args, { input, timeoutMs, cleanEnv: true });

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

/** The CLI's flags as kcat users type them, the input and output formats, and argument errors. */
describe("goulette produce / consume flags", () => {
  let cluster: TestCluster;
  let s: string[];
  const dir = mkdtempSync(path.join(tmpdir(), "goulette-cli-flags-"));

  before(async () => {
    cluster = await startCluster({ sentinels: 1, brokers: 1 });
    s = ["-s", cluster.sentinelUrls.join(",")];
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every message of a one-partition topic, printed with `format`. */
  const readAll = async (topic: string, format: string) => {
    const run = await goulette([
      "consume",
      ...s,
      "-t",
      topic,
      "-o",
      "earliest",
      "-f",
      format,
      "--idle-timeout",
      "1500",
    ]);
    assert.equal(run.code, 0, run.stderr);
    return lines(run.stdout);
  };

  it("an unknown short or long flag is an error and produces nothing, -k is the key", async () => {
    await cluster.createTopic("short", { partitions: 1, replicas: 1 });
    const unknown = await goulette(["produce", ...s, "-t", "short", "-x", "user1", "hello"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^goulette: unknown flag -x \(see --help\)\n$/);
    const unknownLong = await goulette(["produce", ...s, "-t", "short", "--kee", "user1", "hello"]);
    assert.equal(unknownLong.code, 1);
    assert.match(unknownLong.stderr, /unknown flag --kee/);
    const keyed = await goulette(["produce", ...s, "-t", "short", "-k", "user1", "hello"]);
    assert.equal(keyed.code, 0, keyed.stderr);
    assert.match(keyed.stderr, /produced 1 message to short/);
    assert.deepEqual(await readAll("short", "%k=%s"), ["user1=hello"]);
  });

  it("reads per-line keys with --key-separator, repeated --header, and --file messages", async () => {
    await cluster.createTopic("lines", { partitions: 1, replicas: 1 });
    const produced = await goulette(
      ["produce", ...s, "-t", "lines", "-K", ":", "-H", "source=cli", "--header", "tags=a,b"],
      "u1:first\nu2:second:with colon\nno separator\n",
    );
    assert.equal(produced.code, 1, "a line without the separator fails");
    assert.match(produced.stderr, /message 3 has no key separator ':'/);
    assert.match(produced.stderr, /produced 2 messages to lines .*\(1 failed\)/);
    const one = path.join(dir, "one.txt");
    const two = path.join(dir, "two.txt");
    writeFileSync(one, "file one\nsecond line");
    writeFileSync(two, "file two");
    const files = await goulette(["produce", ...s, "-t", "lines", "-k", "f", "--file", one, "-F", two]);
    assert.equal(files.code, 0, files.stderr);
    assert.deepEqual(await readAll("lines", "%o|%k|%s|%h"), [
      "0|u1|first|source=cli,tags=a,b",
      "1|u2|second:with colon|source=cli,tags=a,b",
      "2|f|file one",
      "second line|",
      "3|f|file two|",
    ]);
  });

  it("--format prints topic, partition, offset, timestamp; --offset -n and --last n start at the last n", async () => {
    await cluster.createTopic("tail", { partitions: 2, replicas: 1 });
    for (const partition of ["0", "1"]) {
      const run = await goulette(["produce", ...s, "-t", "tail", "-p", partition], "a\nb\nc\nd\n");
      assert.equal(run.code, 0, run.stderr);
    }
    const byOffset = await goulette([
      "consume",
      ...s,
      "-t",
      "tail",
      "-o",
      "-2",
      "-f",
      "%t %p %o %s %T",
      "-c",
      "4",
    ]);
    assert.equal(byOffset.code, 0, byOffset.stderr);
    const rows = lines(byOffset.stdout).map((line) => line.split(" "));
    assert.deepEqual(rows.map((r) => r.slice(0, 4).join(" ")).sort(), [
      "tail 0 2 c",
      "tail 0 3 d",
      "tail 1 2 c",
      "tail 1 3 d",
    ]);
    for (const row of rows) assert.ok(Math.abs(Number(row[4]) - Date.now()) < 120_000, `timestamp ${row[4]}`);
    const last = await goulette(["consume", ...s, "-t", "tail", "--last", "1", "-p", "1", "-c", "1", "-J"]);
    assert.equal(last.code, 0, last.stderr);
    const json = JSON.parse(lines(last.stdout)[0] ?? "{}") as {
      partition: number;
      offset: number;
      value: string;
    };
    assert.deepEqual([json.partition, json.offset, json.value], [1, 3, "d"]);
  });

  it("refuses contradicting or malformed consume flags in one line", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--json", "--format", "%s"], /--json and --format: give one/],
      [["--format", "%s %y"], /--format: unknown '%y'/],
      [["--offset", "-1", "--last", "2"], /--last contradicts --offset -1/],
      [["--offset", "soon"], /--offset must be earliest, latest or an offset ≥ 0, got 'soon'/],
      [["-Z"], /unknown flag -Z/],
    ];
    for (const [args, pattern] of cases) {
      const run = await goulette(["consume", ...s, "-t", "tail", ...args]);
      assert.equal(run.code, 1, args.join(" "));
      assert.match(run.stderr, pattern);
    }
  });

  it("--sentinels everywhere; the former --sentinel still works with a deprecation notice", async () => {
    const url = cluster.sentinelUrls.join(",");
    const old = await goulette(["admin", "status", "--sentinel", url]);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stderr, /--sentinel is deprecated; use --sentinels/);
    const now = await goulette(["admin", "status", "--sentinels", url]);
    assert.equal(now.code, 0, now.stderr);
    assert.equal(now.stderr, "");
    assert.match(now.stdout, /answered by:/);
  });
});
