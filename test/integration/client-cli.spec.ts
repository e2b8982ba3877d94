import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { GOULETTE_BIN } from "../helpers/sentinel-process.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `goulette <args>` with `input` on stdin (none: stdin closed at once). */
function goulette(args: string[], input = "", timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GOULETTE_BIN, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`goulette ${args.join(" ")} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

describe("goulette produce / consume", () => {
  let cluster: TestCluster;
  let sentinel: string[];

  before(async () => {
    cluster = await startCluster({ sentinels: 1, brokers: 2 });
    sentinel = ["--sentinel", cluster.sentinelUrls.join(",")];
  });
  after(async () => {
    await cluster?.stop();
  });

  it("produces arguments and stdin lines, consumes them for a group, and resumes after its commits", async () => {
    const topic = ["--topic", "cli"];
    const created = await goulette([
      "produce",
      ...sentinel,
      ...topic,
      "--partitions",
      "3",
      "--replicas",
      "2",
      "--json",
      "a",
      "b",
      "c",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const acks = lines(created.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      acks.map((a) => a.topic),
      ["cli", "cli", "cli"],
    );
    assert.deepEqual(
      new Set(acks.map((a) => a.partition)),
      new Set([0, 1, 2]),
      "round-robin over 3 partitions",
    );
    assert.match(created.stderr, /produced 3 messages to cli/);

    // 2000 stdin lines with one key: one partition, consecutive offsets, in line order.
    const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n") + "\n";
    const keyed = await goulette(["produce", ...sentinel, ...topic, "--key", "k1", "--json"], input);
    assert.equal(keyed.code, 0, keyed.stderr);
    const keyedAcks = lines(keyed.stdout).map(
      (line) => JSON.parse(line) as { partition: number; offset: number },
    );
    assert.equal(keyedAcks.length, 2000);
    assert.equal(new Set(keyedAcks.map((a) => a.partition)).size, 1, "one key, one partition");
    const offsets = keyedAcks.map((a) => a.offset);
    assert.deepEqual(
      offsets,
      Array.from({ length: 2000 }, (_, i) => (offsets[0] as number) + i),
    );

    const consumed = await goulette([
      "consume",
      ...sentinel,
      ...topic,
      "--group",
      "g1",
      "--from-beginning",
      "--max",
      "2003",
      "--json",
    ]);
    assert.equal(consumed.code, 0, consumed.stderr);
    const messages = lines(consumed.stdout).map(
      (line) => JSON.parse(line) as { partition: number; offset: number; value: string; key: string },
    );
    assert.equal(messages.length, 2003);
    assert.deepEqual(
      messages
        .filter((m) => m.key === "")
        .map((m) => m.value)
        .sort(),
      ["a", "b", "c"],
    );
    assert.deepEqual(
      messages.filter((m) => m.key === "k1").map((m) => m.value),
      Array.from({ length: 2000 }, (_, i) => `line ${i}`),
      "one partition is consumed in order",
    );

    // The group committed everything: nothing left for it.
    const again = await goulette([
      "consume",
      ...sentinel,
      ...topic,
      "--group",
      "g1",
      "--idle-timeout",
      "1500",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, "");

    // A new group without --from-beginning starts at the end, and remembers that start.
    const fresh = await goulette([
      "consume",
      ...sentinel,
      ...topic,
      "--group",
      "g2",
      "--idle-timeout",
      "1500",
    ]);
    assert.equal(fresh.stdout, "");
    assert.equal((await goulette(["produce", ...sentinel, ...topic, "late"])).code, 0);
    const late = await goulette(["consume", ...sentinel, ...topic, "--group", "g2", "--max", "1"]);
    assert.equal(late.code, 0, late.stderr);
    assert.equal(late.stdout, "late\n");
  });

  it("reports failures: a refused message fails the run, missing flags are named", async () => {
    const big = "x".repeat(1024 * 1024 + 1);
    const refused = await goulette(
      ["produce", ...sentinel, "--topic", "cli-big", "--replicas", "1"],
      `small\n${big}\n`,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /message 2 failed: .*exceeds --max-message-bytes/);
    assert.match(refused.stderr, /produced 1 message to cli-big .*\(1 failed\)/);

    const noGroup = await goulette(["consume", ...sentinel, "--topic", "cli"]);
    assert.equal(noGroup.code, 1);
    assert.match(noGroup.stderr, /--group is required/);
    const noTopic = await goulette(["produce", ...sentinel, "x"]);
    assert.equal(noTopic.code, 1);
    assert.match(noTopic.stderr, /--topic is required/);
  });
});
