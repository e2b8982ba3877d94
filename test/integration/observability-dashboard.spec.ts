// The Grafana dashboard shipped by the chart (charts/goulette/dashboards/goulette.json), checked
// without a Prometheus: its shape, its variables, and that every query names metrics Goulette
// registers and filters by the dashboard's variables (cluster, namespace, job, and pod where it
// applies). observability.spec.ts runs the same queries against a real Prometheus.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Etcd3 } from "etcd3";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { GroupStore } from "../../src/groups/group-store.js";
import { GroupView } from "../../src/groups/group-view.js";
import { createGroupMetrics } from "../../src/observability/group-metrics.js";
import { silentLogger } from "../../src/observability/logger.js";
import {
  createBrokerMetrics,
  createRegistry,
  createRpcMetrics,
  createSentinelMetrics,
} from "../../src/observability/metrics.js";
import { chartDir } from "../helpers/helm.js";
import { dashboardQueries, variablesOf } from "../helpers/prometheus.js";

interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: { refId: string; expr: string; datasource?: { type?: string; uid?: string } }[];
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: Variable[] };
  panels: Panel[];
}

const file = path.join(chartDir, "dashboards", "goulette.json");
const dashboard = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
const queries = dashboardQueries(dashboard);

const ROWS = ["Cluster overview", "Operation log", "RPC", "Brokers", "Consumer groups", "Process"];
/**
 * Rows whose panels describe the whole cluster: they filter by namespace only, not by pod. Consumer
 * groups span brokers (lag summed over the partition leaders) and every sentinel reports the same groups.
 */
const CLUSTER_WIDE_ROWS = new Set(["Cluster overview", "Consumer groups"]);
/** Every selector carries these: the cluster (when there is a cluster label), namespace and job. */
const SCOPE_MATCHERS = ['cluster=~"$cluster"', 'namespace=~"$namespace"', 'job=~"$job"'];
const POD_MATCHER = 'pod=~"$pod"';

/** `metric{matchers}`: every selector in the dashboard carries at least the namespace matcher. */
const SELECTOR = /([a-zA-Z_:][\w:]*)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g;
const PROMQL_WORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"]);

/** Names a scrape of a Goulette process can return, histogram series included, plus Prometheus' `up`. */
async function knownSeriesNames(): Promise<Set<string>> {
  const registry = createRegistry();
  createRpcMetrics(registry);
  createSentinelMetrics(registry);
  createBrokerMetrics(registry);
  // A sentinel's consumer-group gauges; the view is never started, so etcd is never dialled.
  const etcd = new Etcd3({ hosts: "127.0.0.1:1" });
  createGroupMetrics(registry, new GroupView(new GroupStore(etcd, createKeyspace()), silentLogger()));
  etcd.close();
  const names = new Set(["up"]);
  for (const metric of await registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix);
    }
  }
  return names;
}

function variableQuery(v: Variable): string {
  return typeof v.query === "string" ? v.query : (v.query?.query ?? "");
}

describe("charts/goulette/dashboards/goulette.json", () => {
  it("is the Goulette dashboard (uid, title, schema version)", () => {
    assert.equal(dashboard.uid, "goulette");
    assert.equal(dashboard.title, "Goulette");
    assert.ok(dashboard.schemaVersion >= 38, `schemaVersion ${dashboard.schemaVersion} < 38`);
  });

  it("has a Prometheus datasource variable and multi-value cluster, namespace, job and pod variables", () => {
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ["datasource", "cluster", "namespace", "job", "pod"],
    );
    const byName = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    const ds = byName.get("datasource");
    assert.equal(ds?.type, "datasource");
    assert.equal(variableQuery(ds ?? { name: "", type: "" }), "prometheus");
    for (const name of ["cluster", "namespace", "job", "pod"]) {
      const v = byName.get(name);
      assert.ok(v, `no ${name} variable`);
      assert.equal(v.type, "query");
      assert.equal(v.datasource?.uid, "${datasource}", `${name} must query the selected datasource`);
      assert.match(variableQuery(v), new RegExp(`^label_values\\(.+, ${name}\\)$`));
      assert.equal(v.multi, true, `${name}: multi`);
      assert.equal(v.includeAll, true, `${name}: include All`);
      if (name === "job") {
        // "All" is the list of jobs found (Grafana's default): every Goulette job and no other, so the
        // up panel shows no foreign job of the namespace.
        assert.equal(v.allValue, undefined, "job: All is the jobs found, not .*");
      } else {
        // Queries use =~, so "All" must be a regex that also matches series without the label: a
        // Prometheus without a cluster label still shows everything.
        assert.equal(v.allValue, ".*", `${name}: allValue`);
      }
    }
    // Each variable narrows the next: cluster, then namespace, then job, then pod.
    const uses = (name: string) => variablesOf(variableQuery(byName.get(name) as Variable));
    assert.deepEqual(uses("cluster"), []);
    assert.deepEqual(uses("namespace"), ["cluster"]);
    assert.deepEqual(uses("job"), ["cluster", "namespace"]);
    assert.deepEqual(uses("pod"), ["cluster", "namespace", "job"]);
  });

  it("has the rows in order, every panel on the selected datasource, without overlaps", () => {
    const rows = dashboard.panels.filter((p) => p.type === "row").map((p) => p.title);
    assert.deepEqual(rows, ROWS);
    const all = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    assert.equal(new Set(all.map((p) => p.id)).size, all.length, "panel ids are unique");
    const cells = new Set<string>();
    for (const p of all) {
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: outside the 24 columns`);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel at ${i},${j}`);
          cells.add(`${i},${j}`);
        }
      }
      if (p.type === "row") continue;
      assert.equal(p.datasource?.uid, "${datasource}", `${p.title}: datasource`);
      assert.ok((p.targets ?? []).length > 0, `${p.title}: no query`);
      for (const t of p.targets ?? []) {
        assert.ok(t.expr.trim() !== "", `${p.title}/${t.refId}: empty expression`);
        if (t.datasource) assert.equal(t.datasource.uid, "${datasource}", `${p.title}/${t.refId}`);
      }
    }
  });

  it("every query uses only registered metrics, the dashboard's variables and $__rate_interval", async () => {
    const known = await knownSeriesNames();
    for (const q of queries) {
      const where = `${q.row} / ${q.panel} / ${q.refId}: ${q.expr}`;
      const selectors = [...q.expr.matchAll(SELECTOR)];
      assert.ok(selectors.length > 0, `${where}: no metric selector`);
      for (const [, metric, matchers] of selectors) {
        assert.ok(known.has(metric as string), `${where}: ${metric} is not a metric Goulette exposes`);
        for (const matcher of SCOPE_MATCHERS) {
          assert.ok(matchers?.includes(matcher), `${where}: ${metric} is not filtered by ${matcher}`);
        }
        if (!CLUSTER_WIDE_ROWS.has(q.row)) {
          assert.ok(matchers?.includes(POD_MATCHER), `${where}: ${metric} is not filtered by $pod`);
        }
      }
      // What is left once selectors, strings, ranges, grouping clauses and function calls are gone
      // must not be a metric name: a bare metric would escape the variables.
      const rest = q.expr
        .replace(SELECTOR, " ")
        .replace(/"(?:[^"\\]|\\.)*"/g, " ")
        .replace(/\[[^\]]*\]/g, " ")
        .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, " ");
      const bare = [...rest.matchAll(/\b[a-zA-Z_:][\w:]*\b(?!\s*\()/g)]
        .map((m) => m[0])
        .filter((w) => !PROMQL_WORDS.has(w));
      assert.deepEqual(bare, [], `${where}: bare identifiers`);
      for (const name of variablesOf(q.expr)) {
        assert.ok(
          ["cluster", "namespace", "job", "pod", "__rate_interval"].includes(name),
          `${where}: variable $${name}`,
        );
      }
      for (const [range] of q.expr.matchAll(/\[[^\]]*\]/g)) {
        assert.equal(range, "[$__rate_interval]", `${where}: ranges use $__rate_interval`);
      }
    }
  });

  it("covers what operators watch: each row shows the metrics it is about", () => {
    const expected: Record<string, string[]> = {
      "Cluster overview": [
        "goulette_sentinel_is_leader",
        "goulette_sentinel_ring_brokers",
        "goulette_sentinel_brokers",
        "goulette_sentinel_topics",
        "goulette_sentinel_ready",
        "goulette_sentinel_etcd_up",
      ],
      "Operation log": [
        "goulette_sentinel_oplog_head_id",
        "goulette_sentinel_oplog_applied_id",
        "goulette_sentinel_replay_lag_ops",
        "goulette_sentinel_replay_lag_seconds",
        "goulette_sentinel_replay_duration_seconds_count",
        "goulette_sentinel_operations_appended_total",
        "goulette_sentinel_append_duration_seconds_bucket",
        "goulette_sentinel_snapshots_total",
      ],
      RPC: [
        "goulette_rpc_requests_total",
        "goulette_rpc_duration_seconds_bucket",
        "goulette_sentinel_forwarded_total",
      ],
      Brokers: [
        "goulette_broker_messages_in_total",
        "goulette_broker_messages_out_total",
        "goulette_broker_bytes_in_total",
        "goulette_broker_bytes_out_total",
        "goulette_broker_produce_errors_total",
        "goulette_broker_fsync_duration_seconds_bucket",
        "goulette_broker_volume_sync_duration_seconds_bucket",
        "goulette_broker_oldest_unsynced_write_seconds",
        "goulette_broker_produce_latency_seconds_bucket",
        "goulette_broker_produce_stage_seconds_bucket",
        "goulette_broker_fetch_latency_seconds_bucket",
        "goulette_broker_partitions_led",
        "goulette_broker_partitions_followed",
        "goulette_broker_under_replicated_partitions",
        "goulette_broker_under_min_insync_partitions",
        "goulette_broker_replication_lag_messages",
        "goulette_broker_consumer_lag_messages",
        "goulette_broker_log_bytes",
        "goulette_broker_disk_available_bytes",
        "goulette_broker_disk_size_bytes",
      ],
      "Consumer groups": [
        "goulette_sentinel_consumer_groups",
        "goulette_sentinel_group_members",
        "goulette_sentinel_group_generation",
        "goulette_sentinel_group_rebalances_total",
        "goulette_sentinel_group_partitions_moving",
        "goulette_broker_consumer_group_lag_messages",
      ],
      Process: [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "nodejs_eventloop_lag_p99_seconds",
        "nodejs_heap_size_used_bytes",
      ],
    };
    for (const [row, metrics] of Object.entries(expected)) {
      const used = new Set(
        queries.filter((q) => q.row === row).flatMap((q) => [...q.expr.matchAll(SELECTOR)].map((m) => m[1])),
      );
      for (const metric of metrics) assert.ok(used.has(metric), `row ${row} does not show ${metric}`);
    }
    const groups = queries.filter((q) => q.row === "Consumer groups").map((q) => q.expr);
    for (const metric of ["members", "generation", "partitions_moving"]) {
      const expr = groups.find((e) => e.includes(`goulette_sentinel_group_${metric}{`));
      // Every sentinel exports the same groups from its own view: a sum would count each one N times.
      assert.match(
        expr ?? "",
        /^max by \(group\) \(/,
        `${metric}: one line per group, max over the sentinels`,
      );
    }
    const lag = groups.find((e) => e.includes("goulette_broker_consumer_group_lag_messages{")) ?? "";
    // Each broker reports the partitions it leads: summed over brokers, then the largest only.
    assert.match(lag, /^topk\(\d+, sum by \(group, topic\) \(/, "lag per group and topic, top-k");
    const rpc = queries.filter((q) => q.row === "RPC").map((q) => q.expr);
    for (const quantile of ["0.5", "0.95", "0.99"]) {
      assert.ok(
        rpc.some((e) => e.startsWith(`histogram_quantile(${quantile},`)),
        `no RPC latency p${Number(quantile) * 100}`,
      );
    }
    // Produce latency per acks mode and fetch latency per stream kind, each at p50 and p99.
    const brokers = queries.filter((q) => q.row === "Brokers").map((q) => q.expr);
    assert.ok(
      brokers.some(
        (e) =>
          e.startsWith("histogram_quantile(0.99, sum by (stage, le) (") &&
          e.includes("goulette_broker_produce_stage_seconds_bucket{"),
      ),
      "no p99 of the produce latency by stage",
    );
    for (const [metric, by] of [
      ["goulette_broker_produce_latency_seconds_bucket", "acks"],
      ["goulette_broker_fetch_latency_seconds_bucket", "stream"],
    ]) {
      for (const quantile of ["0.5", "0.99"]) {
        assert.ok(
          brokers.some(
            (e) =>
              e.startsWith(`histogram_quantile(${quantile}, sum by (${by}, le) (`) &&
              e.includes(`${metric}{`),
          ),
          `no p${Number(quantile) * 100} of ${metric} by ${by}`,
        );
      }
    }
  });
});
