import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Client } from "@connectrpc/connect";
import {
  Admin,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../../src/client/node.js";
import { runAdmin } from "../../src/cmd/admin.js";
import { Acks, type BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import type { GroupPartition } from "../../src/gen/goulette/v1/group_pb.js";
import type { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster, type TopicLayout } from "../helpers/cluster.js";
import { runGoulette, type GouletteRun } from "../helpers/goulette-process.js";
import { waitFor } from "../helpers/wait.js";

/** Runs `goulette admin <args>` against the cluster. */
function admin(sentinels: string[], args: string[], timeoutMs = 30_000): Promise<GouletteRun> {
  return runGoulette(["admin", ...args, "--sentinels", sentinels.join(",")], { timeoutMs });
}

/** A group member made of raw GroupHeartbeat calls, kept alive until left. */
interface Member {
  memberId: string;
  partitions(): GroupPartition[];
  leave(): Promise<void>;
}

async function join(
  sentinel: Client<typeof SentinelService>,
  group: string,
  topics: string[],
  instanceId: string,
): Promise<Member> {
  const first = await sentinel.groupHeartbeat({
    group,
    topics,
    instanceId,
    clientId: "admin-groups-spec",
    sessionTimeoutMs: 6_000,
  });
  const memberId = first.assignment?.memberId ?? "";
  assert.notEqual(memberId, "", "the join answers a member id");
  let partitions = first.assignment?.partitions ?? [];
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Heartbeats keep the session; each reports the partitions consumed, as a member does once it took them.
  const beat = async () => {
    try {
      const res = await sentinel.groupHeartbeat({
        group,
        memberId,
        owned: partitions.map((p) => ({ topic: p.topic, partition: p.partition })),
      });
      partitions = res.assignment?.partitions ?? partitions;
    } catch {
      // The next beat retries; a lost session shows up as a failed assertion.
    }
    if (!stopped) timer = setTimeout(() => void beat(), 500);
  };
  timer = setTimeout(() => void beat(), 500);
  return {
    memberId,
    partitions: () => partitions,
    async leave() {
      stopped = true;
      clearTimeout(timer);
      await sentinel.groupHeartbeat({ group, memberId, leave: true });
    },
  };
}

interface DescribedJson {
  group: string;
  state: string;
  members: { memberId: string; instanceId: string; topics: string[]; partitions: { topic: string }[] }[];
  partitions: {
    topic: string;
    partition: number;
    owner: string;
    committed: number;
    highWatermark: number;
    lag: number | null;
  }[];
}

interface GroupJson {
  group: string;
  state: string;
  members: number;
  generation: number;
  topics: string[];
  partitions: number;
}

interface ResetJson {
  group: string;
  topic: string;
  dryRun: boolean;
  partitions: { partition: number; before: number; after: number }[];
}

/** Messages produced to each partition of the topic. */
const COUNTS = [5, 8, 3];

describe("goulette admin: consumer groups", () => {
  let cluster: TestCluster;
  let layout: TopicLayout;
  const topic = "orders";

  const leader = (partition: number): Client<typeof BrokerService> => {
    const p = layout.partitions.find((x) => x.partition === partition);
    if (!p) throw new Error(`no partition ${partition}`);
    return cluster.broker(p.leader).client;
  };
  const committed = async (group: string, partition: number) =>
    Number((await leader(partition).getCommittedOffset({ consumerGroup: group, topic, partition })).offset);
  const commit = (group: string, partition: number, offset: number) =>
    leader(partition).commitOffset({ consumerGroup: group, topic, partition, offset: BigInt(offset) });
  const run = (...args: string[]) => admin(cluster.sentinelUrls, args);
  let sdk: Admin;

  before(async () => {
    cluster = await startCluster({ sentinels: 1, brokers: 2 });
    layout = await cluster.createTopic(topic, { partitions: 3, replicas: 1 });
    sdk = new Admin({ sentinels: cluster.sentinelUrls });
    await Promise.all(
      COUNTS.map(async (count, partition) => {
        const res = await sendOnce(leader(partition), {
          topic,
          partition,
          producerId: "admin-groups-spec",
          acks: Acks.ALL,
          records: Array.from({ length: count }, (_, i) => ({
            messageId: BigInt(i + 1),
            payload: text(`m${i}`),
          })),
        });
        assert.ok(
          res.acks.every((a) => a.error === 0),
          JSON.stringify(res.acks.map((a) => a.errorMessage)),
        );
      }),
    );
  });
  after(async () => {
    await sdk?.close();
    await cluster?.stop();
  });

  it("reset-offsets moves a group to the earliest, the latest or a given offset, and --dry-run commits nothing", async () => {
    const group = "reset-me";
    await Promise.all([commit(group, 0, 2), commit(group, 1, 4)]);

    const earliest = await run(
      "reset-offsets",
      "--group",
      group,
      "--topic",
      topic,
      "--to-earliest",
      "--json",
    );
    assert.equal(earliest.code, 0, earliest.stderr);
    const e = JSON.parse(earliest.stdout) as ResetJson;
    assert.deepEqual(e.partitions, [
      { partition: 0, before: 2, after: 0 },
      { partition: 1, before: 4, after: 0 },
      { partition: 2, before: -1, after: 0 },
    ]);
    assert.deepEqual(await Promise.all([0, 1, 2].map((p) => committed(group, p))), [0, 0, 0]);

    const latest = await run("reset-offsets", "--group", group, "--topic", topic, "--to-latest");
    assert.equal(latest.code, 0, latest.stderr);
    assert.match(latest.stdout, /orders +1 +0 +8/, latest.stdout);
    assert.match(latest.stdout, /now starts at these offsets on 3 partitions of 'orders'/);
    assert.deepEqual(await Promise.all([0, 1, 2].map((p) => committed(group, p))), COUNTS);

    const dry = await run(
      "reset-offsets",
      "--group",
      group,
      "--topic",
      topic,
      "--to-offset",
      "1",
      "--partition",
      "1",
      "--dry-run",
      "--json",
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual((JSON.parse(dry.stdout) as ResetJson).partitions, [
      { partition: 1, before: 8, after: 1 },
    ]);
    assert.equal(await committed(group, 1), 8, "a dry run commits nothing");

    const one = await run(
      "reset-offsets",
      "--group",
      group,
      "--topic",
      topic,
      "--to-offset",
      "1",
      "--partition",
      "1",
    );
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(
      await Promise.all([0, 1, 2].map((p) => committed(group, p))),
      [5, 1, 3],
      "only partition 1",
    );
  });

  it("refuses an offset outside a partition's range and changes nothing", async () => {
    const group = "out-of-range";
    await commit(group, 0, 1);
    const res = await run("reset-offsets", "--group", group, "--topic", topic, "--to-offset", "4");
    assert.equal(res.code, 1);
    assert.match(res.stderr, /offset 4 is outside partition 2 of 'orders': it holds \[0, 3\]/);
    assert.equal(res.stdout, "");
    assert.equal(await committed(group, 0), 1, "nothing was set, not even where 4 was in range");

    // The SDK's errors are typed.
    await assert.rejects(
      sdk.resetOffsets({ group, topic, to: "earliest", partitions: [7] }),
      (err: unknown) =>
        err instanceof InvalidArgumentError && /'orders' has no partition 7/.test(err.message),
    );
    await assert.rejects(
      sdk.resetOffsets({ group, topic: "nope", to: "earliest" }),
      (err: unknown) => err instanceof NotFoundError && /topic 'nope' does not exist/.test(err.message),
    );
    await assert.rejects(
      sdk.resetOffsets({ group, topic, to: { offset: 4 } }),
      (err: unknown) => err instanceof InvalidArgumentError && /\[0, 3\]/.test(err.message),
    );
  });

  it("delete-offsets forgets a group's committed offsets", async () => {
    const group = "forget-me";
    await Promise.all([commit(group, 0, 3), commit(group, 2, 1)]);
    const res = await run("delete-offsets", "--group", group, "--topic", topic, "--json");
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), {
      group,
      topic,
      partitions: [
        { partition: 0, deleted: true },
        { partition: 1, deleted: false },
        { partition: 2, deleted: true },
      ],
    });
    assert.deepEqual(await Promise.all([0, 1, 2].map((p) => committed(group, p))), [-1, -1, -1]);
  });

  it("lists and describes a group with live members, and refuses to reset it until they leave", async () => {
    const group = "live";
    await commit(group, 1, 6);
    const member = await join(cluster.sentinel(), group, [topic], "pod-0");
    try {
      const listed = await waitFor(
        async () => {
          const res = await run("groups", "--json");
          assert.equal(res.code, 0, res.stderr);
          const groups = (JSON.parse(res.stdout) as { groups: GroupJson[] }).groups;
          return groups.find((g) => g.group === group && g.members === 1);
        },
        { what: "the group to be listed with its member" },
      );
      assert.deepEqual(listed, {
        group,
        state: listed.state,
        members: 1,
        generation: listed.generation,
        topics: [topic],
        partitions: 3,
      });
      assert.match(listed.state, /^(stable|rebalancing)$/);

      const described = await run("groups", "--group", group, "--json");
      assert.equal(described.code, 0, described.stderr);
      const d = JSON.parse(described.stdout) as DescribedJson;
      assert.equal(d.members.length, 1);
      assert.equal(d.members[0]?.memberId, member.memberId);
      assert.equal(d.members[0]?.instanceId, "pod-0");
      assert.deepEqual(
        d.partitions.map((p) => [p.partition, p.committed, p.highWatermark, p.lag]),
        [
          [0, -1, 5, null],
          [1, 6, 8, 2],
          [2, -1, 3, null],
        ],
      );
      const table = await run("groups", "--group", group);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, new RegExp(`${member.memberId} +pod-0 +admin-groups-spec`));
      assert.match(table.stdout, /orders +1 +\S+ +6 +8 +2/);
      assert.match(table.stdout, /total lag 2 over 1 of 3 partitions; 2 without a committed offset/);

      const refused = await run("reset-offsets", "--group", group, "--topic", topic, "--to-earliest");
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        new RegExp(`group 'live' has 1 live member \\(${member.memberId} \\(pod-0\\)\\): stop its consumers`),
      );
      await assert.rejects(
        sdk.deleteOffsets({ group, topic }),
        (err: unknown) =>
          err instanceof FailedPreconditionError && /group 'live' has 1 live member/.test(err.message),
      );
      assert.equal(await committed(group, 1), 6, "nothing moved while the member lives");
    } finally {
      await member.leave();
    }
    // A member that leaves is gone at once: the reset goes through.
    const res = await run(
      "reset-offsets",
      "--group",
      group,
      "--topic",
      topic,
      "--to-latest",
      "--partition",
      "1",
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await committed(group, 1), 8);
  });

  it("an unknown group prints nothing and exits 0; with topics named, its offsets are described", async () => {
    const res = await run("groups", "--group", "never-seen");
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, "");
    const json = await run("groups", "--group", "never-seen", "--json");
    assert.equal(json.code, 0, json.stderr);
    const d = JSON.parse(json.stdout) as DescribedJson;
    assert.deepEqual([d.members, d.partitions], [[], []]);

    await commit("offsets-only", 2, 2);
    const offsets = await sdk.describeGroup("offsets-only", { topics: [topic] });
    assert.deepEqual(
      offsets.partitions.map((p) => [p.partition, p.owner, p.committed, p.logStart, p.highWatermark, p.lag]),
      [
        [0, "", -1, 0, 5, undefined],
        [1, "", -1, 0, 8, undefined],
        [2, "", 2, 0, 3, 1],
      ],
    );
    assert.deepEqual(offsets.members, []);
  });

  it("refuses flags that do not apply and incomplete commands", async () => {
    const cases: [string[], RegExp][] = [
      [["groups", "--to-latest"], /--to-latest does not apply to 'admin groups'/],
      [["status", "--group", "g"], /--group does not apply to 'admin status'/],
      [
        ["reset-offsets", "--group", "g", "--topic", topic],
        /exactly one of --to-earliest, --to-latest, --to-offset/,
      ],
      [["reset-offsets", "--group", "g", "--topic", topic, "--to-earliest", "--to-latest"], /exactly one of/],
      [["delete-offsets", "--topic", topic], /delete-offsets needs --group/],
      [["delete-offsets", "--group", "g", "--topic", topic, "--dry-run"], /--dry-run does not apply/],
      [["groups", "--bogus"], /unknown flag --bogus/],
      [
        ["reset-offsets", "--group", "g", "--topic", topic, "--to-earliest", "--partition", "x"],
        /'x' is not a partition/,
      ],
    ];
    // Parsing fails before any call: checked in-process, plus once through the binary for the exit code.
    for (const [args, message] of cases) {
      await assert.rejects(
        runAdmin([...args, "--sentinel", cluster.sentinelUrls.join(",")]),
        message,
        args.join(" "),
      );
    }
    const res = await run("groups", "--to-latest");
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^goulette: --to-latest does not apply to 'admin groups' \(see --help\)$/m);
  });
});
