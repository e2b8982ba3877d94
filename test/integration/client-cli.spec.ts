import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { RANGE_PROBE_GROUP } from "../../src/client/partition-fetcher.js";
import { Producer } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { GOULETTE_BIN, runGoulette, type GouletteRun } from "../helpers/goulette-process.js";
import { waitFor } from "../helpers/wait.js";

/** Runs `goulette <args>` with `input` on stdin (none: stdin closed at once). */
const goulette = (args: string[], input = "", timeoutMs = 60_000): Promise<GouletteRun> =>
  runGoulette(args, { input, timeoutMs });

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
      "--partitioner",
      "round-robin",
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

    // The default (sticky): messages without a key fill one partition's batch before the next.
    const sticky = await goulette([
      "produce",
      ...sentinel,
      ...["--topic", "cli-sticky", "--partitions", "3", "--replicas", "1", "--json"],
      ...["d", "e", "f"],
    ]);
    assert.equal(sticky.code, 0, sticky.stderr);
    const stickyAcks = lines(sticky.stdout).map((line) => JSON.parse(line) as { partition: number });
    assert.equal(stickyAcks.length, 3);
    assert.equal(new Set(stickyAcks.map((a) => a.partition)).size, 1, "one batch, one partition");

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

    const noTopic = await goulette(["produce", ...sentinel, "x"]);
    assert.equal(noTopic.code, 1);
    assert.match(noTopic.stderr, /--topic is required/);
    const noConsumeTopic = await goulette(["consume", ...sentinel, "--group", "g"]);
    assert.equal(noConsumeTopic.code, 1);
    assert.match(noConsumeTopic.stderr, /--topic is required/);
    const badOffset = await goulette(["consume", ...sentinel, "--topic", "cli", "--offset", "first"]);
    assert.equal(badOffset.code, 1);
    assert.match(badOffset.stderr, /--offset must be earliest, latest or an offset ≥ 0, got 'first'/);
  });

  it("without --group reads from --offset on the --partition(s) given and commits nothing", async () => {
    const topic = "cli-peek";
    const made = await goulette(
      ["produce", ...sentinel, "--topic", topic, "--partitions", "3", "--replicas", "1", "--partition", "1"],
      "p0\np1\np2\np3\np4\n",
    );
    assert.equal(made.code, 0, made.stderr);
    assert.equal(
      (await goulette(["produce", ...sentinel, "--topic", topic, "--partition", "2", "q0"])).code,
      0,
    );
    const peek = ["consume", ...sentinel, "--topic", topic, "--json", "--idle-timeout", "1500"];
    const fromTwo = await goulette([...peek, "--offset", "2", "--partition", "1"]);
    assert.equal(fromTwo.code, 0, fromTwo.stderr);
    assert.deepEqual(
      lines(fromTwo.stdout).map((l) => (JSON.parse(l) as { value: string }).value),
      ["p2", "p3", "p4"],
    );
    // Repeated --partition adds up; --offset earliest reads everything of them; nothing was committed,
    // so it reads the same again.
    for (let run = 0; run < 2; run++) {
      const both = await goulette([...peek, "--offset", "earliest", "--partition", "2", "--partition", "1"]);
      assert.equal(both.code, 0, both.stderr);
      assert.deepEqual(
        lines(both.stdout)
          .map((l) => (JSON.parse(l) as { value: string }).value)
          .sort(),
        ["p0", "p1", "p2", "p3", "p4", "q0"],
      );
    }
    const layout = await cluster.layout(topic);
    for (const p of layout.partitions) {
      const leader = cluster.broker(p.leader).client;
      const res = await leader.getCommittedOffset({
        consumerGroup: RANGE_PROBE_GROUP,
        topic,
        partition: p.partition,
      });
      assert.equal(res.offset, -1n, `nothing committed on partition ${p.partition}`);
    }
  });

  it("three consume --group processes split six partitions and each prints its own", async () => {
    const topic = "cli-split";
    await cluster.createTopic(topic, { partitions: 6, replicas: 1 });
    const members = [0, 1, 2].map(() =>
      startGoulette([
        "consume",
        ...sentinel,
        "--topic",
        topic,
        "--group",
        "split",
        "--offset",
        "earliest",
        "--json",
        "--max",
        "20",
      ]),
    );
    try {
      await waitFor(() => members.every((m) => ownedFromStderr(m.stderr()).size === 2), {
        timeoutMs: 30_000,
        what: "2 partitions per consume process",
      }).catch((err: unknown) => {
        const stderrs = members.map((m, i) => `process ${i}:\n${m.stderr()}`).join("\n");
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stderrs}`);
      });
      const owned = members.map((m) => ownedFromStderr(m.stderr()));
      assert.equal(new Set(owned.flatMap((set) => [...set])).size, 6, "disjoint");
      const producer = new Producer({ sentinels: cluster.sentinelUrls });
      try {
        const sends = [];
        for (let i = 0; i < 10; i++) {
          for (let p = 0; p < 6; p++) sends.push(producer.send({ topic, partition: p, value: `${p}:${i}` }));
        }
        await Promise.all(sends);
      } finally {
        await producer.close();
      }
      const runs = await Promise.all(members.map((m) => m.exited));
      const all: string[] = [];
      runs.forEach((run, i) => {
        assert.equal(run.code, 0, run.stderr);
        const printed = lines(run.stdout).map((l) => JSON.parse(l) as { partition: number; value: string });
        assert.deepEqual(
          new Set(printed.map((m) => `${topic}/${m.partition}`)),
          owned[i],
          "a process prints only its partitions",
        );
        all.push(...printed.map((m) => m.value));
      });
      assert.equal(all.length, 60);
      assert.equal(new Set(all).size, 60, "each message once");
    } finally {
      for (const m of members) m.kill();
    }
  });
});

interface Started {
  stdout(): string;
  stderr(): string;
  exited: Promise<GouletteRun>;
  kill(): void;
}

/** Starts `goulette <args>` (stdin closed) and lets the caller watch its output while it runs. */
function startGoulette(args: string[], timeoutMs = 60_000): Started {
  const child = spawn(process.execPath, [GOULETTE_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exited = new Promise<GouletteRun>((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

/** The partitions a consume --group process holds, from its "assigned …" / "released …" lines. */
function ownedFromStderr(stderr: string): Set<string> {
  const owned = new Set<string>();
  for (const line of stderr.split("\n")) {
    const match = /^goulette: (assigned|released|lost) ([^ ,(:]+(?:, [^ ,(:]+)*)/.exec(line);
    if (!match || match[2] === "nothing") continue;
    for (const key of (match[2] as string).split(", ")) {
      if (match[1] === "assigned") owned.add(key);
      else owned.delete(key);
    }
  }
  return owned;
}
