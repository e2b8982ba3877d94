/**
 * Regenerates the console screenshots of docs/console.md (docs/console/*.png): starts a small cluster
 * of real processes on loopback (etcd, 2 sentinels, 3 brokers), seeds a topic and two consumer groups (one with a live member),
 * photographs every page in headless Chromium, stops a broker and photographs the ring again.
 *
 *   npm run console:screenshots
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Consumer } from "../src/index.js";
import { launchChromium } from "../test/helpers/chromium.js";
import { startCluster } from "../test/helpers/cluster.js";
import { openConsole, seedConsoleDemo } from "../test/helpers/console-fixture.js";
import { waitFor } from "../test/helpers/wait.js";
import { repoRoot } from "./build-console.js";

const outDir = path.join(repoRoot(), "docs", "console");
await mkdir(outDir, { recursive: true });
const cluster = await startCluster({ sentinels: 2, brokers: 3, sentinelArgs: ["--heartbeat-ttl", "3"] });
const browser = await launchChromium({ viewport: { width: 1280, height: 860 } });
try {
  const demo = await seedConsoleDemo(cluster);
  // A live member, so the group page shows one (it leaves before the end).
  const member = new Consumer({
    sentinels: cluster.sentinelUrls,
    topic: demo.topic,
    group: "audit",
    from: "earliest",
  });
  const running = member.run(() => undefined);
  const url = cluster.sentinelUrls[0] as string;
  const page = await browser.context.newPage();
  const shoot = async (route: string, file: string, ready?: () => Promise<unknown>) => {
    await openConsole(page, url, route);
    await ready?.();
    await page.screenshot({ path: path.join(outDir, file), fullPage: false });
    console.log(`wrote docs/console/${file}`);
  };
  await shoot("overview", "overview.png", () =>
    waitFor(async () => (await page.locator("text=yes").count()) >= 2, {
      timeoutMs: 15_000,
      what: "digests compared",
    }),
  );
  await shoot(`ring?topic=${demo.topic}&down=b2`, "ring-simulate.png");
  await shoot(`topics/${demo.topic}`, "topic.png");
  await page.goto(`${url}/ui/#/topics/${demo.topic}/messages?partition=0`);
  await page.locator("#msg-format").selectOption("json");
  await page.locator("#msg-read").click();
  await page.locator("[data-testid=messages] tbody tr").first().waitFor();
  await page.screenshot({ path: path.join(outDir, "messages.png") });
  console.log("wrote docs/console/messages.png");
  await shoot("groups/audit", "group.png", () =>
    waitFor(async () => (await page.locator("[data-testid=group-partitions] tbody tr").count()) >= 4, {
      timeoutMs: 15_000,
      what: "the group's partitions",
    }),
  );
  await shoot("oplog", "oplog.png");
  await member.close();
  await running;

  await cluster.killBroker("b2");
  await shoot(`ring?topic=${demo.topic}`, "ring-after.png", () =>
    waitFor(async () => (await page.locator("[data-broker=b2][data-status=down]").count()) > 0, {
      timeoutMs: 30_000,
      what: "b2 down on the ring page",
    }),
  );
  const dark = await launchChromium({ viewport: { width: 1280, height: 860 }, colorScheme: "dark" });
  try {
    const darkPage = await dark.context.newPage();
    await openConsole(darkPage, url, `ring?topic=${demo.topic}`);
    await darkPage.screenshot({ path: path.join(outDir, "ring-dark.png") });
    console.log("wrote docs/console/ring-dark.png");
  } finally {
    await dark.close();
  }
} finally {
  await browser.close();
  await cluster.stop();
}
