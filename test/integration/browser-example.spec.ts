import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { startExampleServer, type ExampleServer } from "../../examples/browser/server.js";
import { Consumer, Producer } from "../../src/index.js";
import { launchChromium, type HeadlessChromium } from "../helpers/chromium.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { freePort } from "../helpers/ports.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const CORS_BLOCKED = /blocked by CORS policy/;

/** A page of the example and what it did: requests (full URLs), uncaught errors, console errors. */
interface OpenedPage {
  page: Page;
  requests: string[];
  pageErrors: string[];
  consoleErrors: string[];
}

/**
 * examples/browser in headless Chromium against real clusters, with the SDK's web entry point over
 * Connect (and gRPC-web) on HTTP/1.1 fetch. Direct mode: the page, served from its own origin, calls
 * the sentinels and brokers on theirs (CORS on the cluster for that origin): it produces (the brokers'
 * unary ProduceBatches, one call per broker carrying every partition's batch), consumes (FetchMessages
 * server streams, CommitOffset) and reads a follower's leader hint. The same page fails with CORS errors against a sentinel with CORS off, or from another origin.
 * Proxy mode still works where CORS is off (that sentinel, and brokers that do not allow its origin).
 */
describe("browser example in headless Chromium", () => {
  let cluster: TestCluster;
  /** A third sentinel of the cluster, started without --cors-allowed-origins (the default: off). */
  let noCors: SentinelProcess;
  let direct: ExampleServer;
  let otherOrigin: ExampleServer;
  let directNoCors: ExampleServer;
  let proxied: ExampleServer;
  let browser: HeadlessChromium;
  let context: BrowserContext;

  before(async () => {
    // The page's origin must be known before the cluster starts: the allow-list names it.
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const corsArgs = ["--cors-allowed-origins", origin];
    cluster = await startCluster({ sentinels: 2, brokers: 2, sentinelArgs: corsArgs, brokerArgs: corsArgs });
    const noCorsUrl = `http://127.0.0.1:${await freePort()}`;
    [noCors, direct, otherOrigin, directNoCors, proxied] = await Promise.all([
      startSentinelProcess({
        id: "s-no-cors",
        etcdEndpoint: cluster.etcd.endpoint,
        port: Number(new URL(noCorsUrl).port),
        args: ["--election-ttl", "2", "--log-level", "warn"],
      }),
      startExampleServer({ sentinels: cluster.sentinelUrls, port }),
      startExampleServer({ sentinels: cluster.sentinelUrls, port: 0 }),
      startExampleServer({ sentinels: [noCorsUrl], port: 0 }),
      startExampleServer({ sentinels: [noCorsUrl], port: 0, proxy: true }),
    ]);
    assert.equal(direct.url, origin);
    browser = await launchChromium();
    context = browser.context;
  });
  after(async () => {
    await browser?.close();
    await Promise.all([direct, otherOrigin, directNoCors, proxied].map((s) => s?.close()));
    await noCors?.kill("SIGTERM");
    await cluster?.stop();
  });

  const open = async (url: string): Promise<OpenedPage> => {
    const page = await context.newPage();
    const opened: OpenedPage = { page, requests: [], pageErrors: [], consoleErrors: [] };
    page.on("pageerror", (err) => opened.pageErrors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") opened.consoleErrors.push(msg.text());
    });
    page.on("request", (req) => opened.requests.push(req.url()));
    await page.goto(url);
    return opened;
  };
  const items = (page: Page, list: string) => page.locator(`#${list} li`).allTextContents();
  const text = async (page: Page, id: string) => (await page.locator(`#${id}`).textContent()) ?? "";
  const clusterShown = (page: Page, brokers: number) =>
    waitFor(
      async () => {
        const line = await text(page, "cluster");
        if (new RegExp(`${brokers} brokers`).test(line)) return true;
        // Thrown, not returned: a timeout then says what the page showed instead.
        throw new Error(`the page shows "${line}", status "${await text(page, "status")}"`);
      },
      { timeoutMs: 15_000, what: `the page to show the cluster status (Admin) with ${brokers} brokers` },
    );

  /** Produces the lines from the page; returns the acks it shows. */
  const produce = async (page: Page, lines: string[]) => {
    await page.locator("#message").fill(lines.join("\n"));
    await page.locator("#produce").click();
    return waitFor(
      async () => {
        const list = await items(page, "acks");
        return list.length >= lines.length ? list : undefined;
      },
      { timeoutMs: 20_000, what: `${lines.length} acks in the page` },
    );
  };

  it("produces and consumes from another origin, straight to the sentinels and brokers", async () => {
    const topic = "web-orders";
    const { page, requests, pageErrors } = await open(`${direct.url}/?topic=${topic}&group=web`);
    await clusterShown(page, 2);
    assert.match(
      await text(page, "mode"),
      /^Directly to the cluster from http:\/\/127\.0\.0\.1:\d+, connect/,
    );

    const acks = await produce(page, ["alpha", "beta", "gamma"]);
    assert.equal(acks.length, 3);
    // Acks of different partitions arrive in any order.
    const sorted = [...acks].sort();
    for (const [i, word] of ["alpha", "beta", "gamma"].entries()) {
      assert.match(sorted[i] ?? "", new RegExp(`^${word} → ${topic}#\\d offset \\d+$`));
    }
    assert.equal((await text(page, "status")).trim(), "produced 3 message(s)");

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
    await waitFor(async () => (await items(page, "messages")).length === 3, {
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
        const list = await items(page, "messages");
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

    // Stop: the page's consumer commits; the leaders hold the group's offsets (4 messages in all).
    await page.locator("#stop").click();
    await waitFor(async () => (await text(page, "status")).includes("committed"), {
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

    // Every call went from the page's origin to the cluster's own ports: no proxy in between.
    const sentinelOrigins = new Set(cluster.sentinelUrls.map((u) => new URL(u).origin));
    const brokerOrigins = new Set(
      [...cluster.brokers.keys()].map((id) => `http://${cluster.brokerAddress(id)}`),
    );
    const rpcs = requests.filter((url) => new URL(url).pathname.startsWith("/goulette.v1."));
    const at = (origins: Set<string>, suffix: string) =>
      rpcs.some((url) => origins.has(new URL(url).origin) && url.endsWith(suffix));
    assert.ok(at(sentinelOrigins, "/goulette.v1.SentinelService/GetBrokers"), "GetBrokers at a sentinel");
    assert.ok(
      at(brokerOrigins, "/goulette.v1.BrokerService/ProduceBatches"),
      "unary ProduceBatches at a broker",
    );
    assert.ok(at(brokerOrigins, "/goulette.v1.BrokerService/FetchMessages"), "FetchMessages at a broker");
    assert.ok(at(brokerOrigins, "/goulette.v1.BrokerService/CommitOffset"), "CommitOffset at a broker");
    const elsewhere = rpcs.filter((url) => new URL(url).origin === direct.url);
    assert.deepEqual(elsewhere, [], "no RPC went to the page's own origin");
    assert.deepEqual(pageErrors, [], "no uncaught error in the page");
    await page.close();
  });

  it("reads a follower's leader hint (exposed headers) and runs over gRPC-web too", async () => {
    const { page, pageErrors } = await open(`${direct.url}/?topic=web-grpc&protocol=grpc-web`);
    await clusterShown(page, 2);
    assert.match(await text(page, "mode"), /grpc-web/);
    const [ack] = await produce(page, ["over grpc-web"]);
    assert.match(ack ?? "", /^over grpc-web → web-grpc#\d offset 0$/);

    // A follower refuses a commit and names the leader in response headers: readable only if exposed.
    const layout = await cluster.createTopic("web-hint", { partitions: 1, replicas: 2 });
    const { leader, replicas } = layout.partitions[0] as (typeof layout.partitions)[number];
    const follower = replicas.find((id) => id !== leader) as string;
    const answer = await page.evaluate(
      async (url: string) => {
        const res = await fetch(`${url}/goulette.v1.BrokerService/CommitOffset`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1" },
          body: JSON.stringify({ consumerGroup: "g", topic: "web-hint", partition: 0, offset: "1" }),
        });
        return {
          status: res.status,
          leaderId: res.headers.get("goulette-leader-id"),
          leaderAddress: res.headers.get("goulette-leader-address"),
        };
      },
      `http://${cluster.brokerAddress(follower)}`,
    );
    assert.deepEqual(answer, {
      status: 503,
      leaderId: leader,
      leaderAddress: cluster.brokerAddress(leader),
    });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it("the same page fails with CORS errors when a sentinel has CORS off or another origin serves it", async () => {
    for (const [server, what] of [
      [directNoCors, "a sentinel with CORS off"],
      [otherOrigin, "an origin the cluster does not allow"],
    ] as const) {
      const { page, requests, consoleErrors } = await open(`${server.url}/?topic=web-blocked`);
      const status = await waitFor(
        async () => {
          const line = await text(page, "status");
          return line.startsWith("cluster status failed") ? line : undefined;
        },
        { timeoutMs: 15_000, what: `the page to fail against ${what}` },
      );
      assert.ok(status.includes(`--cors-allowed-origins ${server.url}`), status);
      assert.ok(
        requests.some((url) => url.endsWith("/goulette.v1.SentinelService/GetClusterStatus")),
        `${what}: the page did call a sentinel`,
      );
      await waitFor(() => consoleErrors.some((line) => CORS_BLOCKED.test(line)), {
        timeoutMs: 5_000,
        what: `Chromium to report a CORS block (${what}): ${consoleErrors.join(" | ")}`,
      });
      assert.match(await text(page, "cluster"), /^Cluster: …$/, `${what}: nothing was read`);
      await page.close();
    }
  });

  it("proxy mode still works where CORS is off, from the page's own origin", async () => {
    const { page, requests, pageErrors } = await open(`${proxied.url}/?topic=web-proxied&group=web`);
    await clusterShown(page, 2);
    assert.match(await text(page, "mode"), /proxy mode/);
    const [ack] = await produce(page, ["through the proxy"]);
    assert.match(ack ?? "", /^through the proxy → web-proxied#\d offset 0$/);
    await page.locator("#consume").click();
    const [consumed] = await waitFor(
      async () => {
        const list = await items(page, "messages");
        return list.length === 1 ? list : undefined;
      },
      { timeoutMs: 20_000, what: "the page to consume through the proxy" },
    );
    assert.match(consumed ?? "", /^web-proxied#\d@0: through the proxy$/);
    const rpcs = requests.filter((url) => url.includes("/goulette.v1."));
    assert.ok(rpcs.length > 0);
    for (const url of rpcs) {
      assert.equal(new URL(url).origin, proxied.url, `${url} went through the page's origin`);
      assert.match(new URL(url).pathname, /^\/(sentinel\/\d+|broker\/[^/]+)\/goulette\.v1\./);
    }
    assert.ok(rpcs.some((url) => url.includes("/broker/") && url.endsWith(".BrokerService/ProduceBatches")));
    await page.locator("#stop").click();
    await waitFor(async () => (await text(page, "status")).includes("committed"), {
      timeoutMs: 15_000,
      what: "the page to stop and commit",
    });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
