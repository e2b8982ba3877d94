// The alert rules shipped in the chart (charts/goulette/rules): promtool validates the file and runs
// its unit tests (each alert fires on its condition, not before its `for`, not on the harmless case).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { Etcd3 } from "etcd3";
import { parse as parseYaml } from "yaml";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { GroupStore } from "../../src/groups/group-store.js";
import { GroupView } from "../../src/groups/group-view.js";
import { createGroupMetrics } from "../../src/observability/group-metrics.js";
import { silentLogger } from "../../src/observability/logger.js";
import * as metrics from "../../src/observability/metrics.js";
import { chartDir, findOnPath, repoRoot, run } from "../helpers/helm.js";

const rulesFile = path.join(chartDir, "rules", "goulette-alerts.yaml");
const rulesTests = path.join(chartDir, "rules", "goulette-alerts.test.yaml");
const promtool = findOnPath("promtool");
const noPromtool = promtool
  ? false
  : "promtool not installed (Debian package `prometheus`; scripts/setup.sh installs it, CI has it)";

interface RuleFile {
  groups: {
    name: string;
    rules: { alert?: string; expr?: string; annotations?: Record<string, string> }[];
  }[];
}

describe("charts/goulette/rules", () => {
  it("promtool check rules accepts goulette-alerts.yaml", { skip: noPromtool }, async () => {
    const result = await run(promtool as string, ["check", "rules", rulesFile]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /SUCCESS: 8 rules found/);
  });

  it(
    "promtool test rules: every alert fires when it should and only then",
    { skip: noPromtool },
    async () => {
      const result = await run(promtool as string, ["test", "rules", rulesTests]);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const tested = new Set(
        [...readFileSync(rulesTests, "utf8").matchAll(/alertname: (\w+)/g)].map((m) => m[1] as string),
      );
      const rules = parseYaml(readFileSync(rulesFile, "utf8")) as RuleFile;
      for (const rule of rules.groups.flatMap((g) => g.rules)) {
        if (rule.alert) assert.ok(tested.has(rule.alert), `${rule.alert} has no promtool test`);
      }
    },
  );

  it("alerts only use metrics that Goulette registers", async (t) => {
    const registry = new Registry();
    metrics.createRpcMetrics(registry);
    metrics.createSentinelMetrics(registry);
    // The consumer-group gauges of a sentinel; the view is never started, so etcd is never dialled.
    const etcd = new Etcd3({ hosts: "127.0.0.1:1" });
    createGroupMetrics(registry, new GroupView(new GroupStore(etcd, createKeyspace()), silentLogger()));
    etcd.close();
    // Looked up by name: the broker's metrics come later, in the same module.
    const createBrokerMetrics = (metrics as Record<string, unknown>).createBrokerMetrics;
    if (typeof createBrokerMetrics === "function") createBrokerMetrics(registry);
    const known = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const rules = parseYaml(readFileSync(rulesFile, "utf8")) as RuleFile;
    const used = new Set(
      rules.groups
        .flatMap((g) => g.rules)
        .flatMap((r) => [...String(r.expr).matchAll(/\bgoulette_[a-z0-9_]+/g)].map((m) => m[0])),
    );
    assert.ok(used.size >= 6, `only ${used.size} Goulette metrics in the alerts`);
    for (const name of used) {
      if (name.startsWith("goulette_broker_") && typeof createBrokerMetrics !== "function") {
        t.diagnostic(`${name}: not checked, src/observability/metrics.ts has no createBrokerMetrics yet`);
        continue;
      }
      assert.ok(known.has(name), `${name} is used by an alert but no Goulette process registers it`);
    }
  });

  it("runbook links point at headings of docs/operations.md", (t) => {
    const operations = path.join(repoRoot, "docs", "operations.md");
    if (!existsSync(operations)) {
      t.skip("docs/operations.md does not exist yet");
      return;
    }
    // GitHub's anchors: lower case, punctuation dropped, spaces to dashes.
    const anchors = new Set(
      [...readFileSync(operations, "utf8").matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
        (m[1] as string)
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s_-]/gu, "")
          .replace(/\s/g, "-"),
      ),
    );
    const rules = parseYaml(readFileSync(rulesFile, "utf8")) as RuleFile;
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      const anchor = rule.annotations?.runbook_url?.split("#")[1];
      assert.ok(anchor, `${rule.alert}: no anchor in runbook_url`);
      assert.ok(anchors.has(anchor), `${rule.alert}: docs/operations.md has no heading for #${anchor}`);
    }
  });
});
