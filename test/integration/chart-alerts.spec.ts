// The alert rules shipped in the chart (charts/goulette/rules): promtool validates the file and runs
// its unit tests (each alert fires on its condition, not before its `for`, not on the harmless case).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { Etcd3 } from "etcd3";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { GroupStore } from "../../src/groups/group-store.js";
import { GroupView } from "../../src/groups/group-view.js";
import { createGroupMetrics } from "../../src/observability/group-metrics.js";
import { silentLogger } from "../../src/observability/logger.js";
import * as metrics from "../../src/observability/metrics.js";
import {
  DEFAULT_NAMESPACE as NS,
  DEFAULT_RELEASE as RELEASE,
  chartDir,
  findHelm,
  findOnPath,
  helmTemplate,
  helmTemplateRaw,
  repoRoot,
  run,
  type KubeObject,
} from "../helpers/helm.js";

const rulesFile = path.join(chartDir, "rules", "goulette-alerts.yaml");
const rulesTests = path.join(chartDir, "rules", "goulette-alerts.test.yaml");
const promtool = findOnPath("promtool");
const noPromtool = promtool
  ? false
  : "promtool not installed (Debian package `prometheus`; scripts/setup.sh installs it, CI has it)";

interface Rule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

const noHelm = findHelm()
  ? false
  : "helm not found: run `bash scripts/setup.sh` (it extracts .tools/bin/helm)";

/** The selectors of the rules file that the chart replaces by a release's. */
const PLACEHOLDERS = {
  sentinel: 'job=~".*goulette.*-sentinel-headless"',
  broker: 'job=~".*goulette.*-broker-headless"',
  pods: 'pod=~".*goulette.*-(sentinel|broker|etcd)-[0-9]+"',
};

/** The PrometheusRule's groups rendered with these prometheusRule values (undefined: none rendered). */
async function renderedGroups(
  prometheusRule: Record<string, unknown>,
  releaseName = RELEASE,
): Promise<RuleFile["groups"] | undefined> {
  const objects = await helmTemplate({
    releaseName,
    values: { metrics: { prometheusRule: { enabled: true, ...prometheusRule } } },
  });
  const rule = objects.find((o: KubeObject) => o.kind === "PrometheusRule");
  return rule ? (rule.spec as RuleFile).groups : undefined;
}

const rulesOf = (groups: RuleFile["groups"] | undefined): Rule[] => (groups ?? []).flatMap((g) => g.rules);
const alertNames = (groups: RuleFile["groups"] | undefined): string[] =>
  rulesOf(groups).map((r) => r.alert ?? "");
const fileRules = (): RuleFile => parseYaml(readFileSync(rulesFile, "utf8")) as RuleFile;

describe("charts/goulette/rules", () => {
  it("promtool check rules accepts goulette-alerts.yaml", { skip: noPromtool }, async () => {
    const result = await run(promtool as string, ["check", "rules", rulesFile]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /SUCCESS: 14 rules found/);
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

  it("every Goulette selector of the file is a placeholder the chart replaces; no job is matched by a bare word", () => {
    for (const rule of rulesOf(fileRules().groups)) {
      const expr = String(rule.expr);
      // A job or pod matcher that is not one of the placeholders would escape the chart's selectors.
      const matchers = [...expr.matchAll(/\b(job|pod)\s*=~?\s*"[^"]*"/g)].map((m) => m[0]);
      for (const m of matchers) {
        assert.ok(Object.values(PLACEHOLDERS).includes(m), `${rule.alert}: ${m} is not a chart placeholder`);
      }
      // Every metric selector of the rule carries one of them.
      for (const [, metric, inner] of expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*\{([^}]*)\}/g)) {
        assert.ok(
          Object.values(PLACEHOLDERS).some((p) => (inner as string).includes(p)),
          `${rule.alert}: ${metric as string}{${inner as string}} is not restricted to Goulette's jobs or pods`,
        );
      }
      assert.doesNotMatch(
        expr,
        /\b(up|goulette_\w+|kube_\w+)\b(?!\s*\{)/,
        `${rule.alert}: a metric without matchers`,
      );
    }
  });

  describe("the chart's PrometheusRule (helm template)", { skip: noHelm }, () => {
    it("selects this release's jobs and pods by default, and passes promtool check rules", async (t) => {
      const groups = await renderedGroups({});
      const text = JSON.stringify(groups);
      for (const placeholder of Object.values(PLACEHOLDERS)) {
        assert.ok(!text.includes(JSON.stringify(placeholder).slice(1, -1)), `${placeholder} left in`);
      }
      const exprs = rulesOf(groups).map((r) => String(r.expr));
      const brokerDown = exprs.find((e) => e.startsWith("up{")) ?? "";
      assert.match(
        brokerDown,
        new RegExp(`^up\\{namespace="${NS}", job="${RELEASE}-goulette-broker-headless"\\} == 0`),
      );
      assert.ok(
        exprs.some((e) =>
          e.includes(
            `kube_pod_status_ready{namespace="${NS}", pod=~"${RELEASE}-goulette-(sentinel|broker|etcd)-[0-9]+"`,
          ),
        ),
      );
      if (!promtool) {
        t.diagnostic("promtool not installed: the rendered rules were not checked by promtool");
        return;
      }
      const dir = await mkdtemp(path.join(tmpdir(), "goulette-rules-"));
      try {
        const file = path.join(dir, "rendered.yaml");
        await writeFile(file, stringifyYaml({ groups }));
        const result = await run(promtool, ["check", "rules", file]);
        assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
        assert.match(result.stdout, /SUCCESS: 14 rules found/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("a release name with dots is quoted in the pod regex", async () => {
      const groups = await renderedGroups({}, "team.a");
      assert.ok(
        rulesOf(groups).some((r) =>
          String(r.expr).includes(`pod=~"team\\\\.a-goulette-(sentinel|broker|etcd)-[0-9]+"`),
        ),
        "the dot of the release name must be \\. in the regex",
      );
    });

    it("takes the selectors from the values", async () => {
      const groups = await renderedGroups({
        selectors: {
          sentinel: 'cluster="eu1", service="gs"',
          broker: 'cluster="eu1", service="gb"',
          pods: 'namespace="q", pod=~"gb-.*"',
        },
      });
      const exprs = rulesOf(groups).map((r) => String(r.expr));
      assert.ok(exprs.some((e) => e.includes('up{cluster="eu1", service="gb"} == 0')));
      assert.ok(exprs.some((e) => e.includes('goulette_sentinel_is_leader{cluster="eu1", service="gs"}')));
      assert.ok(exprs.some((e) => e.includes('kube_pod_status_phase{namespace="q", pod=~"gb-.*", phase=')));
      assert.ok(!exprs.some((e) => e.includes(`${RELEASE}-goulette`)), "no default selector left");
    });

    it("leaves out disabled alerts and switched-off groups, and drops groups left empty", async () => {
      const all = alertNames(await renderedGroups({}));
      const inFile = (parseYaml(readFileSync(rulesFile, "utf8")) as RuleFile).groups
        .flatMap((g) => g.rules)
        .filter((r) => r.alert !== undefined);
      assert.equal(all.length, inFile.length, "every alert of the file, by default");
      const groups = await renderedGroups({
        rules: { kubernetes: false },
        disabled: {
          GouletteConsumerLagGrowing: true,
          GouletteConsumerGroupRebalanceStuck: true,
          GouletteBrokerDown: false,
        },
      });
      assert.deepEqual(
        alertNames(groups),
        all.filter(
          (a) =>
            ![
              "GoulettePodNotReady",
              "GouletteConsumerLagGrowing",
              "GouletteConsumerGroupRebalanceStuck",
            ].includes(a),
        ),
      );
      assert.deepEqual(
        groups?.map((g) => g.name),
        ["goulette.sentinel", "goulette.broker"],
      );
      const none = await renderedGroups({
        rules: { sentinel: false, broker: false, consumerGroups: false, kubernetes: false },
      });
      assert.equal(none, undefined, "no PrometheusRule without a single alert");
    });

    it("adds labels and annotations: a single alert's override every alert's, which override the file's", async () => {
      const groups = await renderedGroups({
        additionalRuleLabels: { team: "messaging", severity: "page" },
        additionalRuleAnnotations: { dashboard: "https://grafana.example.com/d/goulette" },
        ruleLabels: { GouletteBrokerDown: { severity: "critical", pager: "yes" } },
      });
      const file = new Map(rulesOf(fileRules().groups).map((r) => [r.alert, r]));
      for (const rule of rulesOf(groups)) {
        const expected =
          rule.alert === "GouletteBrokerDown"
            ? { severity: "critical", pager: "yes", team: "messaging" }
            : { severity: "page", team: "messaging" };
        assert.deepEqual(rule.labels, expected, `${rule.alert} labels`);
        assert.deepEqual(
          rule.annotations,
          { ...file.get(rule.alert)?.annotations, dashboard: "https://grafana.example.com/d/goulette" },
          `${rule.alert} annotations`,
        );
      }
    });

    it("refuses an unknown alert name, naming the alerts", async () => {
      for (const key of ["disabled", "ruleLabels"]) {
        const result = await helmTemplateRaw({
          values: {
            metrics: {
              prometheusRule: {
                enabled: true,
                [key]: { GouletteBrokerGone: key === "disabled" ? true : { a: "b" } },
              },
            },
          },
        });
        assert.notEqual(result.code, 0);
        assert.match(
          result.stderr,
          new RegExp(
            `metrics\\.prometheusRule\\.${key}: there is no alert GouletteBrokerGone \\(alerts: GouletteNoSentinelLeader, `,
          ),
        );
      }
      const braces = await helmTemplateRaw({
        values: { metrics: { prometheusRule: { enabled: true, selectors: { broker: '{job="b"}' } } } },
      });
      assert.notEqual(braces.code, 0, "a selector is matchers without braces");
      assert.match(braces.stderr, /selectors/);
    });
  });
});
