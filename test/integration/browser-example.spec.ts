import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startExampleServer, type ExampleServer } from "../../examples/browser/server.js";
import { Consumer, Producer } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/wait.js";

const CHROMIUM = "/usr/bin/chromium";

/**
 * examples/browser in headless Chromium against a real cluster: the page produces (the brokers' unary
 * Produce, passed through) and consumes (FetchMessages server streams, CommitOffset)
 * with the SDK's web entry point over Connect/HTTP/1.1, through the same-origin proxy.
 */
describe("browser example in headless Chromium", () => {
  let cluster: TestCluster;
  let server: ExampleServer;
  let userDataDir: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const calls: string[] = [];

  before(async () => {
    cluster = await startCluster({ sentinels: 2, brokers: 3 });
    server = await startExampleServer({ sentinels: cluster.sentinelUrls, port: 0 });
    userDataDir = await mkdtemp(path.join(tmpdir(), "goulette-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("request", (req) => calls.push(new URL(req.url()).pathname));
  });
  after(async () => {
    await context?.close();
    await server?.close();
    await cluster?.stop();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  const items = (list: string) => page.locator(`#${list} li`).allTextContents();

  it("produces from the page, consumes in the page, and both sides see the same messages", async () => {
    const topic = "web-orders";
    await page.goto(`${server.url}/?topic=${topic}&group=web`);
    await waitFor(async () => /3 brokers/.test((await page.locator("#cluster").textContent()) ?? ""), {
      timeoutMs: 15_000,
      what: "the page to show the cluster status (Admin over Connect)",
    });

    // Produce three lines from the page.
    await page.locator("#message").fill("alpha\nbeta\ngamma");
    await page.locator("#produce").click();
    const acks = await waitFor(
      async () => {
        const list = await items("acks");
        return list.length === 3 ? list : undefined;
      },
      { timeoutMs: 20_000, what: "three acks in the page" },
    );
    // Acks of different partitions arrive in any order.
    const sorted = [...acks].sort();
    for (const [i, word] of ["alpha", "beta", "gamma"].entries()) {
      assert.match(sorted[i] ?? "", new RegExp(`^${word} → ${topic}#\\d offset \\d+$`));
    }
    assert.equal((await page.locator("#status").textContent())?.trim(), "produced 3 message(s)");

    // The cluster has them: a Node consumer of another group reads exactly these.
    const check = new Consumer({
      sentinels: cluster.sentinelUrls,
      topic,
      group: "node-check",
      from: "earliest",
    });
    try {
      const seen: string[] = [];
      while (seen.length < 3) {
        const m = await check.receive({ timeoutMs: 15_000 });
        assert.ok(m, `the Node consumer got ${seen.length} of the page's 3 messages`);
        seen.push(m.text());
      }
      assert.deepEqual(seen.sort(), ["alpha", "beta", "gamma"]);
    } finally {
      await check.close();
    }

    // Consume in the page: the three, then one produced from Node while the page's streams are open.
    await page.locator("#consume").click();
    await waitFor(async () => (await items("messages")).length === 3, {
      timeoutMs: 20_000,
      what: "the page to consume three messages",
    });
    const producer = new Producer({ sentinels: cluster.sentinelUrls, topic });
    try {
      await producer.send({ value: "from node" });
    } finally {
      await producer.close();
    }
    const consumed = await waitFor(
      async () => {
        const list = await items("messages");
        return list.length === 4 ? list : undefined;
      },
      { timeoutMs: 20_000, what: "the page to receive the message produced from Node" },
    );
    assert.deepEqual(consumed.map((line) => line.replace(/^.*: /, "")).sort(), [
      "alpha",
      "beta",
      "from node",
      "gamma",
    ]);
    for (const line of consumed) assert.match(line, new RegExp(`^${topic}#\\d@\\d+: `));

    // Stop: the page's consumer commits; the leaders hold the group's offsets (4 messages in all).
    await page.locator("#stop").click();
    await waitFor(async () => (await page.locator("#status").textContent())?.includes("committed"), {
      timeoutMs: 15_000,
      what: "the page to stop and commit",
    });
    const layout = await cluster.layout(topic);
    let committed = 0;
    for (const p of layout.partitions) {
      const res = await cluster.broker(p.leader).client.getCommittedOffset({
        topic,
        partition: p.partition,
        consumerGroup: "web",
      });
      committed += Math.max(0, Number(res.offset));
    }
    assert.equal(committed, 4, "the page committed every message it consumed");

    // It all went over the Connect endpoints of the same-origin proxy.
    const rpc = (suffix: string) => calls.some((p) => p.endsWith(suffix));
    assert.ok(rpc("/goulette.v1.SentinelService/GetBrokers"), "GetBrokers through /sentinel/<i>");
    assert.ok(rpc("/goulette.v1.BrokerService/Produce"), "unary Produce through /broker/<address>");
    assert.ok(rpc("/goulette.v1.BrokerService/FetchMessages"), "FetchMessages server streams");
    assert.ok(rpc("/goulette.v1.BrokerService/CommitOffset"), "CommitOffset");
    assert.deepEqual(pageErrors, [], "no uncaught error in the page");
  });
});
