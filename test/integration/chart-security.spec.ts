// The chart, secure by default: per-component credentials (the hook Job that keeps the Secret, the init
// containers that give each pod its own token and the digests of all), NetworkPolicies in every etcd
// mode, the embedded etcd on localhost, the etcd StatefulSet's TLS. Rendered with the real helm; the
// chart's two credential scripts run for real (node, sh) against a stand-in for the Kubernetes API
// (no cluster here), and what they write is read by the servers' own identity code.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { IStatefulSet } from "kubernetes-models/apps/v1";
import type { IJob } from "kubernetes-models/batch/v1";
import type { INetworkPolicy, INetworkPolicyPeer } from "kubernetes-models/networking.k8s.io/v1";
import type { IConfigMap, IContainer, IService } from "kubernetes-models/v1";
import { Code, type ConnectError } from "@connectrpc/connect";
import { bearerHeaders } from "../../src/common/bearer.js";
import { identityFromOptions } from "../../src/config/identity-options.js";
import { Authenticator } from "../../src/server/identity.js";
import { startBrokerProcess } from "../helpers/broker-process.js";
import { generateCerts, type TestCerts } from "../helpers/certs.js";
import {
  DEFAULT_NAMESPACE as NS,
  DEFAULT_RELEASE as RELEASE,
  chartDir,
  findHelm,
  helmTemplate,
  helmTemplateRaw,
  run,
  type KubeObject,
} from "../helpers/helm.js";
import { waitFor } from "../helpers/wait.js";

const exec = promisify(execFile);
const FULLNAME = `${RELEASE}-goulette`;
const SECRET = `${FULLNAME}-credentials`;
const CLIENT_LABEL = `${FULLNAME}-client`;

type Sts = KubeObject & IStatefulSet;

describe("charts/goulette: secure by default", () => {
  let defaults: KubeObject[];
  before(async () => {
    assert.ok(findHelm(), "helm not found: run `bash scripts/setup.sh` (it extracts .tools/bin/helm)");
    defaults = await helmTemplate();
  });

  describe("credentials", () => {
    it("are on by default: each pod reads its own token and the digests from files, never from arguments", () => {
      for (const component of ["sentinel", "broker"] as const) {
        const sts = statefulSetOf(defaults, component);
        const main = containerOf(sts, component);
        const env = envOf(sts, component, 1);
        assert.ok(!env.has("GOULETTE_ALLOW_ANONYMOUS"), `${component}: anonymous allowed by default`);
        for (const legacy of ["GOULETTE_ADMIN_TOKEN", "GOULETTE_AUTH_TOKEN", "GOULETTE_TOKEN"]) {
          assert.ok(!env.has(legacy), `${component}: ${legacy} set`);
        }
        assert.ok(!JSON.stringify(main.args ?? []).match(/token/i), `${component}: a token flag in args`);
        const tokenFile = env.get("GOULETTE_TOKEN_FILE") ?? "";
        const tokensFile = env.get("GOULETTE_TOKENS_FILE") ?? "";
        const volumes = sts.spec?.template.spec?.volumes ?? [];
        // Both files are on the in-memory volume the init container writes, read-only in the main one.
        for (const file of [tokenFile, tokensFile]) {
          const mount = main.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
          assert.ok(mount?.readOnly, `${component}: ${file} is not on a read-only mount`);
          assert.equal(volumes.find((v) => v.name === mount.name)?.emptyDir?.medium, "Memory");
        }
        // The Secret of every token is mounted into the init container alone.
        const source = volumes.find((v) => v.secret?.secretName === SECRET);
        assert.ok(source, `${component}: the credentials Secret is not a volume`);
        assert.ok(!main.volumeMounts?.some((m) => m.name === source.name), `${component} mounts every token`);
        const init = initContainerOf(sts, "credentials");
        assert.ok(init.volumeMounts?.some((m) => m.name === source.name));
        const own = envOf(sts, "credentials", 1, true).get("OWN_KEY");
        assert.equal(own, component === "sentinel" ? "sentinel" : `broker.${FULLNAME}-broker-1`);
      }
    });

    it("the Job's keys name every broker pod, the sentinels, the admin and each application", () => {
      const job = jobOf(defaults);
      const env = new Map((job.spec?.template.spec?.containers[0]?.env ?? []).map((v) => [v.name, v.value]));
      assert.equal(env.get("SECRET_NAME"), SECRET);
      assert.equal(env.get("SECRET_NAMESPACE"), NS);
      assert.deepEqual(env.get("SECRET_KEYS")?.split(","), [
        "sentinel",
        "admin",
        `broker.${FULLNAME}-broker-0`,
        `broker.${FULLNAME}-broker-1`,
        `broker.${FULLNAME}-broker-2`,
        "app.default",
      ]);
      const hooks = job.metadata.annotations?.["helm.sh/hook"]?.split(",");
      assert.deepEqual(hooks, ["pre-install", "pre-upgrade"], "the Secret must exist before the pods");
    });

    it("render identically twice (no Secret, nothing random); a new broker rolls the pods", async () => {
      for (const values of [{}, { sentinel: { embeddedEtcd: true } }]) {
        const first = await helmTemplateRaw({ values });
        const second = await helmTemplateRaw({ values });
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.stdout, second.stdout, "two renders differ");
        assert.doesNotMatch(first.stdout, /^kind: Secret$/m, "a Secret is rendered");
      }
      const scaled = await helmTemplate({ values: { broker: { replicas: 4 } } });
      for (const component of ["sentinel", "broker"]) {
        const checksum = (objects: KubeObject[]) =>
          statefulSetOf(objects, component).spec?.template.metadata?.annotations?.["checksum/credentials"];
        assert.ok(checksum(defaults));
        assert.notEqual(checksum(scaled), checksum(defaults), `${component} keeps the old tokens table`);
      }
    });

    it("existingSecret: no Job, the pods read the given Secret", async () => {
      const objects = await helmTemplate({ values: { auth: { existingSecret: "my-tokens" } } });
      assert.equal(objects.filter((o) => o.kind === "Job").length, 0);
      for (const component of ["sentinel", "broker"]) {
        const volumes = statefulSetOf(objects, component).spec?.template.spec?.volumes ?? [];
        assert.ok(
          volumes.some((v) => v.secret?.secretName === "my-tokens"),
          component,
        );
      }
    });

    it("auth.enabled=false: --allow-anonymous, no credentials, and NOTES warn", async () => {
      const objects = await helmTemplate({ values: { auth: { enabled: false } } });
      assert.equal(objects.filter((o) => o.kind === "Job").length, 0);
      for (const component of ["sentinel", "broker"]) {
        const sts = statefulSetOf(objects, component);
        const env = envOf(sts, component, 0);
        assert.equal(env.get("GOULETTE_ALLOW_ANONYMOUS"), "true");
        assert.ok(!env.has("GOULETTE_TOKENS_FILE") && !env.has("GOULETTE_TOKEN_FILE"));
        assert.equal(sts.spec?.template.spec?.initContainers, undefined);
      }
      assert.match(
        await notes("auth.enabled=false"),
        /auth\.enabled=false: sentinels and brokers run with --allow-anonymous/,
      );
    });

    it("NOTES tell how to get the admin and application tokens, without a token on a command line", async () => {
      const text = await notes();
      assert.match(
        text,
        new RegExp(
          `export GOULETTE_TOKEN=\\$\\(kubectl -n ${NS} get secret ${SECRET} -o jsonpath='\\{\\.data\\.admin\\}' \\| base64 -d\\)`,
        ),
      );
      assert.match(text, /"secretKeyRef":\{"name":"gt-goulette-credentials","key":"app\.default"\}/);
      assert.match(
        text,
        new RegExp(`--labels=${CLIENT_LABEL}=true`),
        "the client pod passes the NetworkPolicy",
      );
      assert.doesNotMatch(text, /--token[ =]/);
      assert.doesNotMatch(text, /WARNINGS[\s\S]*auth\.enabled=false/);
    });

    describe("the scripts, run as the pods run them", () => {
      let certs: TestCerts;
      let dir: string;
      let api: FakeSecretsApi;
      before(async () => {
        api = new FakeSecretsApi();
        certs = await generateCerts();
        dir = await mkdtemp(path.join(tmpdir(), "goulette-chart-credentials-"));
        await api.start(certs);
        await mkdir(path.join(dir, "serviceaccount"));
        await writeFile(path.join(dir, "serviceaccount", "token"), api.bearer);
        await writeFile(path.join(dir, "serviceaccount", "ca.crt"), await readFile(certs.caCert));
      });
      after(async () => {
        await api.stop();
        await rm(dir, { recursive: true, force: true });
        await certs.cleanup();
      });

      /** Runs the rendered Job's container: its script from the rendered ConfigMap, its env. */
      const runJob = async (objects: KubeObject[]) => {
        const job = jobOf(objects);
        const container = job.spec?.template.spec?.containers[0] as IContainer;
        const script = objects.find(
          (o): o is KubeObject & IConfigMap => o.kind === "ConfigMap" && o.metadata.name === SECRET,
        )?.data?.["credentials-job.mjs"];
        assert.ok(script, "no script ConfigMap");
        assert.equal(container.command?.[1], "/etc/goulette/credentials-job/credentials-job.mjs");
        const file = path.join(dir, "credentials-job.mjs");
        await writeFile(file, script);
        const env = Object.fromEntries((container.env ?? []).map((v) => [v.name, v.value ?? ""]));
        const { stdout } = await exec("node", [file], {
          env: {
            ...env,
            PATH: process.env.PATH ?? "",
            KUBERNETES_SERVICE_HOST: "127.0.0.1",
            KUBERNETES_SERVICE_PORT: String(api.port),
            SERVICEACCOUNT_DIR: path.join(dir, "serviceaccount"),
          },
          timeout: 30_000,
        });
        return stdout;
      };

      /** Runs pod `ordinal`'s init container on the Secret laid out as Kubernetes mounts it. */
      const runInit = async (sts: Sts, ordinal: number) => {
        const source = path.join(dir, `source-${sts.metadata.name}-${ordinal}`);
        const target = path.join(dir, `target-${sts.metadata.name}-${ordinal}`);
        await rm(source, { recursive: true, force: true });
        await mkdir(path.join(source, "..data"), { recursive: true });
        await mkdir(target, { recursive: true });
        for (const [key, value] of Object.entries(api.data())) await writeFile(path.join(source, key), value);
        const init = initContainerOf(sts, "credentials");
        assert.deepEqual(init.command?.slice(0, 2), ["/bin/sh", "-c"]);
        const env = Object.fromEntries(envOf(sts, "credentials", ordinal, true));
        await exec("/bin/sh", ["-c", init.command?.[2] ?? ""], {
          env: { ...env, PATH: process.env.PATH ?? "", SOURCE_DIR: source, TARGET_DIR: target },
          timeout: 30_000,
        });
        return { tokenFile: path.join(target, "token"), tokensFile: path.join(target, "tokens") };
      };

      it("the Job creates the Secret, then only adds what a new broker needs, and never changes a token", async () => {
        assert.match(
          await runJob(defaults),
          /created Secret goulette-test\/gt-goulette-credentials with 6 tokens/,
        );
        const first = api.data();
        assert.deepEqual(Object.keys(first).sort(), [
          "admin",
          "app.default",
          `broker.${FULLNAME}-broker-0`,
          `broker.${FULLNAME}-broker-1`,
          `broker.${FULLNAME}-broker-2`,
          "sentinel",
        ]);
        const tokens = Object.values(first);
        assert.equal(new Set(tokens).size, tokens.length, "two components share a token");
        for (const token of tokens) assert.match(token, /^[A-Za-z0-9_-]{43}$/, "not 256 random bits");

        const writes = api.writes;
        assert.match(await runJob(defaults), /holds every token; unchanged/);
        assert.equal(api.writes, writes, "an upgrade without changes wrote the Secret");

        const scaled = await helmTemplate({
          values: { broker: { replicas: 4 }, auth: { applications: ["default", "billing"] } },
        });
        assert.match(await runJob(scaled), /added broker\.gt-goulette-broker-3, app\.billing/);
        const second = api.data();
        for (const [key, value] of Object.entries(first)) assert.equal(second[key], value, `${key} changed`);
        assert.equal(Object.keys(second).length, 8);
      });

      it("each pod's init container gives it its own token and digests the servers accept", async () => {
        const secret = api.data();
        const broker = statefulSetOf(defaults, "broker");
        const files = await runInit(broker, 1);
        // What `goulette broker` does with GOULETTE_TOKEN_FILE and GOULETTE_TOKENS_FILE.
        const identity = identityFromOptions(
          { tokensFile: files.tokensFile, tokenFile: files.tokenFile, token: "", allowAnonymous: false },
          { sharedToken: "", sharedFlag: "--auth-token", mutualTls: false },
        );
        assert.equal(identity.token, secret[`broker.${FULLNAME}-broker-1`], "not this pod's own token");
        const table = await readFile(files.tokensFile, "utf8");
        for (const token of Object.values(secret)) {
          assert.ok(!table.includes(token), "the tokens table holds a token, not its digest");
        }
        const auth = new Authenticator(identity.identity);
        const who = (token: string | undefined) => {
          const p = auth.resolve(new Headers({ authorization: `Bearer ${token}` }));
          return `${p.kind}:${p.name}`;
        };
        assert.equal(who(secret[`broker.${FULLNAME}-broker-2`]), `broker:${FULLNAME}-broker-2`);
        assert.equal(who(secret.sentinel), "sentinel:");
        assert.equal(who(secret.admin), "admin:");
        assert.equal(who(secret["app.default"]), "application:default");
        assert.throws(() => who("not-a-token"), /not a credential this node knows/);

        const sentinelFiles = await runInit(statefulSetOf(defaults, "sentinel"), 0);
        assert.equal((await readFile(sentinelFiles.tokenFile, "utf8")).trim(), secret.sentinel);
      });

      it("a broker process started with the pod's variables and files authenticates callers by those tokens", async () => {
        const secret = api.data();
        const sts = statefulSetOf(defaults, "broker");
        const files = await runInit(sts, 0);
        // The paths the container is given are the files its init container writes (TARGET_DIR).
        const rendered = envOf(sts, "broker", 0);
        const target = envOf(sts, "credentials", 0, true).get("TARGET_DIR");
        assert.equal(rendered.get("GOULETTE_TOKEN_FILE"), `${target}/token`);
        assert.equal(rendered.get("GOULETTE_TOKENS_FILE"), `${target}/tokens`);
        const broker = await startBrokerProcess({
          id: `${FULLNAME}-broker-0`,
          sentinels: ["http://127.0.0.1:9"], // none: only this broker's own checks are exercised
          dataDir: path.join(dir, "broker-0-data"),
          env: { GOULETTE_TOKEN_FILE: files.tokenFile, GOULETTE_TOKENS_FILE: files.tokensFile },
          waitReady: false,
        });
        try {
          await waitFor(() => broker.client.health({}).then(() => true), {
            what: "the broker to listen",
            timeoutMs: 30_000,
          }).catch((err: unknown) => {
            throw new Error(`${String(err)}\n${broker.logTail()}`);
          });
          const removeAs = (token?: string) =>
            broker.client.removeTopic({ topic: "orders" }, token ? { headers: bearerHeaders(token) } : {});
          await assert.rejects(removeAs(), (err: ConnectError) => err.code === Code.Unauthenticated);
          await assert.rejects(
            removeAs(secret["app.default"]),
            (err: ConnectError) => err.code === Code.PermissionDenied,
          );
          await assert.rejects(
            removeAs(secret[`broker.${FULLNAME}-broker-1`]),
            (err: ConnectError) => err.code === Code.PermissionDenied,
          );
          await removeAs(secret.sentinel); // a sentinel may remove a topic (here: one it does not hold)
        } finally {
          await broker.kill();
        }
      });

      it("a pod whose token is missing stops in its init container with a sentence", async () => {
        const scaled = await helmTemplate({ values: { broker: { replicas: 6 } } });
        await assert.rejects(
          runInit(statefulSetOf(scaled, "broker"), 5),
          (err: Error & { stderr?: string }) => {
            assert.match(
              err.stderr ?? "",
              /Secret gt-goulette-credentials has no key broker\.gt-goulette-broker-5/,
            );
            return true;
          },
        );
      });
    });
  });

  describe("NetworkPolicies", () => {
    it("admit on each port only who needs it", () => {
      const sentinelPods = podLabels(defaults, "sentinel");
      const brokerPods = podLabels(defaults, "broker");
      const etcdPods = podLabels(defaults, "etcd");
      const client = { [CLIENT_LABEL]: "true" };
      const prometheus = { "app.kubernetes.io/name": "prometheus" };
      const stranger = { app: "something-else" };
      for (const [component, port] of [
        ["sentinel", 9090],
        ["broker", 9190],
      ] as const) {
        const policy = policyOf(defaults, component);
        assert.ok(selectsLabels(policy.spec?.podSelector.matchLabels, podLabels(defaults, component)));
        assert.deepEqual(policy.spec?.policyTypes, ["Ingress"]);
        assert.deepEqual(admittedPorts(policy), [port], `${component}: ports`);
        for (const [who, labels, admitted] of [
          ["sentinels", sentinelPods, true],
          ["brokers", brokerPods, true],
          ["labelled clients", client, true],
          ["Prometheus", prometheus, true],
          ["an unlabelled pod", stranger, false],
          ["etcd", etcdPods, false],
        ] as const) {
          assert.equal(admits(policy, port, labels), admitted, `${component} port ${port}: ${who}`);
        }
      }
      const etcd = policyOf(defaults, "etcd");
      assert.equal(admits(etcd, 2379, sentinelPods), true, "sentinels → etcd");
      assert.equal(admits(etcd, 2379, brokerPods), false, "brokers → etcd");
      assert.equal(admits(etcd, 2380, etcdPods), true, "etcd peers");
      assert.equal(admits(etcd, 2380, sentinelPods), false, "sentinels → etcd peer port");
    });

    it("extra clients and namespaces are configurable; allowExternalClients and externalAccess open the RPC ports", async () => {
      const extra = { podSelector: { matchLabels: { team: "billing" } } };
      const custom = await helmTemplate({
        values: {
          networkPolicy: {
            extraClients: [extra],
            clientNamespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "apps" } },
          },
        },
      });
      const from = policyOf(custom, "broker").spec?.ingress?.[0]?.from ?? [];
      assert.ok(from.some((peer) => JSON.stringify(peer) === JSON.stringify(extra)));
      const clients = from.find((peer) => peer.podSelector?.matchLabels?.[CLIENT_LABEL] === "true");
      assert.deepEqual(clients?.namespaceSelector, {
        matchLabels: { "kubernetes.io/metadata.name": "apps" },
      });

      for (const values of [
        { networkPolicy: { allowExternalClients: true } },
        { externalAccess: { enabled: true, advertised: { hosts: ["a", "b", "c"] } } },
      ]) {
        const objects = await helmTemplate({ values });
        for (const component of ["sentinel", "broker"]) {
          const policy = policyOf(objects, component);
          assert.equal(policy.spec?.ingress?.[0]?.from, undefined, `${JSON.stringify(values)}: ${component}`);
        }
        assert.equal(admits(policyOf(objects, "etcd"), 2379, podLabels(objects, "broker")), false);
      }
      const off = await helmTemplate({ values: { networkPolicy: { enabled: false } } });
      assert.equal(off.filter((o) => o.kind === "NetworkPolicy").length, 0);
    });

    it("embedded etcd: the client port listens on localhost only and is not published; peers only from sentinels", async () => {
      const objects = await helmTemplate({ values: { sentinel: { embeddedEtcd: true } } });
      const sentinel = statefulSetOf(objects, "sentinel");
      const args = argsOf(sentinel, "etcd");
      assert.equal(args.get("listen-client-urls"), "http://127.0.0.1:2379");
      assert.equal(args.get("advertise-client-urls"), "http://127.0.0.1:2379");
      assert.equal(envOf(sentinel, "sentinel", 0).get("GOULETTE_ETCD_ENDPOINTS"), "http://127.0.0.1:2379");
      const sidecar = containerOf(sentinel, "etcd");
      assert.ok(!sidecar.ports?.some((p) => p.containerPort === 2379), "the client port is declared");
      // Probes use the metrics listener, which serves /health and no data.
      assert.equal(args.get("listen-metrics-urls"), "http://0.0.0.0:2381");
      assert.equal(sidecar.readinessProbe?.httpGet?.port, "etcd-metrics");
      const headless = objects.find(
        (o): o is KubeObject & IService =>
          o.kind === "Service" && o.metadata.name === `${FULLNAME}-sentinel-headless`,
      );
      assert.deepEqual(
        headless?.spec?.ports?.map((p) => p.port),
        [9090, 2380],
        "the headless Service publishes the etcd client port",
      );
      const policy = policyOf(objects, "sentinel");
      assert.deepEqual(admittedPorts(policy), [9090, 2380]);
      assert.equal(admits(policy, 2380, podLabels(objects, "sentinel")), true);
      for (const labels of [podLabels(objects, "broker"), { [CLIENT_LABEL]: "true" }]) {
        assert.equal(admits(policy, 2380, labels), false, "the peer port admits more than sentinels");
        assert.equal(admits(policy, 2379, labels), false);
      }
      assert.equal(objects.filter((o) => o.kind === "NetworkPolicy").length, 2, "no etcd StatefulSet here");
    });
  });

  describe("etcd StatefulSet TLS", () => {
    it("serves both ports over TLS, requires client certificates, and the sentinels present theirs", async () => {
      const objects = await helmTemplate({
        values: {
          etcd: {
            tls: { enabled: true, existingSecret: "etcd-members", clientExistingSecret: "etcd-sentinels" },
          },
        },
      });
      const etcd = statefulSetOf(objects, "etcd");
      const args = argsOf(etcd, "etcd");
      const flags = containerOf(etcd, "etcd").args ?? [];
      for (const flag of ["--client-cert-auth", "--peer-client-cert-auth"])
        assert.ok(flags.includes(flag), flag);
      assert.match(args.get("listen-client-urls") ?? "", /^https:/);
      assert.match(args.get("initial-cluster") ?? "", /^gt-goulette-etcd-0=https:/);
      const serverFiles = [
        "cert-file",
        "key-file",
        "trusted-ca-file",
        "peer-cert-file",
        "peer-key-file",
        "peer-trusted-ca-file",
      ];
      for (const flag of serverFiles) assertSecretFile(etcd, "etcd", args.get(flag), "etcd-members");
      assert.equal(
        containerOf(etcd, "etcd").livenessProbe?.httpGet?.port,
        "etcd-metrics",
        "probes need no certificate",
      );

      const sentinel = statefulSetOf(objects, "sentinel");
      const env = envOf(sentinel, "sentinel", 0);
      for (const url of (env.get("GOULETTE_ETCD_ENDPOINTS") ?? "").split(","))
        assert.match(url, /^https:\/\/gt-goulette-etcd-\d\./);
      for (const variable of ["GOULETTE_ETCD_TLS_CA", "GOULETTE_ETCD_TLS_CERT", "GOULETTE_ETCD_TLS_KEY"]) {
        assertSecretFile(sentinel, "sentinel", env.get(variable), "etcd-sentinels");
      }
    });

    it("refuses TLS without its Secret, or outside the StatefulSet mode", async () => {
      const missing = await helmTemplateRaw({ values: { etcd: { tls: { enabled: true } } } });
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /etcd\.tls\.enabled=true needs etcd\.tls\.existingSecret/);
      const embedded = await helmTemplateRaw({
        values: { sentinel: { embeddedEtcd: true }, etcd: { tls: { enabled: true, existingSecret: "x" } } },
      });
      assert.notEqual(embedded.code, 0);
      assert.match(embedded.stderr, /etcd\.tls\.enabled=true applies to the chart's etcd StatefulSet only/);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// A stand-in for the Kubernetes API's Secrets of one namespace (there is no cluster here): GET,
// POST and merge PATCH with optimistic concurrency, as the credentials Job uses them.

class FakeSecretsApi {
  readonly bearer = "service-account-token";
  writes = 0;
  #secret: { resourceVersion: number; data: Record<string, string> } | undefined;
  #server: ReturnType<typeof createServer> | undefined;

  get port(): number {
    return (this.#server?.address() as AddressInfo).port;
  }

  /** The Secret's data, decoded. */
  data(): Record<string, string> {
    const data = this.#secret?.data ?? {};
    return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
  }

  async start(certs: TestCerts): Promise<void> {
    this.#server = createServer(
      { cert: readFileSync(certs.nodeCert), key: readFileSync(certs.nodeKey) },
      (req, res) => void this.#handle(req, res),
    );
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = "";
    for await (const chunk of req) text += String(chunk);
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.bearer}`)
      return answer(401, { message: "Unauthorized" });
    const collection = `/api/v1/namespaces/${NS}/secrets`;
    const current = () => ({
      metadata: { name: SECRET, resourceVersion: String(this.#secret?.resourceVersion) },
      data: this.#secret?.data,
    });
    if (req.method === "GET" && req.url === `${collection}/${SECRET}`) {
      return this.#secret ? answer(200, current()) : answer(404, { message: "not found" });
    }
    if (req.method === "POST" && req.url === collection) {
      const body = JSON.parse(text) as { metadata: { name: string }; data: Record<string, string> };
      if (this.#secret) return answer(409, { message: "already exists" });
      assert.equal(body.metadata.name, SECRET);
      this.writes++;
      this.#secret = { resourceVersion: 1, data: body.data };
      return answer(201, current());
    }
    if (req.method === "PATCH" && req.url === `${collection}/${SECRET}` && this.#secret) {
      assert.equal(req.headers["content-type"], "application/merge-patch+json");
      const body = JSON.parse(text) as {
        metadata?: { resourceVersion?: string };
        data: Record<string, string>;
      };
      if (body.metadata?.resourceVersion !== String(this.#secret.resourceVersion)) {
        return answer(409, { message: "the object has been modified" });
      }
      this.writes++;
      this.#secret = {
        resourceVersion: this.#secret.resourceVersion + 1,
        data: { ...this.#secret.data, ...body.data },
      };
      return answer(200, current());
    }
    return answer(404, { message: `unexpected ${req.method} ${req.url}` });
  }
}

// ---------------------------------------------------------------------------------------------
// Accessors.

async function notes(...set: string[]): Promise<string> {
  const args = ["install", RELEASE, chartDir, "--dry-run=client", "--namespace", NS];
  const result = await run(findHelm() as string, [...args, ...set.flatMap((v) => ["--set", v])]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.slice(result.stdout.indexOf("NOTES:"));
}

function componentOf(obj: KubeObject): string {
  return obj.metadata.labels?.["app.kubernetes.io/component"] ?? "";
}

function statefulSetOf(objects: KubeObject[], component: string): Sts {
  const sts = objects.find((o): o is Sts => o.kind === "StatefulSet" && componentOf(o) === component);
  assert.ok(sts, `no ${component} StatefulSet`);
  return sts;
}

function jobOf(objects: KubeObject[]): KubeObject & IJob {
  const job = objects.find((o): o is KubeObject & IJob => o.kind === "Job" && o.metadata.name === SECRET);
  assert.ok(job, "no credentials Job");
  return job;
}

function policyOf(objects: KubeObject[], component: string): KubeObject & INetworkPolicy {
  const policy = objects.find(
    (o): o is KubeObject & INetworkPolicy => o.kind === "NetworkPolicy" && componentOf(o) === component,
  );
  assert.ok(policy, `no NetworkPolicy for ${component}`);
  return policy;
}

function podLabels(objects: KubeObject[], component: string): Record<string, string> {
  return statefulSetOf(objects, component).spec?.template.metadata?.labels ?? {};
}

function containerOf(sts: Sts, name: string): IContainer {
  const container = sts.spec?.template.spec?.containers.find((c) => c.name === name);
  assert.ok(container, `${sts.metadata.name} has no container ${name}`);
  return container;
}

function initContainerOf(sts: Sts, name: string): IContainer {
  const container = sts.spec?.template.spec?.initContainers?.find((c) => c.name === name);
  assert.ok(container, `${sts.metadata.name} has no init container ${name}`);
  return container;
}

/** A container's environment in pod `<sts>-<ordinal>`, with $(VAR) expanded as the kubelet does. */
function envOf(sts: Sts, container: string, ordinal: number, init = false): Map<string, string> {
  const c = init ? initContainerOf(sts, container) : containerOf(sts, container);
  const env = new Map<string, string>();
  for (const v of c.env ?? []) {
    if (v.value !== undefined) {
      env.set(
        v.name,
        v.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, n: string) => env.get(n) ?? all),
      );
    }
    if (v.valueFrom?.fieldRef?.fieldPath === "metadata.name")
      env.set(v.name, `${sts.metadata.name}-${ordinal}`);
  }
  return env;
}

function argsOf(sts: Sts, container: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const arg of containerOf(sts, container).args ?? []) {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (match) args.set(match[1] as string, match[2] as string);
  }
  return args;
}

function assertSecretFile(sts: Sts, container: string, file: string | undefined, secret: string): void {
  assert.ok(file, `${container}: no file`);
  const mount = containerOf(sts, container).volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${file} is not under a mount`);
  const volume = sts.spec?.template.spec?.volumes?.find((v) => v.name === mount.name);
  assert.equal(volume?.secret?.secretName, secret, `${file} is not from Secret ${secret}`);
}

function selectsLabels(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** The ports the policy's rules name. */
function admittedPorts(policy: INetworkPolicy): number[] {
  return (policy.spec?.ingress ?? []).flatMap((rule) => (rule.ports ?? []).map((p) => Number(p.port)));
}

/**
 * Whether a pod with these labels, in some namespace, may reach `port` (NetworkPolicy semantics for the
 * peers the chart renders: a rule without `from` admits everyone; a podSelector peer without a
 * namespaceSelector means this namespace, which the caller's pods share here).
 */
function admits(policy: INetworkPolicy, port: number, labels: Record<string, string>): boolean {
  return (policy.spec?.ingress ?? []).some((rule) => {
    if (!(rule.ports ?? []).some((p) => Number(p.port) === port)) return false;
    if (rule.from === undefined) return true;
    return rule.from.some(
      (peer: INetworkPolicyPeer) =>
        peer.podSelector !== undefined && selectsLabels(peer.podSelector.matchLabels, labels),
    );
  });
}
