// GouletteNoSentinelLeader and GouletteBrokerDown in a Prometheus shared with other charts. Jobs named
// like ours, "redis-sentinel" and "other-broker" (a tiny exporter that answers, then fails), go down in
// the release's own namespace: neither alert names them, from the chart's PrometheusRule (this
// release's selectors) nor from the plain rules file (every Goulette release), though the old
// `up{job=~".*broker.*"}` selectors would. This release's jobs still raise both: its broker is gone from
// the start, then its sentinel is killed. A second Goulette release's broker, down too, is judged by the
// plain file only.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify as stringifyYaml } from "yaml";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import {
  DEFAULT_NAMESPACE as NAMESPACE,
  DEFAULT_RELEASE as RELEASE,
  chartDir,
  findHelm,
  helmTemplate,
} from "../helpers/helm.js";
import { freePort } from "../helpers/ports.js";
import {
  findPrometheus,
  startPrometheus,
  type PromSample,
  type TestPrometheus,
} from "../helpers/prometheus.js";
import { startSentinelProcess, type SentinelProcess } from "../helpers/sentinel-process.js";
import { waitFor } from "../helpers/wait.js";

const SENTINEL_JOB = `${RELEASE}-goulette-sentinel-headless`;
const BROKER_JOB = `${RELEASE}-goulette-broker-headless`;
const SENTINEL_POD = `${RELEASE}-goulette-sentinel-0`;
const BROKER_POD = `${RELEASE}-goulette-broker-0`;
const FOREIGN_JOBS = ["redis-sentinel", "other-broker"];
/** Another Goulette release in another namespace: the plain file judges it, this release's rules do not. */
const OTHER_RELEASE = {
  namespace: "prod",
  job: "prod-goulette-broker-headless",
  pod: "prod-goulette-broker-0",
};
const rulesFile = path.join(chartDir, "rules", "goulette-alerts.yaml");
/** The label the chart's copy of the rules carries (additionalRuleLabels), to tell them from the file's. */
const CHART_LABEL = "rules";

const skip = !findPrometheus()
  ? "prometheus not installed (Debian package `prometheus`)"
  : !findHelm()
    ? "helm not found: run `bash scripts/setup.sh`"
    : false;

const jobsOf = (samples: PromSample[]) => samples.map((s) => s.labels.job ?? "").sort();

describe("alert selectors in a Prometheus shared with other charts", { skip, timeout: 90_000 }, () => {
  let dir: string;
  let etcd: TestEtcd;
  let sentinel: SentinelProcess | undefined;
  let prom: TestPrometheus;
  let exporterHealthy = true;
  const exporter = http.createServer((_req, res) => {
    if (!exporterHealthy) {
      res.writeHead(503).end("down\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end("# TYPE redis_sentinel_masters gauge\nredis_sentinel_masters 1\n");
  });

  /** Active (pending or firing) alerts of `name` from the chart's rules or the file's: "namespace/job[/pod]". */
  const activeAlerts = async (name: string, from: "chart" | "file") =>
    (await prom.rules())
      .filter((r) => r.name === name)
      .flatMap((r) => r.alerts ?? [])
      .filter((a) => (a.labels[CHART_LABEL] === "chart") === (from === "chart") && a.state !== "inactive")
      .map((a) => [a.labels.namespace, a.labels.job, a.labels.pod].filter(Boolean).join("/"))
      .sort();
  /** Resolves once every copy of `name` was evaluated after `since` (ms since the epoch). */
  const evaluatedAfter = (name: string, since: number) =>
    waitFor(
      async () => {
        const copies = (await prom.rules()).filter((r) => r.name === name);
        return copies.length === 2 && copies.every((r) => Date.parse(r.lastEvaluation ?? "") > since);
      },
      { timeoutMs: 10_000, intervalMs: 200, what: `${name} to be evaluated again` },
    );

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-selectors-"));
    // The release's PrometheusRule as the chart renders it, labelled to tell its alerts from the file's.
    const objects = await helmTemplate({
      values: {
        metrics: { prometheusRule: { enabled: true, additionalRuleLabels: { [CHART_LABEL]: "chart" } } },
      },
    });
    const rule = objects.find((o) => o.kind === "PrometheusRule");
    assert.ok(rule, "no PrometheusRule rendered");
    const chartRules = path.join(dir, "chart-rules.yaml");
    await writeFile(chartRules, stringifyYaml({ groups: (rule.spec as { groups: unknown }).groups }));

    await new Promise<void>((resolve) => exporter.listen(0, "127.0.0.1", resolve));
    const exporterAddress = `127.0.0.1:${(exporter.address() as AddressInfo).port}`;
    // Nothing listens there: pods that are gone.
    const goneBroker = `127.0.0.1:${await freePort()}`;
    const otherReleaseBroker = `127.0.0.1:${await freePort()}`;
    etcd = await startEtcd();
    sentinel = await startSentinelProcess({
      id: SENTINEL_POD,
      etcdEndpoint: etcd.endpoint,
      args: ["--election-ttl", "2", "--log-level", "warn"],
    });
    const here = (pod: string) => ({ namespace: NAMESPACE, pod });
    prom = await startPrometheus({
      jobs: [
        {
          job: SENTINEL_JOB,
          targets: [{ address: `127.0.0.1:${sentinel.port}`, labels: here(SENTINEL_POD) }],
        },
        { job: BROKER_JOB, targets: [{ address: goneBroker, labels: here(BROKER_POD) }] },
        { job: "redis-sentinel", targets: [{ address: exporterAddress, labels: here("redis-node-0") }] },
        { job: "other-broker", targets: [{ address: exporterAddress, labels: here("other-broker-0") }] },
        {
          job: OTHER_RELEASE.job,
          targets: [
            {
              address: otherReleaseBroker,
              labels: { namespace: OTHER_RELEASE.namespace, pod: OTHER_RELEASE.pod },
            },
          ],
        },
      ],
      ruleFiles: [rulesFile, chartRules],
    });
  });

  after(async () => {
    await sentinel?.kill("SIGKILL");
    await prom?.stop();
    await etcd?.stop();
    await new Promise<void>((resolve) => exporter.close(() => resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("foreign jobs that go down raise neither alert; this release's gone broker does", async () => {
    const foreignUp = `up{namespace="${NAMESPACE}", job=~"${FOREIGN_JOBS.join("|")}"}`;
    await waitFor(async () => jobsOf(await prom.query(`${foreignUp} == 1`)).length === FOREIGN_JOBS.length, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: "Prometheus to scrape the foreign exporter",
    });
    await waitFor(
      async () => (await prom.query(`goulette_sentinel_is_leader{job="${SENTINEL_JOB}"} == 1`)).length === 1,
      { timeoutMs: 15_000, intervalMs: 200, what: "the release's sentinel to lead, as Prometheus sees it" },
    );
    exporterHealthy = false;
    await waitFor(async () => jobsOf(await prom.query(`${foreignUp} == 0`)).length === FOREIGN_JOBS.length, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: "Prometheus to see the foreign jobs down",
    });
    const seenDown = Date.now();
    // They are down, and named so that the selectors the alerts had before would take them.
    assert.deepEqual(jobsOf(await prom.query('up{job=~".*broker.*"} == 0')), [
      BROKER_JOB,
      "other-broker",
      OTHER_RELEASE.job,
    ]);
    assert.deepEqual(jobsOf(await prom.query('up{job=~".*sentinel.*"} == 0')), ["redis-sentinel"]);

    await evaluatedAfter("GouletteBrokerDown", seenDown);
    await evaluatedAfter("GouletteNoSentinelLeader", seenDown);
    assert.deepEqual(await activeAlerts("GouletteBrokerDown", "chart"), [
      `${NAMESPACE}/${BROKER_JOB}/${BROKER_POD}`,
    ]);
    assert.deepEqual(await activeAlerts("GouletteBrokerDown", "file"), [
      `${NAMESPACE}/${BROKER_JOB}/${BROKER_POD}`,
      `${OTHER_RELEASE.namespace}/${OTHER_RELEASE.job}/${OTHER_RELEASE.pod}`,
    ]);
    assert.deepEqual(await activeAlerts("GouletteNoSentinelLeader", "chart"), []);
    assert.deepEqual(await activeAlerts("GouletteNoSentinelLeader", "file"), []);
  });

  it("with this release's sentinel gone, GouletteNoSentinelLeader names its job and no other", async () => {
    assert.equal(exporterHealthy, false, "runs after the foreign jobs went down");
    await sentinel?.kill("SIGKILL");
    sentinel = undefined;
    const expected = [`${NAMESPACE}/${SENTINEL_JOB}`];
    await waitFor(async () => (await activeAlerts("GouletteNoSentinelLeader", "chart")).length > 0, {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: "GouletteNoSentinelLeader to go pending",
    });
    await evaluatedAfter("GouletteNoSentinelLeader", Date.now());
    assert.deepEqual(await activeAlerts("GouletteNoSentinelLeader", "chart"), expected);
    assert.deepEqual(await activeAlerts("GouletteNoSentinelLeader", "file"), expected);
  });
});
