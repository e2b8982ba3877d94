// The Helm chart: `helm lint` and `helm template` for each deployment mode, every
// rendered object checked against the Kubernetes API schemas (kubernetes-models), and the wiring that
// a schema cannot see: DNS names, etcd's --initial-cluster, selectors, security contexts, Secrets.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { StatefulSet } from "kubernetes-models/apps/v1";
import type { IStatefulSet } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import type { IRole, IRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import type { IConfigMap, IContainer, IPodSpec, ISecret, IService } from "kubernetes-models/v1";
import { parse as parseYaml } from "yaml";
import { advertisedListeners } from "../../src/broker/advertised-listeners.js";
import { corsFromOptions, corsOptions } from "../../src/config/cors-options.js";
import { envName, loadOptions } from "../../src/config/options.js";
import { sentinelOptionSchema } from "../../src/config/sentinel-options.js";
import { listenerHostsLookup } from "../../src/sentinel/listener-hosts.js";
import {
  DEFAULT_NAMESPACE as NS,
  DEFAULT_RELEASE as RELEASE,
  chartDir,
  findHelm,
  helmLint,
  helmTemplate,
  helmTemplateRaw,
  repoRoot,
  run,
  type KubeObject,
} from "../helpers/helm.js";

const DOMAIN = "cluster.local";
const TLS_SECRET = "goulette-rpc-tls";
const EXTERNAL_ENDPOINTS = ["https://etcd-a.infra.svc:2379", "https://etcd-b.infra.svc:2379"];
const REQUIRED_ALERTS = [
  "GouletteNoSentinelLeader",
  "GouletteMultipleSentinelLeaders",
  "GouletteReplayLagHigh",
  "GouletteBrokerDown",
  "GouletteUnderReplicatedPartitions",
  "GouletteConsumerLagGrowing",
  "GouletteConsumerGroupRebalanceStuck",
  "GouletteEtcdUnreachable",
  "GouletteUnderMinInsyncPartitions",
  "GouletteProduceNotEnoughReplicas",
  "GouletteBrokerDiskFillingUp",
  "GouletteBrokerDiskAlmostFull",
  "GouletteBrokerFsyncBehind",
  "GoulettePodNotReady",
];
/** The rules file's placeholder selectors, and what the chart puts there for the release by default. */
const RELEASE_SELECTORS: [string, string][] = [
  ['job=~".*goulette.*-sentinel-headless"', `namespace="${NS}", job="${RELEASE}-goulette-sentinel-headless"`],
  ['job=~".*goulette.*-broker-headless"', `namespace="${NS}", job="${RELEASE}-goulette-broker-headless"`],
  [
    'pod=~".*goulette.*-(sentinel|broker|etcd)-[0-9]+"',
    `namespace="${NS}", pod=~"${RELEASE}-goulette-(sentinel|broker|etcd)-[0-9]+"`,
  ],
];

/** Per-broker LoadBalancers with pinned IPs, advertised by DNS name; sentinels reached by name too. */
const externalLoadBalancer = {
  enabled: true,
  advertised: { hosts: ["b0.goulette.example.com", "b1.goulette.example.com", "b2.goulette.example.com"] },
  service: {
    loadBalancerIPs: ["203.0.113.10", "203.0.113.11", "203.0.113.12"],
    loadBalancerSourceRanges: ["198.51.100.0/24"],
  },
  sentinel: { loadBalancerIP: "203.0.113.20", hosts: ["goulette.example.com"] },
};

const monitoringOn = {
  serviceMonitor: { enabled: true },
  prometheusRule: { enabled: true },
  grafanaDashboard: { enabled: true },
};

/** The value sets of the issue, plus one with every option on at once. */
const VALUE_SETS: Record<string, Record<string, unknown>> = {
  defaults: {},
  "external etcd": {
    etcd: {
      external: {
        endpoints: EXTERNAL_ENDPOINTS,
        username: "goulette",
        password: "etcd-secret",
        tls: { enabled: true, existingSecret: "etcd-client-tls" },
      },
    },
  },
  "embedded etcd": { sentinel: { embeddedEtcd: true } },
  "TLS on": { tls: { enabled: true, existingSecret: TLS_SECRET } },
  "monitoring on": { metrics: monitoringOn },
  "auth off": { auth: { enabled: false } },
  "etcd TLS": { etcd: { tls: { enabled: true, existingSecret: "etcd-members-tls" } } },
  "external access (LoadBalancer)": { externalAccess: externalLoadBalancer },
  "external access (NodePort, hosts and ports)": {
    externalAccess: {
      enabled: true,
      listener: "outside",
      service: { type: "NodePort", nodePorts: [31001, 31002, 31003], externalTrafficPolicy: "Local" },
      advertised: { hosts: ["192.0.2.1", "192.0.2.2", "192.0.2.3"] },
    },
  },
  "external access (NodePort, domain and base port)": {
    broker: { replicas: 4 },
    externalAccess: {
      enabled: true,
      service: { type: "NodePort" },
      advertised: { domain: "nodes.example.com", basePort: 30100 },
      sentinel: { nodePort: 30090, hosts: ["nodes.example.com:30090"] },
    },
  },
  "everything on": {
    sentinel: { embeddedEtcd: true, replicas: 5 },
    broker: { replicas: 4 },
    tls: { enabled: true, existingSecret: TLS_SECRET },
    auth: { enabled: true },
    metrics: monitoringOn,
    externalAccess: {
      ...externalLoadBalancer,
      advertised: { hosts: [...externalLoadBalancer.advertised.hosts, "b3.goulette.example.com"] },
      service: {},
    },
  },
};

type Validating = new (data: never) => { validate(): void };

/** Built-in kinds the chart may render, by "apiVersion/kind". */
const MODELS: Record<string, Validating> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/StatefulSet": StatefulSet,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};

/** CRDs: kubernetes-models has no schema for them, so their shape is checked here. */
const CRD_CHECKS: Record<string, (obj: KubeObject) => void> = {
  "monitoring.coreos.com/v1/ServiceMonitor": checkServiceMonitorShape,
  "monitoring.coreos.com/v1/PrometheusRule": checkPrometheusRuleShape,
};

const rendered = new Map<string, KubeObject[]>();

function objectsOf(set: string): KubeObject[] {
  const objects = rendered.get(set);
  assert.ok(objects, `value set '${set}' was not rendered`);
  return objects;
}

describe("charts/goulette", () => {
  before(async () => {
    assert.ok(findHelm(), "helm not found: run `bash scripts/setup.sh` (it extracts .tools/bin/helm)");
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      rendered.set(name, await helmTemplate({ values }));
    }
  });

  for (const [name, values] of Object.entries(VALUE_SETS)) {
    describe(`values: ${name}`, () => {
      it("passes helm lint --strict", async () => {
        const result = await helmLint({ values });
        assert.equal(result.code, 0, `helm lint failed:\n${result.stdout}\n${result.stderr}`);
      });

      it("renders only objects that validate against the Kubernetes schemas", () => {
        const objects = objectsOf(name);
        assert.ok(objects.length > 10, `only ${objects.length} objects rendered`);
        for (const obj of objects) {
          const key = `${obj.apiVersion}/${obj.kind}`;
          const where = `${key} ${obj.metadata.name}`;
          const Model = MODELS[key];
          const crdCheck = CRD_CHECKS[key];
          assert.ok(Model ?? crdCheck, `${where}: unexpected kind (add it to the checks)`);
          if (Model) assert.doesNotThrow(() => new Model(obj as never).validate(), `${where} is invalid`);
          if (crdCheck) crdCheck(obj);
          assert.match(obj.metadata.name, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, `${where}: bad name`);
          assert.equal(obj.metadata.namespace, NS, `${where}: namespace`);
          const labels = obj.metadata.labels ?? {};
          for (const label of [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
          ]) {
            assert.ok(labels[label], `${where}: label ${label} missing`);
          }
          assert.equal(labels["app.kubernetes.io/instance"], RELEASE);
        }
        const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
        assert.equal(new Set(names).size, names.length, `duplicate objects: ${names.join(", ")}`);
      });

      it("wires DNS names consistently with the rendered Services", () => {
        checkTopology(objectsOf(name), values);
      });

      it("runs every container non-root, read-only, without capabilities, with an emptyDir /tmp", () => {
        for (const sts of statefulSets(objectsOf(name))) checkPodSecurity(sts);
        // The credentials hook Job has the same pod template shape.
        for (const job of objectsOf(name).filter((o) => o.kind === "Job")) {
          checkPodSecurity(job as KubeObject & IStatefulSet);
        }
      });

      it("has probes, PodDisruptionBudgets, anti-affinity and zone spread for every StatefulSet", () => {
        checkAvailability(objectsOf(name), values);
      });

      it("grants sentinels (only) read access to pods through the ServiceAccount", () => {
        checkRbac(objectsOf(name));
      });

      it("gives every broker pod an external Service and address when externalAccess is on, none otherwise", () => {
        checkExternalAccess(objectsOf(name), values);
      });
    });
  }

  describe("etcd modes", () => {
    it("defaults: a 3-member etcd StatefulSet that sentinels list member by member", () => {
      const objects = objectsOf("defaults");
      const etcd = statefulSetOf(objects, "etcd");
      assert.ok(etcd, "no etcd StatefulSet by default");
      assert.equal(etcd.spec?.replicas, 3);
      assert.equal(etcd.spec?.podManagementPolicy, "Parallel");
      assert.match(containerOf(etcd, "etcd").image ?? "", /^quay\.io\/coreos\/etcd:v3\./);
      assert.deepEqual(
        etcd.spec?.volumeClaimTemplates?.map((t) => t.metadata?.name),
        ["etcd-data"],
      );
      const env = envOf(statefulSetOf(objects, "sentinel"), "sentinel", 0);
      assert.equal(env.get("GOULETTE_ETCD_ENDPOINTS")?.split(",").length, 3);
      // The credentials Secret is made in the cluster by the hook Job, not rendered.
      assert.equal(objects.filter((o) => o.kind === "Secret").length, 0, "a Secret is rendered");
    });

    it("the etcd image is configurable (registry.k8s.io/etcd)", async () => {
      const objects = await helmTemplate({
        values: { etcd: { image: { registry: "registry.k8s.io", repository: "etcd", tag: "3.5.16-0" } } },
      });
      assert.equal(
        containerOf(statefulSetOf(objects, "etcd"), "etcd").image,
        "registry.k8s.io/etcd:3.5.16-0",
      );
    });

    it("external etcd: no etcd objects, the endpoints, TLS files and password reach the sentinels", () => {
      const objects = objectsOf("external etcd");
      const etcdObjects = objects.filter(
        (o) => o.metadata.labels?.["app.kubernetes.io/component"] === "etcd",
      );
      assert.deepEqual(
        etcdObjects.map((o) => `${o.kind}/${o.metadata.name}`),
        [],
        "external etcd renders etcd objects",
      );
      const sentinel = statefulSetOf(objects, "sentinel");
      const env = envOf(sentinel, "sentinel", 0);
      assert.equal(env.get("GOULETTE_ETCD_ENDPOINTS"), EXTERNAL_ENDPOINTS.join(","));
      assert.equal(env.get("GOULETTE_ETCD_USERNAME"), "goulette");
      for (const [variable, file] of [
        ["GOULETTE_ETCD_TLS_CA", "ca.crt"],
        ["GOULETTE_ETCD_TLS_CERT", "tls.crt"],
        ["GOULETTE_ETCD_TLS_KEY", "tls.key"],
      ] as const) {
        assertFileFromSecret(sentinel, "sentinel", env.get(variable), "etcd-client-tls", file, variable);
      }
      const password = secretRefOf(sentinel, "sentinel", "GOULETTE_ETCD_PASSWORD");
      assert.equal(secretValue(objects, password.name, password.key), "etcd-secret");
    });

    it("external etcd with an existing password Secret renders no Secret", async () => {
      const objects = await helmTemplate({
        values: {
          etcd: { external: { endpoints: EXTERNAL_ENDPOINTS, username: "u", existingSecret: "etcd-pass" } },
        },
      });
      assert.equal(objects.filter((o) => o.kind === "Secret").length, 0);
      const ref = secretRefOf(statefulSetOf(objects, "sentinel"), "sentinel", "GOULETTE_ETCD_PASSWORD");
      assert.deepEqual(ref, { name: "etcd-pass", key: "etcd-password" });
    });

    it("embedded etcd: an etcd sidecar per sentinel on localhost, no etcd StatefulSet", () => {
      const objects = objectsOf("embedded etcd");
      assert.equal(statefulSetOf(objects, "etcd"), undefined, "embedded mode renders an etcd StatefulSet");
      const sentinel = statefulSetOf(objects, "sentinel");
      const sidecar = containerOf(sentinel, "etcd");
      assert.equal(sentinel.spec?.podManagementPolicy, "Parallel", "etcd members must start together");
      assert.equal(
        sentinel.spec?.template.metadata?.annotations?.["kubectl.kubernetes.io/default-container"],
        "sentinel",
      );
      assert.match(sidecar.image ?? "", /etcd/);
      const env = envOf(sentinel, "sentinel", 0);
      assert.equal(env.get("GOULETTE_ETCD_ENDPOINTS"), argsOf(sentinel, "etcd", 0).get("listen-client-urls"));
      // The sidecar is the etcd: the sentinel must not try to start one itself (no etcd in its image).
      const sentinelContainer = containerOf(sentinel, "sentinel");
      assert.ok(!env.has("GOULETTE_ENABLE_EMBEDDED_ETCD"));
      assert.ok(!(sentinelContainer.args ?? []).some((a) => a.includes("enable-embedded-etcd")));
      assert.ok(
        sentinel.spec?.volumeClaimTemplates?.some((t) => t.metadata?.name === "etcd-data"),
        "the sidecar's data is not persistent",
      );
    });

    it("embedded etcd without persistence keeps the data in an emptyDir", async () => {
      const objects = await helmTemplate({
        values: { sentinel: { embeddedEtcd: true, replicas: 1 }, etcd: { persistence: { enabled: false } } },
      });
      const sentinel = statefulSetOf(objects, "sentinel");
      assert.equal(sentinel.spec?.volumeClaimTemplates, undefined);
      const volume = podSpecOf(sentinel).volumes?.find((v) => v.name === "etcd-data");
      assert.ok(volume?.emptyDir, "etcd-data is not an emptyDir");
    });

    it("embedded and external etcd together are refused", async () => {
      const result = await helmTemplateRaw({
        values: { sentinel: { embeddedEtcd: true }, etcd: { external: { endpoints: EXTERNAL_ENDPOINTS } } },
      });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /exclusive/);
    });
  });

  describe("TLS and auth", () => {
    it("TLS on: the certificate Secret is mounted, the flags point into it, URLs and probes use https", () => {
      const objects = objectsOf("TLS on");
      for (const component of ["sentinel", "broker"] as const) {
        const sts = statefulSetOf(objects, component);
        const env = envOf(sts, component, 0);
        assertFileFromSecret(sts, component, env.get("GOULETTE_TLS_CERT"), TLS_SECRET, "tls.crt", "cert");
        assertFileFromSecret(sts, component, env.get("GOULETTE_TLS_KEY"), TLS_SECRET, "tls.key", "key");
        // Goulette's own clients (forwarding, broker dials) must trust the CA; server-side it would
        // demand client certificates (--tls-ca), which the kubelet's probes cannot present.
        assertFileFromSecret(sts, component, env.get("NODE_EXTRA_CA_CERTS"), TLS_SECRET, "ca.crt", "CA");
        assert.ok(!env.has("GOULETTE_TLS_CA"), "--tls-ca (mutual TLS) must be opt-in");
        const c = containerOf(sts, component);
        assert.equal(c.readinessProbe?.httpGet?.scheme, "HTTPS");
        assert.equal(c.livenessProbe?.httpGet?.scheme, "HTTPS");
      }
      assert.match(
        envOf(statefulSetOf(objects, "sentinel"), "sentinel", 0).get("GOULETTE_ADVERTISE_URL") ?? "",
        /^https:/,
      );
      assert.match(
        envOf(statefulSetOf(objects, "broker"), "broker", 0).get("GOULETTE_SENTINELS") ?? "",
        /^https:/,
      );
    });

    it("mutual TLS: --tls-ca set, TCP probes, Prometheus presents the certificate", async () => {
      const objects = await helmTemplate({
        values: {
          tls: { enabled: true, existingSecret: TLS_SECRET, mutual: true },
          metrics: { serviceMonitor: { enabled: true } },
        },
      });
      for (const component of ["sentinel", "broker"] as const) {
        const sts = statefulSetOf(objects, component);
        const env = envOf(sts, component, 0);
        assertFileFromSecret(sts, component, env.get("GOULETTE_TLS_CA"), TLS_SECRET, "ca.crt", "CA");
        const c = containerOf(sts, component);
        for (const probe of [c.readinessProbe, c.livenessProbe]) {
          assert.equal(probe?.httpGet, undefined, "the kubelet cannot present a client certificate");
          assert.equal(probe?.tcpSocket?.port, "rpc");
        }
      }
      for (const sm of objects.filter((o) => o.kind === "ServiceMonitor")) {
        const ep = (sm.spec as { endpoints: { tlsConfig?: { cert?: { secret?: { name?: string } } } }[] })
          .endpoints[0];
        assert.equal(ep?.tlsConfig?.cert?.secret?.name, TLS_SECRET);
      }
    });

    it("TLS off: no TLS flags and plain http", () => {
      const env = envOf(statefulSetOf(objectsOf("defaults"), "sentinel"), "sentinel", 0);
      assert.ok(!env.has("GOULETTE_TLS_CERT"));
      assert.match(env.get("GOULETTE_ADVERTISE_URL") ?? "", /^http:/);
    });

    it("TLS on without a Secret is refused with a message", async () => {
      const result = await helmTemplateRaw({ values: { tls: { enabled: true } } });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /tls\.existingSecret/);
    });
  });

  describe("monitoring", () => {
    it("is off by default", () => {
      const kinds = objectsOf("defaults").map((o) => o.kind);
      assert.ok(!kinds.includes("ServiceMonitor") && !kinds.includes("PrometheusRule"));
      assert.ok(!objectsOf("defaults").some((o) => o.metadata.labels?.grafana_dashboard === "1"));
    });

    it("ServiceMonitors select the headless Service of their component, on a port it has", () => {
      const objects = objectsOf("monitoring on");
      const monitors = objects.filter((o) => o.kind === "ServiceMonitor");
      assert.equal(monitors.length, 2);
      const services = objects.filter((o): o is KubeObject & IService => o.kind === "Service");
      const jobs: string[] = [];
      for (const sm of monitors) {
        const spec = sm.spec as {
          selector: { matchLabels: Record<string, string> };
          endpoints: { port: string; scheme?: string }[];
        };
        const selected = services.filter((s) => selects(spec.selector.matchLabels, s.metadata.labels));
        assert.equal(
          selected.length,
          1,
          `${sm.metadata.name} selects ${selected.length} Services (double scrape?)`,
        );
        const svc = selected[0] as KubeObject & IService;
        assert.equal(svc.spec?.clusterIP, "None", `${sm.metadata.name} should scrape the headless Service`);
        for (const ep of spec.endpoints) {
          assert.ok(
            svc.spec?.ports?.some((p) => p.name === ep.port),
            `${svc.metadata.name} has no port ${ep.port}`,
          );
          assert.equal(ep.scheme, "http");
        }
        jobs.push(svc.metadata.name); // the Prometheus Operator's default job label
      }
      // The alerts select exactly the jobs these ServiceMonitors produce, in the release's namespace.
      const rule = objects.find((o) => o.kind === "PrometheusRule");
      assert.ok(rule, "no PrometheusRule");
      const selected = alertRules(rule).flatMap((r) =>
        [...String(r.expr).matchAll(/namespace="([^"]*)", job="([^"]*)"/g)].map((m) => `${m[1]}/${m[2]}`),
      );
      assert.deepEqual([...new Set(selected)].sort(), jobs.map((j) => `${NS}/${j}`).sort());
    });

    it("with TLS, ServiceMonitors scrape over https with the CA from the TLS Secret", () => {
      const monitors = objectsOf("everything on").filter((o) => o.kind === "ServiceMonitor");
      assert.equal(monitors.length, 2);
      for (const sm of monitors) {
        const ep = (
          sm.spec as { endpoints: { scheme?: string; tlsConfig?: { ca?: { secret?: { name?: string } } } }[] }
        ).endpoints[0];
        assert.equal(ep?.scheme, "https");
        assert.equal(ep?.tlsConfig?.ca?.secret?.name, TLS_SECRET);
      }
    });

    it("the PrometheusRule is the rules file with the release's selectors, every required alert annotated", () => {
      const rule = objectsOf("monitoring on").find((o) => o.kind === "PrometheusRule");
      assert.ok(rule, "no PrometheusRule");
      const file = parseYaml(readFileSync(path.join(chartDir, "rules", "goulette-alerts.yaml"), "utf8")) as {
        groups: { rules: { expr: string }[] }[];
      };
      // The template and the file agree: nothing differs but the selectors it replaces.
      for (const r of file.groups.flatMap((g) => g.rules)) {
        for (const [placeholder, selector] of RELEASE_SELECTORS) {
          r.expr = r.expr.replaceAll(placeholder, selector);
        }
      }
      assert.deepEqual((rule.spec as { groups: unknown }).groups, file.groups);
      const rules = alertRules(rule);
      assert.deepEqual(rules.map((r) => r.alert).sort(), [...REQUIRED_ALERTS].sort());
      for (const r of rules) {
        assert.ok(r.annotations?.summary, `${r.alert}: no summary`);
        assert.ok(r.annotations?.description, `${r.alert}: no description`);
        assert.equal(
          r.annotations?.runbook_url,
          `https://github.com/goulette/goulette/blob/main/docs/operations.md#${r.alert.toLowerCase()}`,
        );
        assert.ok(r.labels?.severity, `${r.alert}: no severity`);
      }
    });

    it("the runbook base URL can be replaced", async () => {
      const base = "https://wiki.example.com/goulette/operations";
      const objects = await helmTemplate({
        values: { metrics: { prometheusRule: { enabled: true, runbookBaseUrl: base } } },
      });
      const rule = objects.find((o) => o.kind === "PrometheusRule");
      assert.ok(rule);
      for (const r of alertRules(rule)) {
        assert.equal(r.annotations?.runbook_url, `${base}#${r.alert.toLowerCase()}`);
      }
    });

    it("the Grafana dashboard ConfigMap carries dashboards/goulette.json", () => {
      const cm = objectsOf("monitoring on").find(
        (o): o is KubeObject & IConfigMap =>
          o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1",
      );
      assert.ok(cm, 'no ConfigMap labelled grafana_dashboard: "1"');
      const file = JSON.parse(
        readFileSync(path.join(chartDir, "dashboards", "goulette.json"), "utf8"),
      ) as unknown;
      const embedded = cm.data?.["goulette.json"];
      assert.ok(embedded);
      assert.deepEqual(JSON.parse(embedded), file);
    });
  });

  describe("external access", () => {
    it("refuses values that leave a broker without an external address, naming the value to set", async () => {
      for (const [externalAccess, pattern] of [
        [
          { enabled: true },
          /externalAccess\.advertised\.hosts \(or externalAccess\.service\.loadBalancerIPs\) lists 0, broker\.replicas is 3/,
        ],
        [{ enabled: true, advertised: { hosts: ["a", "b"] } }, /lists 2, broker\.replicas is 3/],
        [
          { enabled: true, service: { type: "NodePort" }, advertised: { basePort: 30100 } },
          /advertised\.hosts .* or externalAccess\.advertised\.domain/,
        ],
        [
          { enabled: true, service: { type: "NodePort" }, advertised: { domain: "n.example.com" } },
          /service\.nodePorts .* or externalAccess\.advertised\.basePort/,
        ],
        [
          {
            enabled: true,
            service: { type: "NodePort", nodePorts: [31000] },
            advertised: { domain: "n.example.com" },
          },
          /nodePorts lists 1 ports, broker\.replicas is 3/,
        ],
      ] as const) {
        const result = await helmTemplateRaw({ values: { externalAccess } });
        assert.notEqual(result.code, 0, `${JSON.stringify(externalAccess)} was accepted`);
        assert.match(result.stderr, pattern);
      }
    });

    it("the schema refuses a ClusterIP type, the name 'internal' and malformed listener names or hosts", async () => {
      for (const set of [
        "externalAccess.service.type=ClusterIP",
        "externalAccess.listener=internal",
        "externalAccess.listener=EXTERNAL",
        "externalAccess.advertised.hosts[0]=host:9094",
        "externalAccess.sentinel.hosts[0]=http://goulette.example.com",
      ]) {
        const result = await helmTemplateRaw({ set: [set] });
        assert.notEqual(result.code, 0, `--set ${set} was accepted`);
        assert.match(result.stderr, /schema/, `--set ${set}: ${result.stderr}`);
      }
    });

    it("NOTES say how to connect from outside, with the listener", async () => {
      const result = await run(findHelm() as string, [
        "install",
        "gt",
        chartDir,
        "--dry-run=client",
        "--namespace",
        NS,
        "--set",
        "externalAccess.enabled=true",
        "--set",
        "externalAccess.advertised.hosts={a.example.com,b.example.com,c.example.com}",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        /a\.example\.com:9094, b\.example\.com:9094, c\.example\.com:9094 on listener "external"/,
      );
      assert.match(
        result.stdout,
        /goulette produce --sentinels http:\/\/<EXTERNAL-IP>:9090 --listener external/,
      );
      assert.match(
        result.stdout,
        /externalAccess\.enabled=true with auth\.enabled=true and tls\.enabled=false/,
      );
      assert.match(result.stdout, /open http:\/\/127\.0\.0\.1:9090\/ui\//, "the web console's URL");
    });
  });

  describe("options", () => {
    it("every GOULETTE_* variable the chart sets on sentinels is a `goulette sentinel` option", () => {
      const known = new Set(Object.keys(sentinelOptionSchema).map(envName));
      for (const set of Object.keys(VALUE_SETS)) {
        for (const variable of chartVariables(statefulSetOf(objectsOf(set), "sentinel"), "sentinel")) {
          assert.ok(known.has(variable), `${set}: ${variable} is not an option of goulette sentinel`);
        }
      }
    });

    it("every GOULETTE_* variable the chart sets on brokers is a `goulette broker` option", async (t) => {
      const schema = await brokerOptionSchema();
      if (!schema) {
        t.skip("src/config/broker-options.ts (an export named *OptionSchema) does not exist yet");
        return;
      }
      const known = new Set(Object.keys(schema).map(envName));
      for (const set of Object.keys(VALUE_SETS)) {
        for (const variable of chartVariables(statefulSetOf(objectsOf(set), "broker"), "broker")) {
          assert.ok(known.has(variable), `${set}: ${variable} is not an option of goulette broker`);
        }
      }
    });
  });

  describe("values", () => {
    it("the schema rejects bad values", async () => {
      for (const [set, pattern] of [
        ["sentinel.replicas=abc", /replicas/],
        ["sentinel.replicas=0", /replicas/],
        ["sentinel.replica=3", /replica/],
        ["broker.fsync=sometimes", /fsync/],
        ["etcd.external.endpoints[0]=etcd:2379", /endpoints/],
        ["sentinel.podAntiAffinityPreset=maybe", /podAntiAffinityPreset/],
        ["broker.rpcLimits.maxConnections=0", /maxConnections/],
        ["sentinel.rpcLimits.idleTimeout=1.5", /idleTimeout/],
        ["sentinel.rpcLimits.maxStreams=5", /maxStreams/],
      ] as const) {
        const result = await helmTemplateRaw({ set: [set] });
        assert.notEqual(result.code, 0, `--set ${set} was accepted`);
        assert.match(result.stderr, /schema/, `--set ${set}: ${result.stderr}`);
        assert.match(result.stderr, pattern);
      }
    });

    it("the schema accepts good values that differ from the defaults", async () => {
      const objects = await helmTemplate({
        set: [
          "sentinel.replicas=5",
          "broker.fsync=interval",
          "sentinel.pdb.minAvailable=50%",
          "image.tag=1.2",
        ],
      });
      assert.equal(statefulSetOf(objects, "sentinel").spec?.replicas, 5);
      assert.equal(envOf(statefulSetOf(objects, "broker"), "broker", 0).get("GOULETTE_FSYNC"), "interval");
    });

    it("values that contradict each other are all reported in one error, each naming the value", async () => {
      const result = await helmTemplateRaw({
        values: {
          tls: { enabled: true },
          broker: { replicas: 3, minInsyncReplicas: 4 },
          sentinel: { embeddedEtcd: true },
          etcd: { external: { endpoints: EXTERNAL_ENDPOINTS } },
        },
      });
      assert.notEqual(result.code, 0);
      assert.equal(result.stderr.match(/VALUES VALIDATION:/g)?.length, 1, result.stderr);
      const problems = result.stderr.split("\n").filter((line) => line.startsWith("  - "));
      assert.equal(problems.length, 3, result.stderr);
      assert.match(result.stderr, /sentinel\.embeddedEtcd=true and etcd\.external\.endpoints are exclusive/);
      assert.match(result.stderr, /tls\.enabled=true needs tls\.existingSecret/);
      assert.match(result.stderr, /broker\.minInsyncReplicas \(4\) exceeds broker\.replicas \(3\)/);
    });

    it("acks=all needs two in-sync replicas by default; lowering it is warned about", async () => {
      const broker = envOf(statefulSetOf(objectsOf("defaults"), "broker"), "broker", 0);
      assert.equal(broker.get("GOULETTE_MIN_INSYNC_REPLICAS"), "2");
      const notes = async (...set: string[]) => {
        const args = ["install", "gt", chartDir, "--dry-run=client", "--namespace", NS];
        const result = await run(findHelm() as string, [...args, ...set.flatMap((v) => ["--set", v])]);
        assert.equal(result.code, 0, result.stderr);
        return result.stdout;
      };
      const warning =
        /broker\.minInsyncReplicas=1: a leader whose followers fell out of sync acknowledges acks=all alone/;
      assert.doesNotMatch(await notes(), warning);
      assert.match(await notes("broker.minInsyncReplicas=1"), warning);
      assert.doesNotMatch(
        await notes("broker.minInsyncReplicas=1", "broker.replicas=1"),
        warning,
        "one broker: 1 is the only choice",
      );
    });

    it("rpcLimits become the --rpc-* options of each component, defaults unchanged", async () => {
      const base = objectsOf("defaults");
      for (const component of ["sentinel", "broker"]) {
        const env = envOf(statefulSetOf(base, component), component, 0);
        assert.equal(env.get("GOULETTE_RPC_MAX_CONNECTIONS"), "8192");
        assert.equal(env.get("GOULETTE_RPC_MAX_REQUEST_BYTES"), "0", "0: the component's own default");
        assert.equal(env.get("GOULETTE_RPC_IDLE_TIMEOUT"), "300000");
      }
      const objects = await helmTemplate({
        set: ["broker.rpcLimits.maxConcurrentStreams=64", "broker.rpcLimits.requestTimeout=1200000"],
      });
      const broker = envOf(statefulSetOf(objects, "broker"), "broker", 0);
      assert.equal(broker.get("GOULETTE_RPC_MAX_CONCURRENT_STREAMS"), "64");
      assert.equal(broker.get("GOULETTE_RPC_REQUEST_TIMEOUT"), "1200000", "no 1.2e+06");
      const sentinel = envOf(statefulSetOf(objects, "sentinel"), "sentinel", 0);
      assert.equal(sentinel.get("GOULETTE_RPC_MAX_CONCURRENT_STREAMS"), "1000");
    });

    it("cors becomes GOULETTE_CORS_* of each component, as the processes read them; none by default", async () => {
      const corsVariables = Object.keys(corsOptions).map(envName);
      const sentinelOptions = new Set(Object.keys(sentinelOptionSchema).map(envName));
      const brokerOptions = new Set(Object.keys((await brokerOptionSchema()) ?? {}).map(envName));
      for (const variable of corsVariables) {
        assert.ok(
          sentinelOptions.has(variable) && brokerOptions.has(variable),
          `${variable} is not an option`,
        );
      }
      const base = objectsOf("defaults");
      for (const component of ["sentinel", "broker"]) {
        const env = envOf(statefulSetOf(base, component), component, 0);
        assert.deepEqual(
          corsVariables.filter((v) => env.has(v)),
          [],
          `${component}: CORS is off by default, pods unchanged`,
        );
      }
      const objects = await helmTemplate({
        values: {
          sentinel: { cors: { allowedOrigins: ["https://app.example.com", "http://localhost:8080"] } },
          broker: { cors: { allowedOrigins: ["https://app.example.com"], maxAge: 60 } },
        },
      });
      /** What the component's process makes of its GOULETTE_CORS_* variables. */
      const corsOf = (component: string) => {
        const env = envOf(statefulSetOf(objects, component), component, 0);
        const only = Object.fromEntries(corsVariables.flatMap((v) => (env.has(v) ? [[v, env.get(v)]] : [])));
        return corsFromOptions(loadOptions(corsOptions, { argv: [], env: only }).values);
      };
      assert.deepEqual(corsOf("sentinel"), {
        allowedOrigins: ["https://app.example.com", "http://localhost:8080"],
        maxAgeSeconds: 600,
      });
      assert.deepEqual(corsOf("broker"), { allowedOrigins: ["https://app.example.com"], maxAgeSeconds: 60 });

      for (const [set, pattern] of [
        ["sentinel.cors.allowedOrigins[0]=app.example.com", /allowedOrigins/],
        ["broker.cors.allowedOrigins[0]=https://app.example.com/ui", /allowedOrigins/],
        ["broker.cors.maxAge=-1", /maxAge/],
        ["sentinel.cors.origins[0]=https://app.example.com", /origins/],
      ] as const) {
        const result = await helmTemplateRaw({ set: [set] });
        assert.notEqual(result.code, 0, `--set ${set} was accepted`);
        assert.match(result.stderr, /schema/, `--set ${set}: ${result.stderr}`);
        assert.match(result.stderr, pattern);
      }
    });

    it("a config change rolls only the pods it concerns (checksum/config)", async () => {
      const checksum = (objects: KubeObject[], component: string) =>
        statefulSetOf(objects, component).spec?.template.metadata?.annotations?.["checksum/config"];
      const base = objectsOf("defaults");
      const changed = await helmTemplate({ values: { sentinel: { config: { "virtual-nodes": 200 } } } });
      assert.ok(checksum(base, "sentinel"));
      assert.notEqual(checksum(changed, "sentinel"), checksum(base, "sentinel"));
      assert.equal(checksum(changed, "broker"), checksum(base, "broker"));
      const cm = changed.find(
        (o): o is KubeObject & IConfigMap =>
          o.kind === "ConfigMap" && o.metadata.name === `${RELEASE}-goulette-sentinel`,
      );
      assert.deepEqual(parseYaml(cm?.data?.["config.yaml"] ?? ""), { "virtual-nodes": 200 });
    });

    it("every value is documented (## @param), typed in values.schema.json and listed in README.md", () => {
      const text = readFileSync(path.join(chartDir, "values.yaml"), "utf8");
      const values = parseYaml(text) as Record<string, unknown>;
      const schema = JSON.parse(
        readFileSync(path.join(chartDir, "values.schema.json"), "utf8"),
      ) as SchemaNode;
      const readme = readFileSync(path.join(chartDir, "README.md"), "utf8");
      const params = [...text.matchAll(/^\s*## @param (\S+) /gm)].map((m) => m[1] as string);
      assert.ok(params.length > 100, `only ${params.length} @param lines`);
      for (const param of params) {
        assert.ok(lookup(values, param.split(".")) !== undefined, `@param ${param} names no value`);
        assert.ok(schemaAt(schema, param.split(".")), `values.schema.json lacks ${param}`);
        assert.ok(readme.includes(`| \`${param}\``), `README.md lacks a row for ${param}`);
      }
      for (const leaf of leaves(values)) {
        assert.ok(
          params.some((p) => leaf === p || leaf.startsWith(`${p}.`)),
          `value ${leaf} has no ## @param line`,
        );
      }
      assert.equal(schema.additionalProperties, false, "the schema must reject unknown top-level keys");
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Topology: every address a pod is told must name a rendered Service and a pod that will exist.

function checkTopology(objects: KubeObject[], values: Record<string, unknown>): void {
  const tls = (values.tls as { enabled?: boolean } | undefined)?.enabled === true;
  const scheme = tls ? "https:" : "http:";
  const sentinel = statefulSetOf(objects, "sentinel");
  const broker = statefulSetOf(objects, "broker");
  const etcd = statefulSetOf(objects, "etcd");
  const sentinelHeadless = headlessServiceOf(objects, sentinel);
  const brokerHeadless = headlessServiceOf(objects, broker);

  // Sentinels advertise <pod>.<headless>.<ns>.svc.<domain>:<rpc port>.
  const sentinelPort = portOf(containerOf(sentinel, "sentinel"), "rpc");
  assert.ok(sentinelHeadless.spec?.ports?.some((p) => p.port === sentinelPort && p.targetPort === "rpc"));
  for (let i = 0; i < replicasOf(sentinel); i++) {
    const pod = `${sentinel.metadata.name}-${i}`;
    const env = envOf(sentinel, "sentinel", i);
    assert.equal(env.get("GOULETTE_ID"), pod);
    assert.equal(env.get("GOULETTE_KUBE_NAMESPACE"), NS);
    assert.equal(
      env.get("GOULETTE_ADDRESS"),
      `0.0.0.0:${sentinelPort}`,
      "listens on another port than it exposes",
    );
    const url = new URL(env.get("GOULETTE_ADVERTISE_URL") ?? "");
    assert.equal(url.protocol, scheme);
    assert.equal(url.hostname, `${pod}.${sentinelHeadless.metadata.name}.${NS}.svc.${DOMAIN}`);
    assert.equal(Number(url.port), sentinelPort);
  }

  // The pod watcher's selector matches the broker pods and nothing else.
  const selector = parseSelector(envOf(sentinel, "sentinel", 0).get("GOULETTE_KUBE_BROKER_SELECTOR") ?? "");
  assert.ok(selects(selector, broker.spec?.template.metadata?.labels), "broker selector misses broker pods");
  for (const other of [sentinel, etcd]) {
    if (other)
      assert.ok(!selects(selector, other.spec?.template.metadata?.labels), "broker selector too wide");
  }

  // Brokers advertise <pod>.<headless>.<ns>.svc.<domain>:<rpc port> and reach sentinels by their Service.
  const brokerPort = portOf(containerOf(broker, "broker"), "rpc");
  assert.ok(brokerHeadless.spec?.ports?.some((p) => p.port === brokerPort && p.targetPort === "rpc"));
  for (let i = 0; i < replicasOf(broker); i++) {
    const pod = `${broker.metadata.name}-${i}`;
    const env = envOf(broker, "broker", i);
    assert.equal(env.get("GOULETTE_ID"), pod, "the broker id must be the pod name (pod watcher)");
    assert.equal(
      env.get("GOULETTE_ADDRESS"),
      `0.0.0.0:${brokerPort}`,
      "listens on another port than it exposes",
    );
    assert.equal(
      env.get("GOULETTE_ADVERTISE_ADDRESS"),
      `${pod}.${brokerHeadless.metadata.name}.${NS}.svc.${DOMAIN}:${brokerPort}`,
    );
    const dataDir = env.get("GOULETTE_DATA_DIR") ?? "";
    assert.ok(
      isUnderMount(containerOf(broker, "broker"), dataDir, "data"),
      `data dir ${dataDir} is not on the data volume`,
    );
  }
  const sentinelUrls = (envOf(broker, "broker", 0).get("GOULETTE_SENTINELS") ?? "").split(",");
  assert.ok(sentinelUrls.length > 0);
  for (const raw of sentinelUrls) {
    const url = new URL(raw);
    assert.equal(url.protocol, scheme);
    const svc = serviceByHost(objects, url.hostname);
    assert.notEqual(svc.spec?.clusterIP, "None", "brokers should use the load-balanced sentinel Service");
    assert.ok(
      selects(svc.spec?.selector, sentinel.spec?.template.metadata?.labels),
      `${svc.metadata.name} misses sentinels`,
    );
    const port = svc.spec?.ports?.find((p) => p.port === Number(url.port));
    assert.ok(port, `${svc.metadata.name} has no port ${url.port}`);
    assert.equal(port.targetPort, "rpc");
  }

  // etcd: the members and the endpoints the sentinels use.
  const endpoints = (envOf(sentinel, "sentinel", 0).get("GOULETTE_ETCD_ENDPOINTS") ?? "").split(",");
  const embedded = podSpecOf(sentinel).containers.some((c) => c.name === "etcd");
  if (etcd) {
    assert.ok(!embedded);
    const etcdHeadless = headlessServiceOf(objects, etcd);
    const etcdScheme = checkEtcdMembers(etcd, etcdHeadless);
    const clientPort = portOf(containerOf(etcd, "etcd"), "etcd-client");
    assert.deepEqual(
      endpoints,
      Array.from(
        { length: replicasOf(etcd) },
        (_, i) =>
          `${etcdScheme}://${etcd.metadata.name}-${i}.${etcdHeadless.metadata.name}.${NS}.svc.${DOMAIN}:${clientPort}`,
      ),
    );
  } else if (embedded) {
    checkEtcdMembers(sentinel, sentinelHeadless);
    assert.deepEqual(endpoints, [argsOf(sentinel, "etcd", 0).get("listen-client-urls")]);
  } else {
    assert.deepEqual(
      endpoints,
      EXTERNAL_ENDPOINTS,
      "no etcd StatefulSet and no sidecar, but not the external endpoints",
    );
  }
}

/**
 * externalAccess: each broker pod advertises one external address (GOULETTE_ADVERTISE_LISTENERS, read
 * with the broker's own parser for that pod's id) that a Service of its own exposes, on the advertised
 * port; the sentinels have an external Service, and --listener-hosts names its hosts.
 */
function checkExternalAccess(objects: KubeObject[], values: Record<string, unknown>): void {
  const ea = values.externalAccess as
    | {
        listener?: string;
        service?: {
          type?: string;
          nodePorts?: number[];
          loadBalancerIPs?: string[];
          externalTrafficPolicy?: string;
        };
        advertised?: { hosts?: string[]; domain?: string; basePort?: number };
        sentinel?: { hosts?: string[]; nodePort?: number; loadBalancerIP?: string };
      }
    | undefined;
  const broker = statefulSetOf(objects, "broker");
  const sentinel = statefulSetOf(objects, "sentinel");
  const external = objects.filter(
    (o): o is KubeObject & IService =>
      o.kind === "Service" && o.metadata.labels?.["goulette.io/service"] === "external",
  );
  if (!ea) {
    assert.deepEqual(external, [], "external Services without externalAccess");
    assert.ok(!envOf(broker, "broker", 0).has("GOULETTE_ADVERTISE_LISTENERS"));
    assert.ok(!envOf(sentinel, "sentinel", 0).has("GOULETTE_LISTENER_HOSTS"));
    return;
  }
  const listener = ea.listener ?? "external";
  const type = ea.service?.type ?? "LoadBalancer";
  const brokerPort = portOf(containerOf(broker, "broker"), "rpc");
  const replicas = replicasOf(broker);
  for (let i = 0; i < replicas; i++) {
    const pod = `${broker.metadata.name}-${i}`;
    const entries = (envOf(broker, "broker", i).get("GOULETTE_ADVERTISE_LISTENERS") ?? "").split(",");
    const listeners = advertisedListeners(entries, pod);
    assert.deepEqual(
      listeners.map((l) => l.name),
      [listener],
      `${pod}: its listeners`,
    );
    const [host, port] = (listeners[0]?.address ?? "").split(":");
    const expectedHost: string | undefined =
      ea.advertised?.hosts?.[i] ??
      (type === "LoadBalancer" ? ea.service?.loadBalancerIPs?.[i] : ea.advertised?.domain);
    assert.equal(host, expectedHost, `${pod}: advertised host`);

    const podLabels = {
      ...broker.spec?.template.metadata?.labels,
      "statefulset.kubernetes.io/pod-name": pod,
    };
    const mine = external.filter((svc) => selects(svc.spec?.selector, podLabels));
    assert.equal(mine.length, 1, `${pod}: ${mine.length} external Services select it`);
    const svc = mine[0] as KubeObject & IService;
    assert.equal(
      svc.spec?.selector?.["statefulset.kubernetes.io/pod-name"],
      pod,
      `${svc.metadata.name}: one pod`,
    );
    assert.equal(svc.spec?.type, type);
    assert.equal(svc.spec?.externalTrafficPolicy, ea.service?.externalTrafficPolicy ?? "Cluster");
    const svcPort = svc.spec?.ports?.[0];
    assert.equal(svcPort?.targetPort, "rpc", `${svc.metadata.name} must reach the rpc port ${brokerPort}`);
    if (type === "LoadBalancer") {
      assert.equal(Number(port), svcPort?.port, `${pod}: advertises its LoadBalancer's port`);
      assert.equal(svc.spec?.loadBalancerIP, ea.service?.loadBalancerIPs?.[i]);
    } else {
      const expectedPort: number = ea.service?.nodePorts?.[i] ?? (ea.advertised?.basePort ?? 0) + i;
      assert.equal(Number(port), expectedPort, `${pod}: advertised port`);
      assert.equal(svcPort?.nodePort, expectedPort, `${svc.metadata.name}: node port`);
    }
  }
  assert.equal(
    external.filter((s) => componentOf(s) === "broker").length,
    replicas,
    "one Service per broker",
  );

  const sentinels = external.filter((s) => componentOf(s) === "sentinel");
  assert.equal(sentinels.length, 1, "one external sentinel Service");
  const sentinelSvc = sentinels[0] as KubeObject & IService;
  assert.equal(sentinelSvc.spec?.type, type);
  assert.ok(
    selects(sentinelSvc.spec?.selector, sentinel.spec?.template.metadata?.labels),
    "misses sentinels",
  );
  assert.equal(sentinelSvc.spec?.ports?.[0]?.targetPort, "rpc");
  if (ea.sentinel?.nodePort) assert.equal(sentinelSvc.spec?.ports?.[0]?.nodePort, ea.sentinel.nodePort);
  if (type === "LoadBalancer") assert.equal(sentinelSvc.spec?.loadBalancerIP, ea.sentinel?.loadBalancerIP);
  const hosts = ea.sentinel?.hosts ?? [];
  const env = envOf(sentinel, "sentinel", 0).get("GOULETTE_LISTENER_HOSTS");
  if (hosts.length === 0) {
    assert.equal(env, undefined);
  } else {
    const lookup = listenerHostsLookup((env ?? "").split(","));
    for (const host of hosts)
      assert.equal(lookup(`http://${host}/`), listener, `--listener-hosts misses ${host}`);
  }
}

/** etcd members run in the pods of `sts`: --initial-cluster must name exactly those pods at their DNS names. */
/** Checks the members of one etcd cluster; returns the scheme of its URLs (https with etcd.tls). */
function checkEtcdMembers(sts: KubeObject & IStatefulSet, headless: KubeObject & IService): string {
  const container = containerOf(sts, "etcd");
  const peerPort = portOf(container, "etcd-peer");
  const embedded = componentOf(sts) === "sentinel";
  const scheme = (container.args ?? []).includes("--client-cert-auth") ? "https" : "http";
  assert.ok(
    headless.spec?.ports?.some((p) => p.port === peerPort),
    `${headless.metadata.name} lacks the peer port`,
  );
  assert.equal(
    headless.spec?.publishNotReadyAddresses,
    true,
    "etcd peers must resolve before they are ready",
  );
  const replicas = replicasOf(sts);
  for (let i = 0; i < replicas; i++) {
    const pod = `${sts.metadata.name}-${i}`;
    const args = argsOf(sts, "etcd", i);
    const cluster = new Map(
      (args.get("initial-cluster") ?? "").split(",").map((entry) => {
        const eq = entry.indexOf("=");
        return [entry.slice(0, eq), entry.slice(eq + 1)] as const;
      }),
    );
    const pods = Array.from({ length: replicas }, (_, j) => `${sts.metadata.name}-${j}`);
    assert.deepEqual([...cluster.keys()], pods, "--initial-cluster must list every pod of the StatefulSet");
    for (const [member, peerUrl] of cluster) {
      assert.equal(
        peerUrl,
        `${scheme}://${member}.${headless.metadata.name}.${NS}.svc.${DOMAIN}:${peerPort}`,
      );
    }
    assert.equal(args.get("name"), pod, "the member name must be the pod name");
    assert.equal(
      args.get("initial-advertise-peer-urls"),
      cluster.get(pod),
      "advertised peer URL ≠ --initial-cluster entry",
    );
    // The embedded sidecar serves its own sentinel only, on 127.0.0.1.
    assert.equal(
      args.get("advertise-client-urls"),
      embedded
        ? args.get("listen-client-urls")
        : `${scheme}://${pod}.${headless.metadata.name}.${NS}.svc.${DOMAIN}:${portOf(container, "etcd-client")}`,
    );
    const dataDir = args.get("data-dir") ?? "";
    assert.ok(
      isUnderMount(container, dataDir, "etcd-data"),
      `--data-dir ${dataDir} is not on the etcd-data volume`,
    );
  }
  return scheme;
}

// ---------------------------------------------------------------------------------------------
// Pod security and availability.

function checkPodSecurity(sts: KubeObject & IStatefulSet): void {
  const spec = podSpecOf(sts);
  const podSc = spec.securityContext ?? {};
  const claimNames = new Set((sts.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name));
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const where = `${sts.metadata.name}/${c.name}`;
    const sc = c.securityContext ?? {};
    assert.equal(sc.runAsNonRoot ?? podSc.runAsNonRoot, true, `${where}: runAsNonRoot`);
    const uid = sc.runAsUser ?? podSc.runAsUser;
    assert.ok(uid !== undefined && uid !== 0, `${where}: runs as uid ${uid}`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
    assert.notEqual(sc.privileged, true, `${where}: privileged`);
    assert.ok(sc.capabilities?.drop?.includes("ALL"), `${where}: capabilities not dropped`);
    assert.equal(sc.capabilities?.add, undefined, `${where}: capabilities added`);
    assert.equal((sc.seccompProfile ?? podSc.seccompProfile)?.type, "RuntimeDefault", `${where}: seccomp`);
    const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
    assert.ok(tmp && volumes.get(tmp.name)?.emptyDir, `${where}: no emptyDir on /tmp`);
    for (const m of c.volumeMounts ?? []) {
      assert.ok(volumes.has(m.name) || claimNames.has(m.name), `${where}: mount ${m.name} has no volume`);
    }
  }
}

function checkAvailability(objects: KubeObject[], values: Record<string, unknown>): void {
  const tls = (values.tls as { enabled?: boolean } | undefined)?.enabled === true;
  const pdbs = objects.filter(
    (o): o is KubeObject & IPodDisruptionBudget => o.kind === "PodDisruptionBudget",
  );
  for (const sts of statefulSets(objects)) {
    const component = componentOf(sts);
    const selector = sts.spec?.selector.matchLabels ?? {};
    const podLabels = sts.spec?.template.metadata?.labels;
    assert.ok(selects(selector, podLabels), `${sts.metadata.name}: selector does not match its pods`);
    assert.deepEqual(
      Object.keys(selector).sort(),
      ["app.kubernetes.io/component", "app.kubernetes.io/instance", "app.kubernetes.io/name"],
      `${sts.metadata.name}: selectors may only use stable labels`,
    );
    const covering = pdbs.filter((p) => selects(p.spec?.selector?.matchLabels, podLabels));
    assert.equal(covering.length, 1, `${sts.metadata.name}: ${covering.length} PodDisruptionBudgets`);
    const spec = podSpecOf(sts);
    const anti = spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0];
    assert.ok(
      selects(anti?.podAffinityTerm.labelSelector?.matchLabels, podLabels),
      `${sts.metadata.name}: anti-affinity`,
    );
    const spread = spec.topologySpreadConstraints?.[0];
    assert.equal(spread?.topologyKey, "topology.kubernetes.io/zone");
    assert.ok(
      selects(spread?.labelSelector?.matchLabels, podLabels),
      `${sts.metadata.name}: spread selector`,
    );
    if (component === "etcd") continue;
    const c = containerOf(sts, component);
    assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
    assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(probe?.httpGet?.port, "rpc");
      assert.equal(probe?.httpGet?.scheme, tls ? "HTTPS" : "HTTP");
    }
    assert.ok(c.resources?.requests, `${sts.metadata.name}: no resource requests`);
  }
  const sentinel = statefulSetOf(objects, "sentinel");
  assert.equal(sentinel.spec?.podManagementPolicy, "Parallel");
  const broker = statefulSetOf(objects, "broker");
  assert.ok(
    broker.spec?.volumeClaimTemplates?.some((t) => t.metadata?.name === "data"),
    "brokers have no volumes",
  );
}

function checkRbac(objects: KubeObject[]): void {
  const fullname = `${RELEASE}-goulette`;
  const role = objects.find(
    (o): o is KubeObject & IRole => o.kind === "Role" && o.metadata.name === fullname,
  );
  assert.ok(role, "no Role");
  assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }]);
  const binding = objects.find(
    (o): o is KubeObject & IRoleBinding => o.kind === "RoleBinding" && o.metadata.name === fullname,
  );
  assert.ok(binding);
  assert.equal(binding.roleRef.name, role.metadata.name);
  const account = objects.find((o) => o.kind === "ServiceAccount" && o.metadata.name === fullname);
  assert.ok(account);
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: account.metadata.name, namespace: NS },
  ]);
  assert.ok(!objects.some((o) => o.kind === "ClusterRole" || o.kind === "ClusterRoleBinding"));
  for (const sts of statefulSets(objects)) {
    const spec = podSpecOf(sts);
    assert.equal(spec.serviceAccountName, account.metadata.name);
    assert.equal(
      spec.automountServiceAccountToken,
      componentOf(sts) === "sentinel",
      `${sts.metadata.name}: token mount`,
    );
  }
  const sentinelEnv = envOf(statefulSetOf(objects, "sentinel"), "sentinel", 0);
  assert.ok(sentinelEnv.get("GOULETTE_KUBE_BROKER_SELECTOR"));
  // Only the credentials Job (a hook) may touch Secrets, and only its own by name beyond "create".
  const secretRules = objects
    .filter((o): o is KubeObject & IRole => o.kind === "Role")
    .flatMap((r) => (r.rules ?? []).map((rule) => ({ role: r.metadata.name, rule })))
    .filter(({ rule }) => rule.resources?.includes("secrets"));
  for (const { role: name, rule } of secretRules) {
    assert.equal(name, `${fullname}-credentials`, `${name} may touch Secrets`);
    if (!(rule.verbs.length === 1 && rule.verbs[0] === "create")) {
      assert.deepEqual(rule.resourceNames, [`${fullname}-credentials`], `${name}: ${rule.verbs.join(",")}`);
    }
  }
  const policies = objects.filter((o): o is KubeObject & INetworkPolicy => o.kind === "NetworkPolicy");
  const etcd = statefulSetOf(objects, "etcd");
  const etcdPolicy = policies.find((p) => componentOf(p) === "etcd");
  assert.equal(etcdPolicy !== undefined, etcd !== undefined, "a NetworkPolicy protects the etcd StatefulSet");
  if (etcdPolicy && etcd) {
    const sentinelLabels = statefulSetOf(objects, "sentinel").spec?.template.metadata?.labels;
    const brokerLabels = statefulSetOf(objects, "broker").spec?.template.metadata?.labels;
    const peers = (etcdPolicy.spec?.ingress ?? []).flatMap((rule) => rule.from ?? []);
    assert.ok(
      peers.some((p) => selects(p.podSelector?.matchLabels, sentinelLabels)),
      "sentinels cannot reach etcd",
    );
    assert.ok(
      !peers.some((p) => selects(p.podSelector?.matchLabels, brokerLabels)),
      "brokers can reach etcd",
    );
  }
}

// ---------------------------------------------------------------------------------------------
// CRD shapes (no schema in kubernetes-models).

function checkServiceMonitorShape(obj: KubeObject): void {
  const spec = obj.spec as Record<string, unknown> | undefined;
  assert.ok(spec && typeof spec === "object", `ServiceMonitor ${obj.metadata.name}: no spec`);
  const selector = spec.selector as { matchLabels?: Record<string, unknown> } | undefined;
  assert.ok(
    selector?.matchLabels && Object.keys(selector.matchLabels).length > 0,
    "ServiceMonitor: empty selector",
  );
  assert.ok(Object.values(selector.matchLabels).every((v) => typeof v === "string"));
  const endpoints = spec.endpoints as Record<string, unknown>[] | undefined;
  assert.ok(Array.isArray(endpoints) && endpoints.length > 0, "ServiceMonitor: no endpoints");
  for (const ep of endpoints) {
    assert.equal(typeof ep.port, "string");
    assert.match(String(ep.path), /^\//);
    if (ep.interval !== undefined) assert.match(String(ep.interval), /^\d+(ms|s|m|h)$/);
    assert.ok(["http", "https"].includes(String(ep.scheme)));
  }
  const namespaces = (spec.namespaceSelector as { matchNames?: unknown } | undefined)?.matchNames;
  assert.deepEqual(namespaces, [NS]);
}

function checkPrometheusRuleShape(obj: KubeObject): void {
  const groups = (obj.spec as { groups?: unknown } | undefined)?.groups;
  assert.ok(Array.isArray(groups) && groups.length > 0, "PrometheusRule: no groups");
  for (const group of groups as Record<string, unknown>[]) {
    assert.equal(typeof group.name, "string");
    const rules = group.rules as Record<string, unknown>[];
    assert.ok(Array.isArray(rules) && rules.length > 0);
    for (const rule of rules) {
      assert.ok(
        typeof rule.alert === "string" || typeof rule.record === "string",
        "rule without alert/record",
      );
      assert.ok(typeof rule.expr === "string" && rule.expr.trim() !== "", `${String(rule.alert)}: no expr`);
      if (rule.for !== undefined) assert.match(String(rule.for), /^\d+(s|m|h)$/);
      for (const map of [rule.labels, rule.annotations]) {
        if (map !== undefined) {
          assert.ok(Object.values(map as Record<string, unknown>).every((v) => typeof v === "string"));
        }
      }
    }
  }
}

interface AlertRule {
  alert: string;
  expr?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertRules(rule: KubeObject): AlertRule[] {
  const groups = (rule.spec as { groups: { rules: AlertRule[] }[] }).groups;
  return groups.flatMap((g) => g.rules).filter((r) => typeof r.alert === "string");
}

// ---------------------------------------------------------------------------------------------
// Accessors and Kubernetes semantics (env expansion, selectors).

function statefulSets(objects: KubeObject[]): (KubeObject & IStatefulSet)[] {
  return objects.filter((o): o is KubeObject & IStatefulSet => o.kind === "StatefulSet");
}

function componentOf(obj: KubeObject): string {
  return obj.metadata.labels?.["app.kubernetes.io/component"] ?? "";
}

function statefulSetOf(objects: KubeObject[], component: "etcd"): (KubeObject & IStatefulSet) | undefined;
function statefulSetOf(objects: KubeObject[], component: string): KubeObject & IStatefulSet;
function statefulSetOf(objects: KubeObject[], component: string): (KubeObject & IStatefulSet) | undefined {
  const found = statefulSets(objects).filter((s) => componentOf(s) === component);
  assert.ok(found.length <= 1, `${found.length} ${component} StatefulSets`);
  if (component !== "etcd") assert.ok(found[0], `no ${component} StatefulSet`);
  return found[0];
}

function podSpecOf(sts: KubeObject & IStatefulSet): IPodSpec {
  const spec = sts.spec?.template.spec;
  assert.ok(spec, `${sts.metadata.name}: no pod spec`);
  return spec;
}

function replicasOf(sts: KubeObject & IStatefulSet): number {
  const replicas = sts.spec?.replicas;
  assert.ok(typeof replicas === "number" && replicas > 0, `${sts.metadata.name}: replicas ${replicas}`);
  return replicas;
}

function containerOf(sts: (KubeObject & IStatefulSet) | undefined, name: string): IContainer {
  assert.ok(sts);
  const container = podSpecOf(sts).containers.find((c) => c.name === name);
  assert.ok(container, `${sts.metadata.name} has no container ${name}`);
  return container;
}

function portOf(container: IContainer, name: string): number {
  const port = container.ports?.find((p) => p.name === name)?.containerPort;
  assert.ok(port, `container ${container.name} has no port ${name}`);
  return port;
}

function headlessServiceOf(objects: KubeObject[], sts: KubeObject & IStatefulSet): KubeObject & IService {
  const svc = objects.find(
    (o): o is KubeObject & IService => o.kind === "Service" && o.metadata.name === sts.spec?.serviceName,
  );
  assert.ok(svc, `${sts.metadata.name}: serviceName ${sts.spec?.serviceName} is not a rendered Service`);
  assert.equal(svc.spec?.clusterIP, "None", `${svc.metadata.name} is not headless`);
  assert.equal(
    svc.spec?.publishNotReadyAddresses,
    true,
    `${svc.metadata.name}: not-ready pods need DNS names`,
  );
  assert.ok(
    selects(svc.spec?.selector, sts.spec?.template.metadata?.labels),
    `${svc.metadata.name} misses its pods`,
  );
  return svc;
}

function serviceByHost(objects: KubeObject[], host: string): KubeObject & IService {
  const svc = objects.find(
    (o): o is KubeObject & IService =>
      o.kind === "Service" && host === `${o.metadata.name}.${NS}.svc.${DOMAIN}`,
  );
  assert.ok(svc, `${host} is not the DNS name of a rendered Service`);
  return svc;
}

/** The environment of one container in pod `<sts>-<ordinal>`, expanded as the kubelet does. */
function envOf(sts: KubeObject & IStatefulSet, container: string, ordinal: number): Map<string, string> {
  const env = new Map<string, string>();
  const pod = { name: `${sts.metadata.name}-${ordinal}`, namespace: NS };
  for (const v of containerOf(sts, container).env ?? []) {
    if (v.value !== undefined) env.set(v.name, expand(v.value, env));
    const field = v.valueFrom?.fieldRef?.fieldPath;
    if (field === "metadata.name") env.set(v.name, pod.name);
    if (field === "metadata.namespace") env.set(v.name, pod.namespace);
    if (v.valueFrom?.secretKeyRef) env.set(v.name, "<secret>");
  }
  return env;
}

/** `--key=value` args of one container, with $(VAR) references expanded. */
function argsOf(sts: KubeObject & IStatefulSet, container: string, ordinal: number): Map<string, string> {
  const env = envOf(sts, container, ordinal);
  const args = new Map<string, string>();
  for (const arg of containerOf(sts, container).args ?? []) {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (match) args.set(match[1] as string, expand(match[2] as string, env));
  }
  return args;
}

/** Kubernetes' $(VAR) expansion: defined variables are substituted, others left as written. */
function expand(text: string, env: Map<string, string>): string {
  return text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env.get(name) ?? whole);
}

function secretRefOf(
  sts: KubeObject & IStatefulSet,
  container: string,
  variable: string,
): { name: string; key: string } {
  const ref = containerOf(sts, container).env?.find((v) => v.name === variable)?.valueFrom?.secretKeyRef;
  assert.ok(ref?.name && ref.key, `${variable} is not read from a Secret`);
  return { name: ref.name, key: ref.key };
}

/** A key of a rendered Secret, decoded; undefined when the Secret or key is not rendered. */
function secretValue(objects: KubeObject[], name: string, key: string): string | undefined {
  const secret = objects.find(
    (o): o is KubeObject & ISecret => o.kind === "Secret" && o.metadata.name === name,
  );
  const data = secret?.data?.[key];
  return data === undefined ? undefined : Buffer.from(data, "base64").toString("utf8");
}

/** `file` must be the path of key `key` of Secret `secret`, mounted in the container. */
function assertFileFromSecret(
  sts: KubeObject & IStatefulSet,
  container: string,
  file: string | undefined,
  secret: string,
  key: string,
  what: string,
): void {
  assert.ok(file, `${what}: no file set`);
  const mount = containerOf(sts, container).volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${what}: ${file} is not under a volume mount`);
  assert.equal(file, `${mount.mountPath}/${key}`, `${what}: wrong file`);
  const volume = podSpecOf(sts).volumes?.find((v) => v.name === mount.name);
  assert.equal(volume?.secret?.secretName, secret, `${what}: mount ${mount.name} is not Secret ${secret}`);
}

function isUnderMount(container: IContainer, dir: string, volume: string): boolean {
  return (container.volumeMounts ?? []).some(
    (m) => m.name === volume && (dir === m.mountPath || dir.startsWith(`${m.mountPath}/`)),
  );
}

function parseSelector(text: string): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const term of text.split(",")) {
    const [key, value, ...rest] = term.split("=");
    assert.ok(
      key && value !== undefined && rest.length === 0,
      `unsupported selector term '${term}' in '${text}'`,
    );
    selector[key] = value;
  }
  return selector;
}

/** Equality-based selector semantics; an empty or missing selector selects nothing here. */
function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const terms = Object.entries(selector ?? {});
  return terms.length > 0 && terms.every(([k, v]) => labels?.[k] === v);
}

/** GOULETTE_* variables the chart itself sets on a container (GOULETTE_CONFIG is the loader's own). */
function chartVariables(sts: KubeObject & IStatefulSet, container: string): string[] {
  return (containerOf(sts, container).env ?? [])
    .map((v) => v.name)
    .filter((name) => name.startsWith("GOULETTE_") && name !== "GOULETTE_CONFIG");
}

/** The broker's option schema, once someone has written it (looked up by file, not imported statically). */
async function brokerOptionSchema(): Promise<Record<string, unknown> | undefined> {
  const file = path.join(repoRoot, "dist", "src", "config", "broker-options.js");
  if (!existsSync(file)) return undefined;
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const entry = Object.entries(module).find(([name]) => name.endsWith("OptionSchema"));
  return entry?.[1] as Record<string, unknown> | undefined;
}

// ---------------------------------------------------------------------------------------------
// values.yaml / values.schema.json walking.

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  type?: string | string[];
}

function lookup(values: unknown, keys: string[]): unknown {
  let node = values;
  for (const key of keys) {
    if (typeof node !== "object" || node === null || !(key in node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function schemaAt(schema: SchemaNode, keys: string[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = schema;
  for (const key of keys) node = node?.properties?.[key];
  return node;
}

/** Dotted paths of every scalar, list and empty map in values.yaml. */
function leaves(values: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(values).flatMap(([key, value]) => {
    const full = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0) {
      return leaves(value as Record<string, unknown>, full);
    }
    return [full];
  });
}
