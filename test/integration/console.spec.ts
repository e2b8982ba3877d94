import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { buildConsole } from "../../scripts/build-console.js";
import { Admin } from "../../src/index.js";
import { RANGE_PROBE_GROUP } from "../../src/client/partition-fetcher.js";
import { Consumer } from "../../src/index.js";
import { Acks } from "../../src/gen/goulette/v1/broker_pb.js";
import { brokerClient, sendOnce, text, untext } from "../helpers/broker-process.js";
import { launchChromium, type HeadlessChromium } from "../helpers/chromium.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { openConsole, seedConsoleDemo, type ConsoleDemo } from "../helpers/console-fixture.js";
import { freePort } from "../helpers/ports.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const TOKEN = "console-secret";

/** What a page did wrong: uncaught errors and Content-Security-Policy refusals. */
interface Watched {
  page: Page;
  problems: string[];
}

/**
 * The web console (/ui/ on every sentinel) in headless Chromium against a real cluster: 2 sentinels
 * (one of them requires the admin token), 3 brokers, a seeded topic and group. Each page
 * shows the cluster's real state; the message browser moves no group offset; the ring changes when a
 * broker is stopped, as its simulation said.
 */
describe("web console in headless Chromium", () => {
  let cluster: TestCluster;
  let guarded: SentinelProcess;
  let browser: HeadlessChromium;
  let demo: ConsoleDemo;
  let url: string;
  let admin: Admin;

  before(async () => {
    // The sentinels serve dist/console as it is when they start: build it from the sources under test.
    await buildConsole();
    // The second sentinel is the one that requires the token (one process fewer to start).
    cluster = await startCluster({ sentinels: 1, brokers: 3, sentinelArgs: ["--heartbeat-ttl", "3"] });
    [guarded, browser, demo] = await Promise.all([
      freePort().then((port) =>
        startSentinelProcess({
          id: "s-token",
          etcdEndpoint: cluster.etcd.endpoint,
          port,
          args: ["--election-ttl", "2", "--log-level", "warn", "--admin-token", TOKEN],
        }),
      ),
      launchChromium(),
      seedConsoleDemo(cluster),
    ]);
    url = cluster.sentinelUrls[0] as string;
    admin = new Admin({ sentinels: cluster.sentinelUrls });
  });
  after(async () => {
    await admin?.close();
    await browser?.close();
    await guarded?.kill("SIGTERM");
    await cluster?.stop();
  });

  const watch = async (route: string, base = url): Promise<Watched> => {
    const page = await browser.context.newPage();
    const watched: Watched = { page, problems: [] };
    page.on("pageerror", (err) => watched.problems.push(err.message));
    page.on("console", (msg) => {
      if (/Content Security Policy|Refused to/.test(msg.text())) watched.problems.push(msg.text());
    });
    await openConsole(page, base, route);
    return watched;
  };
  const done = async (w: Watched) => {
    assert.deepEqual(w.problems, [], "no page errors, no CSP refusals");
    await w.page.close();
  };
  const cells = (page: Page, testId: string, column: number) =>
    page.locator(`[data-testid=${testId}] tbody tr td:nth-child(${column})`).allTextContents();
  const producedOn = (partition: number) => demo.produced.filter((m) => m.partition === partition);
  const busiest = () => {
    const counts = [0, 1, 2, 3].map((p) => producedOn(p).length);
    return counts.indexOf(Math.max(...counts));
  };

  it("is served at /ui/ with a strict CSP, and passes calls only to the cluster's brokers and sentinels", async () => {
    const bare = await fetch(`${url}/ui`, { redirect: "manual" });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get("location"), "/ui/");
    const index = await fetch(`${url}/ui/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'self'/);
    const script = await fetch(`${url}/ui/console.js`);
    assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");

    const call = (path: string, body: unknown = {}) =>
      fetch(`${url}/ui/api/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const layout = await cluster.layout(demo.topic);
    const p0 = layout.partitions[0] as (typeof layout.partitions)[number];
    const leaderAddress = cluster.brokerAddress(p0.leader);
    const health = await call(`broker/${leaderAddress}/goulette.v1.BrokerService/Health`, {
      partitions: [{ topic: demo.topic, partition: p0.partition }],
    });
    assert.equal(health.status, 200);
    const answer = (await health.json()) as {
      brokerId: string;
      partitions: { logStartOffset?: string; inSyncReplicas?: string[]; highWatermark?: string }[];
    };
    assert.equal(answer.brokerId, p0.leader);
    assert.deepEqual([...(answer.partitions[0]?.inSyncReplicas ?? [])].sort(), [...p0.replicas].sort());
    assert.equal(Number(answer.partitions[0]?.highWatermark ?? 0), producedOn(p0.partition).length);

    // The second sentinel answers Unavailable until it has recovered its state: poll until it serves.
    const peerId = await waitFor(
      async () => {
        const peer = await call("sentinel/s-token/goulette.v1.SentinelService/GetClusterStatus");
        return peer.status === 200 ? ((await peer.json()) as { sentinelId: string }).sentinelId : undefined;
      },
      { timeoutMs: 30_000, what: "the token-guarded sentinel to answer through the console" },
    );
    assert.equal(peerId, "s-token");

    const refusedWith = async (res: Response, status: number, pattern: RegExp) => {
      assert.equal(res.status, status);
      assert.match(((await res.json()) as { message: string }).message, pattern);
    };
    await refusedWith(
      await call("broker/127.0.0.1:1/goulette.v1.BrokerService/Health"),
      404,
      /127\.0\.0\.1:1 is not a broker of this cluster/,
    );
    await refusedWith(
      await call(`broker/${leaderAddress}/goulette.v1.BrokerService/SetTopicRole`),
      404,
      /SetTopicRole is not passed to brokers/,
    );
    await refusedWith(
      await call("sentinel/s-token/goulette.v1.SentinelService/UnregisterBroker", { brokerId: "b1" }),
      404,
      /not passed to sentinels/,
    );
    await refusedWith(
      await call("sentinel/nobody/goulette.v1.SentinelService/GetClusterStatus"),
      404,
      /sentinel 'nobody' is not campaigning/,
    );
    assert.equal(
      (await fetch(`${url}/ui/api/broker/${leaderAddress}/goulette.v1.BrokerService/Health`)).status,
      405,
    );
  });

  it("overview: the leader, every sentinel agreeing, and the brokers", async () => {
    const status = await cluster.sentinel().getClusterStatus({});
    const w = await watch("overview");
    const text = async (id: string) =>
      (await w.page.locator(`[data-testid=${id}] .value`).textContent()) ?? "";
    assert.equal(await text("leader"), status.leaderId);
    assert.equal(await text("brokers-healthy"), "3 / 3");
    assert.deepEqual(await cells(w.page, "brokers", 1), ["b1", "b2", "b3"]);
    assert.deepEqual(await cells(w.page, "brokers", 2), ["healthy", "healthy", "healthy"]);
    const addresses = await cells(w.page, "brokers", 3);
    assert.deepEqual(
      addresses,
      ["b1", "b2", "b3"].map((id) => cluster.brokerAddress(id)),
    );
    // Sentinels asked through the serving one: both agree on the state digest.
    await waitFor(async () => (await w.page.locator("td >> text=yes").count()) === 2, {
      timeoutMs: 15_000,
      what: "two sentinels agreeing",
    });
    await done(w);
  });

  it("is usable with the keyboard: Tab reaches the pages' links, Enter opens them", async () => {
    const w = await watch("overview");
    const focused = () => w.page.evaluate("document.activeElement?.textContent ?? ''");
    for (let i = 0; i < 10 && (await focused()) !== "Ring"; i++) await w.page.keyboard.press("Tab");
    assert.equal(await focused(), "Ring", "Tab reaches the Ring link");
    await w.page.keyboard.press("Enter");
    await w.page.getByTestId("ring").waitFor();
    assert.match(w.page.url(), /#\/ring$/);
    assert.equal(await focused(), "Hash ring", "the new page's heading has the focus");
    await done(w);
  });

  it("topics: partitions with their leader, in-sync replicas and high watermark", async () => {
    const layout = await cluster.layout(demo.topic);
    const w = await watch(`topics/${demo.topic}`);
    await w.page.locator("[data-testid=partitions] tbody tr").nth(3).waitFor();
    assert.deepEqual(
      await cells(w.page, "partitions", 2),
      layout.partitions.map((p) => p.leader),
    );
    const isr = await cells(w.page, "partitions", 4);
    for (const [i, p] of layout.partitions.entries()) {
      assert.deepEqual(
        (isr[i] ?? "").split(", ").sort(),
        [...p.replicas].sort(),
        `p${p.partition} all in sync`,
      );
    }
    assert.deepEqual(
      (await cells(w.page, "partitions", 5)).map(Number),
      layout.partitions.map((p) => producedOn(p.partition).length),
    );
    await done(w);
  });

  it("message browser: shows the produced messages and moves no group offset", async () => {
    const before = await admin.describeGroup(demo.group, { topics: [demo.topic] });
    const partition = busiest();
    const mine = producedOn(partition);
    const w = await watch(`topics/${demo.topic}/messages?partition=${partition}`);
    await w.page.locator("#msg-from").selectOption("offset");
    await w.page.locator("#msg-offset").fill("0");
    await w.page.locator("#msg-read").click();
    const rows = () => w.page.locator("[data-testid=messages] tbody tr");
    await waitFor(async () => (await rows().count()) === mine.length, {
      what: "every message of the partition",
    });
    assert.deepEqual(
      await cells(w.page, "messages", 4),
      mine.map((m) => m.value),
    );
    assert.deepEqual(
      await cells(w.page, "messages", 3),
      mine.map((m) => m.key),
    );
    assert.deepEqual((await cells(w.page, "messages", 5))[0], "source=seed");

    // The newest two, as hex.
    await w.page.locator("#msg-from").selectOption("end");
    await w.page.locator("#msg-count").fill("2");
    await w.page.locator("#msg-format").selectOption("hex");
    await w.page.locator("#msg-read").click();
    const hex = (s: string) => Array.from(Buffer.from(s), (b) => b.toString(16).padStart(2, "0")).join(" ");
    await waitFor(
      async () =>
        (await cells(w.page, "messages", 4)).join() ===
        mine
          .slice(-2)
          .map((m) => hex(m.value))
          .join(),
      {
        what: "the newest two messages in hex",
      },
    );

    const afterwards = await admin.describeGroup(demo.group, { topics: [demo.topic] });
    assert.deepEqual(
      afterwards.partitions.map((p) => p.committed),
      before.partitions.map((p) => p.committed),
      "the group's offsets did not move",
    );
    const leader = (await cluster.layout(demo.topic)).partitions[partition]?.leader as string;
    const probe = await brokerClient(cluster.brokerAddress(leader)).getCommittedOffset({
      consumerGroup: RANGE_PROBE_GROUP,
      topic: demo.topic,
      partition,
    });
    assert.equal(probe.offset, -1n, "nothing committed for the range probe");
    assert.deepEqual(
      (await admin.listGroups()).map((g) => g.group),
      [demo.group],
      "no group was created",
    );
    await done(w);
  });

  it("produces a test message from the page", async () => {
    const w = await watch(`topics/${demo.topic}/messages`);
    await w.page.locator("#produce-key").fill("console-key");
    await w.page.locator("#produce-value").fill("hello from the console");
    await w.page.locator("#produce-headers").fill("origin=console");
    await w.page.locator("#produce-partition").fill("2");
    await w.page.locator("#produce-send").click();
    const status = await waitFor(
      async () =>
        /stored at partition 2, offset (\d+)/.exec(
          (await w.page.getByTestId("produce-status").textContent()) ?? "",
        ) ?? undefined,
      { what: "the produce acknowledgement" },
    );
    const offset = BigInt(status?.[1] ?? "-1");
    const leader = (await cluster.layout(demo.topic)).partitions[2]?.leader as string;
    const batches = brokerClient(cluster.brokerAddress(leader)).fetchMessages(
      { topic: demo.topic, partition: 2, offset, limit: 1n },
      { timeoutMs: 10_000 },
    );
    for await (const batch of batches) {
      const m = batch.messages[0];
      assert.equal(untext(m?.payload ?? new Uint8Array()), "hello from the console");
      assert.equal(untext(m?.key ?? new Uint8Array()), "console-key");
      assert.equal(untext(m?.headers[0]?.value ?? new Uint8Array()), "console");
    }
    demo.produced.push({
      partition: 2,
      offset: Number(offset),
      key: "console-key",
      value: "hello from the console",
    });
    await done(w);
  });

  it("groups: lag per partition; a reset is refused while a member is live, then done after confirmation", async () => {
    const member = new Consumer({ sentinels: cluster.sentinelUrls, topic: demo.topic, group: demo.group });
    const running = member.run(() => undefined);
    const w = await watch(`groups/${demo.group}`);
    try {
      await waitFor(async () => /1 live member/.test((await w.page.locator("main").textContent()) ?? ""), {
        timeoutMs: 15_000,
        what: "the live member on the page",
      });
      await w.page.locator("#reset-topic").fill(demo.topic);
      await w.page.locator("#reset-to").selectOption("earliest");
      await w.page.locator("#reset-go").click();
      await waitFor(
        async () => /live member/.test((await w.page.getByTestId("reset-status").textContent()) ?? ""),
        {
          what: "the refusal",
        },
      );
    } finally {
      await member.close();
      await running;
    }
    await waitFor(async () => /0 live member/.test((await w.page.locator("main").textContent()) ?? ""), {
      timeoutMs: 15_000,
      what: "the member gone from the page",
    });
    await w.page.locator("#reset-go").click();
    await w.page.locator("dialog.confirm-dialog button[value=ok]").click();
    await waitFor(
      async () => /reset 4 partition/.test((await w.page.getByTestId("reset-status").textContent()) ?? ""),
      {
        what: "the reset",
      },
    );
    const after = await admin.describeGroup(demo.group, { topics: [demo.topic] });
    assert.deepEqual(
      after.partitions.map((p) => p.committed),
      after.partitions.map((p) => p.logStart),
    );
    await waitFor(async () => (await cells(w.page, "group-partitions", 4)).every((c) => c === "0"), {
      what: "the page showing the new offsets",
    });
    await done(w);
  });

  it("topic: deletes records below an offset of one partition, then every record, after confirmation", async () => {
    const topic = "console-purge";
    const layout = await cluster.createTopic(topic, { partitions: 2, replicas: 3 });
    for (const p of layout.partitions) {
      const res = await sendOnce(cluster.broker(p.leader).client, {
        topic,
        partition: p.partition,
        producerId: `console-purge-${p.partition}`,
        acks: Acks.ALL,
        records: Array.from({ length: 10 + p.partition }, (_, i) => ({
          messageId: BigInt(i + 1),
          payload: text(`m${i}`),
        })),
      });
      assert.ok(res.acks.every((a) => a.errorMessage === ""));
    }
    const logStarts = (partition: number) =>
      Promise.all(
        (layout.partitions[partition]?.replicas ?? []).map(async (id) => {
          const res = await cluster.broker(id).client.health({ partitions: [{ topic, partition }] });
          return Number(res.partitions[0]?.logStartOffset ?? -1);
        }),
      );

    const w = await watch(`topics/${topic}`);
    await w.page.locator("#delete-go").waitFor();
    await w.page.locator("#delete-partition").selectOption("0");
    await w.page.locator("#delete-what").selectOption("before");
    await w.page.locator("#delete-before").fill("4");
    await w.page.locator("#delete-go").click();
    await w.page.locator("dialog.confirm-dialog button[value=ok]").click();
    await waitFor(
      async () =>
        /deleted: #0 log start 4$/.test((await w.page.getByTestId("delete-status").textContent()) ?? ""),
      { what: "the deletion on partition 0" },
    );
    // Answered once every replica deleted them; partition 1 untouched.
    assert.deepEqual(await logStarts(0), [4, 4, 4]);
    assert.deepEqual(await logStarts(1), [0, 0, 0]);
    await waitFor(async () => (await cells(w.page, "partitions", 6))[0] === "4", {
      what: "the page showing the new log start",
    });

    await w.page.locator("#delete-partition").selectOption("all");
    await w.page.locator("#delete-what").selectOption("all");
    await w.page.locator("#delete-go").click();
    await w.page.locator("dialog.confirm-dialog button[value=ok]").click();
    await waitFor(
      async () =>
        /deleted: #0 log start 10, #1 log start 11$/.test(
          (await w.page.getByTestId("delete-status").textContent()) ?? "",
        ),
      { what: "the purge of both partitions" },
    );
    assert.deepEqual(await logStarts(1), [11, 11, 11]);
    await done(w);
  });

  it("operation log: pages of operations, and a snapshot made from the page", async () => {
    // More operations than one page holds (50): one per topic created.
    for (let i = 0; i < 55; i++)
      await cluster.sentinel().getBrokers({ topic: `paged-${i}`, partitions: 1, replicaCount: 1 });
    const head = Number((await cluster.sentinel().listOperations({ limit: 1 })).headId);
    const w = await watch("oplog");
    const ids = async () => (await cells(w.page, "operations", 1)).map(Number);
    const newest = await ids();
    assert.deepEqual(
      newest,
      Array.from({ length: 50 }, (_, i) => head - i),
      "the newest 50, newest first",
    );
    await w.page.getByRole("link", { name: "← Older" }).click();
    await waitFor(async () => (await ids())[0] === head - 50, { what: "the older page" });
    assert.deepEqual(
      await ids(),
      Array.from({ length: head - 50 }, (_, i) => head - 50 - i),
      "the rest",
    );
    const types = await cells(w.page, "operations", 3);
    assert.ok(types.includes("generateTopicReplicas") && types.includes("registerBroker"), types.join());
    await w.page.getByRole("link", { name: "Newer →" }).click();
    await waitFor(async () => (await ids())[0] === head, { what: "back to the newest page" });
    await w.page.locator("#snapshot-create").click();
    await w.page.locator("dialog.confirm-dialog button[value=ok]").click();
    await waitFor(
      async () => /snapshot \d+: /.test((await w.page.getByTestId("snapshot-status").textContent()) ?? ""),
      {
        timeoutMs: 20_000,
        what: "the snapshot",
      },
    );
    await done(w);
  });

  it("asks for the admin token where the cluster requires one, and keeps it out of the URL", async () => {
    const w = await watch("oplog", guarded.url);
    const notice = w.page.locator(".notice.warn");
    await notice.waitFor();
    assert.match(
      (await notice.textContent()) ?? "",
      /ListOperations needs the credential of: sentinel, admin/,
    );
    await notice.locator("button").click();
    await w.page.locator("#token-input").fill("wrong");
    await w.page.locator("dialog.token-dialog button[value=ok]").click();
    await waitFor(
      async () => /not a credential this node knows/.test((await w.page.locator("main").textContent()) ?? ""),
      {
        what: "the wrong token refused",
      },
    );
    await w.page.locator(".notice.warn button").click();
    await w.page.locator("#token-input").fill(TOKEN);
    await w.page.locator("dialog.token-dialog button[value=ok]").click();
    // The log as the cluster holds it (the previous test's snapshot compacted what it covers).
    const log = await cluster.sentinel().listOperations({ limit: 1 });
    await waitFor(
      async () =>
        (await w.page.getByTestId("oplog-range").textContent())?.startsWith(
          `Head ${log.headId} · snapshot ${log.snapshotId}`,
        ),
      { what: "the operation log behind the token" },
    );
    assert.equal(await w.page.evaluate("sessionStorage.getItem('goulette.console.token')"), TOKEN);
    assert.equal(await w.page.evaluate("localStorage.length"), 0);
    assert.doesNotMatch(w.page.url(), new RegExp(TOKEN));
    await done(w);
  });

  it("ring: virtual nodes and partitions, the planner's simulation, and the change when a broker stops", async () => {
    const layout = await cluster.layout(demo.topic);
    const victim = layout.partitions[0]?.replicas[1] as string;
    const holding = layout.partitions
      .filter((p) => p.replicas.includes(victim))
      .map((p) => `p${p.partition}`);
    const w = await watch(`ring?topic=${demo.topic}&down=${victim}`);
    const ring = w.page.getByTestId("ring");
    await ring.waitFor();
    assert.equal(await ring.getAttribute("data-nodes"), String(3 * 150));
    assert.equal(await w.page.locator("[data-testid=ring] g.partition").count(), 4);
    assert.match(
      (await w.page.getByTestId("plan-summary").textContent()) ?? "",
      new RegExp(`If ${victim} went down`),
    );
    const moving = async () => {
      const names = await cells(w.page, "ring-partitions", 1);
      const marks = await cells(w.page, "ring-partitions", 5);
      return names.filter((_, i) => marks[i] === "moves");
    };
    assert.deepEqual(await moving(), holding);
    const planned = await cells(w.page, "ring-partitions", 4);

    await cluster.killBroker(victim);
    // The page updates itself (it polls): the broker shows down and the partitions moved as planned.
    await w.page.locator(`[data-testid=ring-legend] [data-broker=${victim}][data-status=down]`).waitFor({
      timeout: 30_000,
    });
    await w.page.locator("#ring-down").selectOption("");
    await waitFor(
      async () => {
        const now = await cells(w.page, "ring-partitions", 3);
        return now.every((r) => !r.includes(victim)) ? now : undefined;
      },
      { timeoutMs: 30_000, what: `no partition on ${victim} any more` },
    );
    const now = await cells(w.page, "ring-partitions", 3);
    const sorted = (r: string) =>
      [...r.matchAll(/b\d/g)]
        .map((m) => m[0])
        .sort()
        .join();
    assert.deepEqual(now.map(sorted), planned.map(sorted), "the partitions moved where the simulation said");
    await done(w);
  });
});
