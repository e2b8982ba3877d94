// Consumer groups seen by a real Prometheus: two sentinels and two brokers (real processes on a real
// etcd), scraped with the labels Kubernetes service discovery adds; a group of two members made of raw
// GroupHeartbeat calls, and committed offsets behind the high watermarks. The queries of the
// dashboard's "Consumer groups" row, the two consumer-group alerts and the autoscaling queries of
// docs/kubernetes.md are evaluated by Prometheus and compared with what the test produced, committed
// and joined. The manifests of docs/kubernetes.md are validated against the Kubernetes schemas.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { parseAllDocuments } from "yaml";
import { Acks, ProduceError } from "../../src/gen/goulette/v1/broker_pb.js";
import type { MemberAssignment } from "../../src/gen/goulette/v1/group_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { chartDir, repoRoot } from "../helpers/helm.js";
import {
  dashboardQueries,
  startPrometheus,
  substituteVariables,
  type PromRule,
  type PromSample,
  type TestPrometheus,
} from "../helpers/prometheus.js";
import { waitFor } from "../helpers/wait.js";

/** The namespace, group and topic of the examples in docs/kubernetes.md, so its queries run verbatim. */
const NAMESPACE = "goulette";
const GROUP = "billing";
const TOPIC = "invoices";
/** A group that only commits (no members): it keeps up with the producers. */
const AUDIT = "audit";
const SENTINEL_JOB = "goulette-sentinel-headless";
const BROKER_JOB = "goulette-broker-headless";
const ROW = "Consumer groups";
/** Messages produced to each partition of TOPIC, and the offsets billing commits (lag 8+15+30+29). */
const PRODUCED = [10, 20, 30, 40];
const BILLING_COMMITTED = [2, 5, 0, 11];
const NS = `namespace="${NAMESPACE}"`;
const LAG_METRIC = "goulette_broker_consumer_group_lag_messages";
const rulesFile = path.join(chartDir, "rules", "goulette-alerts.yaml");
const rowQueries = dashboardQueries(
  JSON.parse(readFileSync(path.join(chartDir, "dashboards", "goulette.json"), "utf8")) as object,
).filter((q) => q.row === ROW);
const kubernetesDoc = readFileSync(path.join(repoRoot, "docs", "kubernetes.md"), "utf8");

type Sentinel = Client<typeof SentinelService>;
type Tp = { topic: string; partition: number };

/**
 * A group member speaking GroupHeartbeat, as an SDK would: it consumes what it is assigned and reports
 * the rest released, unless `holdOn` is set (then it keeps reporting what it owned, as a member whose
 * revocation never finishes would). Heartbeats of one member never overlap.
 */
class RawMember {
  memberId = "";
  owned: Tp[] = [];
  /** "topic/partition" → the epoch the partition was handed over at (for fenced commits). */
  readonly epochs = new Map<string, bigint>();
  generation = 0n;
  holdOn = false;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly client: Sentinel,
    readonly name: string,
  ) {}

  beat(): Promise<MemberAssignment> {
    const next = this.#queue.then(() => this.#beat());
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #beat(): Promise<MemberAssignment> {
    const res = await this.client.groupHeartbeat(
      {
        group: GROUP,
        memberId: this.memberId,
        topics: this.memberId === "" ? [TOPIC] : [],
        owned: this.owned,
        clientId: this.name,
      },
      { timeoutMs: 5_000 },
    );
    const assignment = res.assignment as MemberAssignment;
    this.memberId = assignment.memberId;
    this.generation = assignment.generation;
    const assigned = assignment.partitions.map((p) => ({ topic: p.topic, partition: p.partition }));
    for (const p of assignment.partitions) this.epochs.set(key(p), p.epoch);
    const kept = this.holdOn ? this.owned.filter((o) => !assigned.some((a) => key(a) === key(o))) : [];
    this.owned = [...assigned, ...kept];
    return assignment;
  }

  partitions(): number[] {
    return this.owned.map((p) => p.partition).sort();
  }
}

const key = (p: Tp) => `${p.topic}/${p.partition}`;
const sum = (values: number[]) => values.reduce((n, v) => n + v, 0);
/** `{label value → sample value}` of a result, keyed by the given labels joined with "/". */
const byLabels = (samples: PromSample[], ...labels: string[]) =>
  Object.fromEntries(samples.map((s) => [labels.map((l) => s.labels[l] ?? "").join("/"), s.value]));

describe("observability: consumer groups on a real Prometheus", { timeout: 150_000 }, () => {
  let cluster: TestCluster;
  let prom: TestPrometheus;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const members: RawMember[] = [];
  /** The next offset each partition's leader will assign (= its high watermark: one replica). */
  const produced = PRODUCED.map(() => 0);
  const committed = { [GROUP]: [...BILLING_COMMITTED], [AUDIT]: PRODUCED.map((n) => n - 1) };
  const lagOf = (group: keyof typeof committed) =>
    sum(produced.map((n, p) => n - (committed[group][p] ?? 0)));
  let leaders: string[] = [];

  const clientOf = (url: string): Sentinel =>
    createClient(SentinelService, createGrpcTransport({ baseUrl: url }));
  // As Grafana substitutes them with "All" selected: no cluster label here, and the jobs found.
  const vars = {
    cluster: ".*",
    namespace: NAMESPACE,
    job: `(${SENTINEL_JOB}|${BROKER_JOB})`,
    pod: ".*",
    __rate_interval: "30s",
  };
  /** The row's query on `metric`, its variables substituted as Grafana would. */
  const panelQuery = (metric: string) => {
    const found = rowQueries.find((q) => q.expr.includes(`${metric}{`));
    assert.ok(found, `no query of row ${ROW} uses ${metric}`);
    return substituteVariables(found.expr, vars);
  };
  const rule = async (name: string) => (await prom.rules()).find((r) => r.name === name);
  const logs = () =>
    [...cluster.sentinels.values(), ...cluster.brokers.values()]
      .map((p) => `--- ${p.id}\n${p.logTail()}`)
      .join("\n");
  /** Waits until `expr` gives exactly `expected` (keyed by `labels`); returns the samples. */
  const expectResult = (expr: string, labels: string[], expected: Record<string, number>, what: string) =>
    waitFor(
      async () => {
        const samples = await prom.query(expr);
        return JSON.stringify(sortKeys(byLabels(samples, ...labels))) === JSON.stringify(sortKeys(expected))
          ? samples
          : false;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${what}: ${expr} = ${JSON.stringify(expected)}` },
    ).catch(async (err: unknown) => {
      const last = byLabels(await prom.query(expr), ...labels);
      throw new Error(`${String(err)}\nlast result: ${JSON.stringify(last)}`);
    });

  const produce = async (partition: number, count: number) => {
    const leader = leaders[partition] as string;
    const first = produced[partition] as number;
    const res = await sendOnce(cluster.broker(leader).client, {
      topic: TOPIC,
      partition,
      acks: Acks.ALL,
      producerId: "observability-groups",
      records: Array.from({ length: count }, (_, i) => ({
        messageId: BigInt(partition * 1_000_000 + first + i + 1),
        payload: text(`invoice ${first + i}`),
      })),
    });
    assert.ok(
      res.acks.length === count && res.acks.every((a) => a.error === ProduceError.NONE),
      `produce to ${TOPIC}/${partition} on ${leader} acknowledged`,
    );
    produced[partition] = first + count;
  };
  /** Commits `offset` for `group`; billing commits as the partition's owner, with its epoch. */
  const commit = async (group: keyof typeof committed, partition: number, offset: number) => {
    const tp = { topic: TOPIC, partition };
    const owner = group === GROUP ? members.find((m) => m.owned.some((o) => key(o) === key(tp))) : undefined;
    if (group === GROUP) assert.ok(owner, `no member owns ${key(tp)}`);
    await cluster.broker(leaders[partition] as string).client.commitOffset({
      consumerGroup: group,
      topic: TOPIC,
      partition,
      offset: BigInt(offset),
      memberEpoch: owner?.epochs.get(key(tp)) ?? 0n,
    });
    committed[group][partition] = offset;
  };
  const converge = (loads: number[]) =>
    waitFor(
      async () => {
        for (const m of members) await m.beat();
        const now = members.map((m) => m.owned.length).sort();
        const owned = members.flatMap((m) => m.owned.map(key));
        return (
          JSON.stringify(now) === JSON.stringify([...loads].sort()) && new Set(owned).size === owned.length
        );
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `the group's loads to become ${loads.join("/")}` },
    );

  before(async () => {
    cluster = await startCluster({ sentinels: 2, brokers: 2 });
    const layout = await cluster.createTopic(TOPIC, { partitions: PRODUCED.length, replicas: 1 });
    leaders = layout.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.leader);
    // The lag of a group on a topic is a sum over the partition leaders: make sure there are two.
    assert.equal(new Set(leaders).size, 2, `${TOPIC}'s partitions are led by ${leaders.join(", ")}`);
    for (const [p, n] of PRODUCED.entries()) await produce(p, n);

    const target = (id: string, address: string) => ({ address, labels: { namespace: NAMESPACE, pod: id } });
    prom = await startPrometheus({
      jobs: [
        {
          job: SENTINEL_JOB,
          targets: [...cluster.sentinels.values()].map((s) => target(s.id, new URL(s.url).host)),
        },
        {
          job: BROKER_JOB,
          targets: [...cluster.brokers.keys()].map((id) => target(id, cluster.brokerAddress(id))),
        },
      ],
      ruleFiles: [rulesFile],
    });

    // One member through each sentinel (the follower forwards the join to the leader).
    const [s1, s2] = cluster.sentinelUrls as [string, string];
    members.push(new RawMember(clientOf(s1), "consumer-a"), new RawMember(clientOf(s2), "consumer-b"));
    await converge([2, 2]);
    // Paced by a timer, not a synchronisation: sessions (10 s) stay alive between the tests' steps.
    keepAlive = setInterval(() => {
      for (const m of members) void m.beat().catch(() => undefined);
    }, 1_000);
    for (const [p, offset] of BILLING_COMMITTED.entries()) await commit(GROUP, p, offset);
    for (const [p, n] of PRODUCED.entries()) await commit(AUDIT, p, n - 1);
  });

  after(async () => {
    if (keepAlive) clearInterval(keepAlive);
    await prom?.stop();
    await cluster?.stop();
  });

  it("the Consumer groups row shows members, generation, state, partitions moving and lag per group and topic", async () => {
    assert.equal(lagOf(GROUP), 82);
    await expectResult(
      panelQuery(LAG_METRIC),
      ["group", "topic"],
      {
        [`${GROUP}/${TOPIC}`]: lagOf(GROUP),
        [`${AUDIT}/${TOPIC}`]: lagOf(AUDIT),
      },
      "lag per group and topic",
    );
    // Both leaders report their share: the panel's sum is over brokers.
    await expectResult(
      `count by (group, topic) (${LAG_METRIC}{${NS}})`,
      ["group", "topic"],
      { [`${GROUP}/${TOPIC}`]: 2, [`${AUDIT}/${TOPIC}`]: 2 },
      "lag series from both brokers",
    );
    await expectResult(panelQuery("goulette_sentinel_group_members"), ["group"], { [GROUP]: 2 }, "members");
    await expectResult(
      panelQuery("goulette_sentinel_group_partitions_moving"),
      ["group"],
      { [GROUP]: 0 },
      "partitions moving",
    );
    await expectResult(
      panelQuery("goulette_sentinel_consumer_groups"),
      ["state"],
      { stable: 1, rebalancing: 0, empty: 0 },
      "groups by state",
    );
    const described = await clientOf(cluster.sentinelUrls[0] as string).describeGroup({ group: GROUP });
    assert.ok(described.generation > 0n);
    await expectResult(
      panelQuery("goulette_sentinel_group_generation"),
      ["group"],
      { [GROUP]: Number(described.generation) },
      "generation",
    );
    // Every sentinel exports the group (so the panels take max, not sum).
    await expectResult(
      `count by (group) (goulette_sentinel_group_members{${NS}})`,
      ["group"],
      { [GROUP]: 2 },
      "members series from both sentinels",
    );
    // The leader counted the joins and the release of the first hand-over.
    const reasons = await waitFor(
      async () => {
        const got = byLabels(
          await prom.query(panelQuery("goulette_sentinel_group_rebalances_total")),
          "reason",
        );
        return "join" in got && "release" in got ? got : false;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: "rebalances by reason (join, release)" },
    );
    assert.ok(Object.values(reasons).every(Number.isFinite), JSON.stringify(reasons));
    for (const q of rowQueries) {
      const samples = await prom.query(substituteVariables(q.expr, vars));
      assert.ok(
        samples.some((s) => Number.isFinite(s.value)),
        `${q.panel}/${q.refId}: no number`,
      );
      for (const [name, value] of [
        ["namespace", "elsewhere"],
        ["job", "another-job"],
        ["cluster", "another-cluster"],
      ] as const) {
        const elsewhere = substituteVariables(q.expr, { ...vars, [name]: value });
        assert.deepEqual(
          await prom.query(elsewhere),
          [],
          `${q.panel}/${q.refId} ignores the ${name} variable`,
        );
      }
    }
  });

  it("GouletteConsumerGroupRebalanceStuck: its expression names a group whose member holds on to a revoked partition", async () => {
    const stuck = "GouletteConsumerGroupRebalanceStuck";
    assert.equal((await rule(stuck))?.state, "inactive");
    const [before] = await prom.query(panelQuery("goulette_sentinel_group_generation"));
    const joinsBefore = await prom.query(
      `sum(goulette_sentinel_group_rebalances_total{${NS}, reason="join"})`,
    );
    assert.ok((joinsBefore[0]?.value ?? 0) >= 2, "Prometheus has seen the first two joins");
    for (const m of members) m.holdOn = true;
    const late = new RawMember(clientOf(cluster.sentinelUrls[1] as string), "consumer-c");
    members.push(late);
    const joined = await late.beat();
    assert.equal(joined.partitions.length, 0, "nothing is handed over before its owner released it");
    assert.equal(joined.pending.length, 1, "its share (4 partitions, 3 members) waits for a release");

    const pending = await waitFor(
      async () => {
        const r = await rule(stuck);
        return r?.state === "pending" ? r : false;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${stuck} to go pending\n${logs()}` },
    );
    assert.deepEqual(alertsOf(pending), [
      { namespace: NAMESPACE, job: SENTINEL_JOB, group: GROUP, value: 1 },
    ]);
    await expectResult(
      panelQuery("goulette_sentinel_group_partitions_moving"),
      ["group"],
      { [GROUP]: 1 },
      "moving",
    );
    await expectResult(
      panelQuery("goulette_sentinel_consumer_groups"),
      ["state"],
      { stable: 0, rebalancing: 1, empty: 0 },
      "groups by state while rebalancing",
    );
    await expectResult(panelQuery("goulette_sentinel_group_members"), ["group"], { [GROUP]: 3 }, "members");

    // The holder lets go: the partition reaches its new member and the alert clears.
    for (const m of members) m.holdOn = false;
    await converge([1, 1, 2]);
    assert.equal(late.partitions().length, 1, "the late member got its share");
    await expectResult(
      panelQuery("goulette_sentinel_group_partitions_moving"),
      ["group"],
      { [GROUP]: 0 },
      "moving",
    );
    await waitFor(async () => (await rule(stuck))?.state === "inactive", {
      timeoutMs: 10_000,
      intervalMs: 250,
      what: `${stuck} to clear`,
    });
    const generation = async () =>
      (await prom.query(panelQuery("goulette_sentinel_group_generation")))[0]?.value;
    await waitFor(async () => ((await generation()) ?? 0) > (before?.value ?? Infinity), {
      timeoutMs: 10_000,
      intervalMs: 250,
      what: `the generation to rise above ${before?.value}`,
    });
    // Within the panel's window: a join and the release that finished the hand-over.
    await waitFor(
      async () => {
        const rates = byLabels(
          await prom.query(panelQuery("goulette_sentinel_group_rebalances_total")),
          "reason",
        );
        return (rates.join ?? 0) > 0 && (rates.release ?? 0) > 0;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: "rebalances per minute: join and release above 0" },
    );
  });

  it("GouletteConsumerLagGrowing goes pending for the group that stopped committing, not for the one that keeps up", async () => {
    const growing = "GouletteConsumerLagGrowing";
    assert.equal((await rule(growing))?.state, "inactive");
    // 1200 more messages; audit commits after every batch (its lag stays under 200), billing never.
    for (let batch = 0; batch < 12; batch++) {
      const p = batch % PRODUCED.length;
      await produce(p, 100);
      await commit(AUDIT, p, (produced[p] as number) - 1);
    }
    assert.equal(lagOf(GROUP), 82 + 1200);
    const alert = await waitFor(
      async () => {
        const r = await rule(growing);
        const alerts = r?.state === "pending" ? alertsOf(r) : [];
        return alerts.length > 0 && alerts[0]?.value === lagOf(GROUP) ? alerts : false;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${growing} to go pending at ${lagOf(GROUP)}\n${logs()}` },
    );
    assert.deepEqual(alert, [
      { namespace: NAMESPACE, job: BROKER_JOB, group: GROUP, topic: TOPIC, value: lagOf(GROUP) },
    ]);
    await expectResult(
      panelQuery(LAG_METRIC),
      ["group", "topic"],
      {
        [`${GROUP}/${TOPIC}`]: lagOf(GROUP),
        [`${AUDIT}/${TOPIC}`]: lagOf(AUDIT),
      },
      "lag per group and topic after the burst",
    );
  });

  it("the autoscaling queries of docs/kubernetes.md return the group's lag", async () => {
    const docs = groupConsumerManifests();
    const trigger = docs.scaledObject.spec.triggers[0];
    const keda = await prom.query(trigger?.metadata.query ?? "");
    assert.deepEqual(
      keda.map((s) => s.value),
      [lagOf(GROUP)],
      `KEDA's query returns one number, the lag: ${trigger?.metadata.query}`,
    );
    // prometheus-adapter: the HPA's selector becomes <<.LabelMatchers>> (namespaced: false adds none).
    const external = docs.adapterRules[0];
    assert.ok(external, "no external rule");
    const metric = external.seriesQuery.match(/^\s*'?([a-zA-Z_:][\w:]*)/)?.[1];
    assert.equal(metric, LAG_METRIC);
    const hpaMetric = docs.hpa.spec?.metrics?.[0]?.external?.metric;
    assert.equal(hpaMetric?.name, metric, "the HPA asks for the metric the adapter exposes");
    const matchers = Object.entries(hpaMetric?.selector?.matchLabels ?? {})
      .map(([k, v]) => `${k}="${v}"`)
      .join(",");
    const adapterQuery = external.metricsQuery
      .replaceAll("<<.Series>>", metric as string)
      .replaceAll("<<.LabelMatchers>>", matchers);
    const adapted = await prom.query(adapterQuery);
    assert.deepEqual(
      adapted.map((s) => [s.labels.group, s.labels.topic, s.value]),
      [[GROUP, TOPIC, lagOf(GROUP)]],
      adapterQuery,
    );
    // The discovery query finds the group's series and leaves the "_other" ones out.
    const discovered = await prom.query(external.seriesQuery);
    assert.ok(discovered.some((s) => s.labels.group === GROUP));
    assert.ok(discovered.every((s) => s.labels.group !== "_other"));
  });
});

describe("docs/kubernetes.md: the group-consumer manifests", () => {
  it("parse, validate against the Kubernetes schemas and fit together", () => {
    const docs = groupConsumerManifests();
    for (const obj of [docs.deployment, docs.statefulSet]) {
      assert.doesNotThrow(() => obj.validate(), `${obj.kind} ${obj.metadata?.name}`);
      const env = obj.spec?.template.spec?.containers[0]?.env ?? [];
      const podName = env.find((e) => e.name === "POD_NAME");
      if (obj === docs.statefulSet) {
        assert.equal(
          podName?.valueFrom?.fieldRef?.fieldPath,
          "metadata.name",
          `${obj.kind}: POD_NAME (the instance id) from the pod name`,
        );
      } else {
        // Dynamic members: a Deployment's pod names change at every rollout, and a static member's
        // close() keeps its partitions for a restart that would never come.
        assert.equal(podName, undefined, `${obj.kind}: no POD_NAME, so no instance id`);
      }
      assert.ok(
        env.some((e) => e.name === "GOULETTE_SENTINELS"),
        `${obj.kind}: GOULETTE_SENTINELS`,
      );
      assert.ok(
        (obj.spec?.template.spec?.terminationGracePeriodSeconds ?? 0) > 0,
        `${obj.kind}: grace period`,
      );
    }
    assert.doesNotThrow(() => docs.hpa.validate(), "HorizontalPodAutoscaler");
    const target = docs.hpa.spec?.scaleTargetRef;
    assert.deepEqual([target?.kind, target?.name], ["Deployment", docs.deployment.metadata?.name]);
    assert.equal(docs.hpa.spec?.metrics?.[0]?.external?.target.type, "AverageValue");
    assert.ok(
      (docs.hpa.spec?.behavior?.scaleDown?.stabilizationWindowSeconds ?? 0) > 0,
      "HPA scale-down window",
    );
    // KEDA's ScaledObject is a CRD: kubernetes-models has no schema, so its shape is checked here.
    const so = docs.scaledObject;
    assert.equal(so.apiVersion, "keda.sh/v1alpha1");
    assert.equal(so.spec.scaleTargetRef.name, docs.deployment.metadata?.name);
    assert.equal(so.spec.maxReplicaCount, docs.hpa.spec?.maxReplicas, "both cap at the partition count");
    const trigger = so.spec.triggers[0];
    assert.equal(trigger?.type, "prometheus");
    for (const [k, v] of Object.entries(trigger?.metadata ?? {})) {
      assert.equal(typeof v, "string", `KEDA trigger metadata are strings: ${k} is ${typeof v}`);
    }
    assert.match(trigger?.metadata.threshold ?? "", /^\d+$/);
    assert.match(trigger?.metadata.query ?? "", new RegExp(`^sum\\(${LAG_METRIC}\\{`));
    const rule = docs.adapterRules[0];
    assert.equal(rule?.resources?.namespaced, false, "the adapter must not add the HPA's namespace");
  });
});

interface ScaledObject {
  apiVersion: string;
  kind: "ScaledObject";
  metadata: { name: string; namespace: string };
  spec: {
    scaleTargetRef: { name: string; kind?: string };
    maxReplicaCount?: number;
    triggers: { type: string; metadata: Record<string, string> }[];
  };
}

interface AdapterRule {
  seriesQuery: string;
  metricsQuery: string;
  resources?: { namespaced?: boolean };
}

/** The YAML of the group-consumer sections of docs/kubernetes.md, each object in its model. */
function groupConsumerManifests() {
  const start = kubernetesDoc.indexOf("\n## Run group consumers on Kubernetes");
  const end = kubernetesDoc.indexOf(
    "\n## ",
    kubernetesDoc.indexOf("\n## Scale group consumers on consumer lag") + 1,
  );
  assert.ok(start >= 0 && end > start, "docs/kubernetes.md has the group-consumer sections");
  const blocks = [...kubernetesDoc.slice(start, end).matchAll(/```yaml\n([\s\S]*?)```/g)].map(
    (m) => m[1] as string,
  );
  const objects: unknown[] = [];
  for (const block of blocks) {
    for (const doc of parseAllDocuments(block)) {
      assert.deepEqual(doc.errors, [], `YAML error in docs/kubernetes.md:\n${block}`);
      objects.push(doc.toJS());
    }
  }
  const ofKind = (kind: string) => {
    const found = objects.filter((o) => (o as { kind?: string }).kind === kind);
    assert.equal(found.length, 1, `one ${kind} in the group-consumer sections`);
    return found[0] as never;
  };
  const adapter = objects.find((o) => (o as { rules?: unknown }).rules !== undefined) as
    { rules: { external: AdapterRule[] } } | undefined;
  assert.ok(adapter?.rules.external, "no prometheus-adapter values with rules.external");
  return {
    deployment: new Deployment(ofKind("Deployment")),
    statefulSet: new StatefulSet(ofKind("StatefulSet")),
    hpa: new HorizontalPodAutoscaler(ofKind("HorizontalPodAutoscaler")),
    scaledObject: ofKind("ScaledObject") as ScaledObject,
    adapterRules: adapter.rules.external,
  };
}

/** The alerts of a rule as comparable objects: their identifying labels and value. */
function alertsOf(r: PromRule): Record<string, string | number>[] {
  return (r.alerts ?? []).map((a) => {
    const { alertname: _name, severity: _severity, ...labels } = a.labels;
    return { ...labels, value: Number(a.value) };
  });
}

function sortKeys(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
