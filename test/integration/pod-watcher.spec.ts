import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import {
  createPodWatcher,
  loadKubeConfig,
  type BrokerPodEvent,
  type PodWatcher,
  type PodWatcherOptions,
} from "../../src/sentinel/pod-watcher.js";
import { silentLogger } from "../../src/observability/logger.js";
import {
  brokerPodLabels,
  brokerPodSelector,
  startFakeKubeApi,
  type FakeKubeApi,
  type FakePodSpec,
} from "../helpers/fake-kube-api.js";
import { waitFor } from "../helpers/wait.js";

const NAMESPACE = "goulette";
const WATCHER_TOKEN = "watcher-token";
const CONTROL_TOKEN = "control-token";

/** What the callbacks received, in order. */
interface Recorder {
  unavailable: BrokerPodEvent[];
  ready: string[];
  /** "unavailable:<broker>:<reason>" and "ready:<broker>" in delivery order. */
  sequence: string[];
}

function recorder(): Recorder {
  return { unavailable: [], ready: [], sequence: [] };
}

interface Harness {
  api: FakeKubeApi;
  watcher: PodWatcher;
  rec: Recorder;
}

async function setup(
  t: TestContext,
  pods: FakePodSpec[],
  overrides: Partial<PodWatcherOptions> = {},
  rec: Recorder = recorder(),
): Promise<Harness> {
  const api = await startFakeKubeApi({ namespace: NAMESPACE, tokens: [WATCHER_TOKEN, CONTROL_TOKEN] });
  for (const pod of pods) api.addPod(pod);
  const watcher = createPodWatcher({
    namespace: NAMESPACE,
    labelSelector: brokerPodSelector,
    kubeConfig: api.kubeConfig(WATCHER_TOKEN),
    onBrokerUnavailable: (event) => {
      rec.unavailable.push(event);
      rec.sequence.push(`unavailable:${event.brokerId}:${event.reason}`);
    },
    onBrokerReady: (brokerId) => {
      rec.ready.push(brokerId);
      rec.sequence.push(`ready:${brokerId}`);
    },
    logger: silentLogger(),
    ...overrides,
  });
  t.after(async () => {
    await watcher.stop();
    await api.close();
  });
  return { api, watcher, rec };
}

/** Starts the watcher and waits until its watch stream is open on the fake server. */
async function startWatching(h: Harness, expectedWatches = 1): Promise<void> {
  await h.watcher.start();
  await waitFor(() => h.api.activeWatches === expectedWatches, {
    timeoutMs: 3_000,
    what: "the watch stream",
  });
}

const reasonsOf = (rec: Recorder, podName: string) =>
  rec.unavailable.filter((e) => e.podName === podName).map((e) => e.reason);

describe("pod watcher", () => {
  it("reports a pod that turns NotReady within 1 s, with the broker id from brokerIdOf", async (t) => {
    const brokerIdOf = (pod: V1Pod) => pod.metadata?.labels?.["goulette.io/broker-id"] ?? "?";
    const h = await setup(
      t,
      [
        { name: "broker-0", labels: { ...brokerPodLabels, "goulette.io/broker-id": "b-zero" } },
        { name: "broker-1", labels: { ...brokerPodLabels, "goulette.io/broker-id": "b-one" } },
      ],
      { brokerIdOf },
    );
    await startWatching(h);
    assert.deepEqual(h.rec.sequence, [], "ready pods at start are not news");

    h.api.setReady("broker-1", false);
    await waitFor(() => h.rec.unavailable.length === 1, { timeoutMs: 1_000, what: "the not-ready report" });
    const event = h.rec.unavailable[0];
    assert.ok(event);
    assert.equal(event.brokerId, "b-one");
    assert.equal(event.podName, "broker-1");
    assert.equal(event.reason, "not-ready");
    assert.match(event.detail, /Ready=False/);
    assert.equal(h.watcher.running, true);
  });

  it("reports a pod that becomes Ready again through onBrokerReady, after its not-ready", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }]);
    await startWatching(h);
    h.api.setReady("broker-0", false);
    await waitFor(() => h.rec.unavailable.length === 1, { timeoutMs: 2_000, what: "not-ready" });
    h.api.setReady("broker-0", true);
    await waitFor(() => h.rec.ready.length === 1, { timeoutMs: 2_000, what: "ready again" });
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-0:not-ready", "ready:broker-0"]);
  });

  it("reports deletion, and a graceful deletion only once", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }, { name: "broker-2" }]);
    await startWatching(h);
    h.api.deletePod("broker-0");
    await waitFor(() => reasonsOf(h.rec, "broker-0").length === 1, { timeoutMs: 2_000, what: "deleted" });
    assert.deepEqual(reasonsOf(h.rec, "broker-0"), ["deleted"]);

    h.api.terminate("broker-1");
    await waitFor(() => reasonsOf(h.rec, "broker-1").length === 1, { timeoutMs: 2_000, what: "terminating" });
    assert.match(h.rec.unavailable.at(-1)?.detail ?? "", /deletionTimestamp/);
    h.api.deletePod("broker-1");
    // A later transition of another pod proves the DELETED of broker-1 has been processed.
    h.api.setReady("broker-2", false);
    await waitFor(() => reasonsOf(h.rec, "broker-2").length === 1, { timeoutMs: 2_000, what: "broker-2" });
    assert.deepEqual(reasonsOf(h.rec, "broker-1"), ["deleted"], "terminating then gone is one deletion");
  });

  it("reports an evicted pod as evicted and a failed pod as failed", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }]);
    await startWatching(h);
    h.api.evict("broker-0");
    h.api.fail("broker-1");
    await waitFor(() => h.rec.unavailable.length === 2, { timeoutMs: 2_000, what: "two reports" });
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-0:evicted", "unavailable:broker-1:failed"]);
    assert.match(h.rec.unavailable[0]?.detail ?? "", /low on resource/);
  });

  it("ignores pods outside the label selector and the namespace", async (t) => {
    const h = await setup(t, [
      { name: "broker-0" },
      { name: "etcd-0", labels: { ...brokerPodLabels, "app.kubernetes.io/component": "etcd" }, ready: false },
      { name: "other-broker-0", labels: { ...brokerPodLabels, "app.kubernetes.io/instance": "other" } },
      { name: "broker-0", namespace: "elsewhere" },
    ]);
    await startWatching(h);
    assert.deepEqual(h.rec.sequence, [], "the not-ready etcd pod of the initial list is not a broker");
    h.api.setReady("other-broker-0", false);
    h.api.setReady("broker-0", false, "elsewhere");
    h.api.deletePod("etcd-0");
    // Events reach the watcher in order, so once this one is seen the ones above would have been too.
    h.api.setReady("broker-0", false);
    await waitFor(() => h.rec.unavailable.length >= 1, { timeoutMs: 2_000, what: "broker-0" });
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-0:not-ready"]);
  });

  it("reports pods that are already unavailable in the initial list, before start resolves", async (t) => {
    const h = await setup(t, [
      { name: "broker-0" },
      { name: "broker-1", ready: false },
      { name: "broker-2" },
    ]);
    h.api.evict("broker-2");
    await h.watcher.start();
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-1:not-ready", "unavailable:broker-2:evicted"]);
    // And they count as known-unavailable: recovery is news.
    h.api.setReady("broker-1", true);
    await waitFor(() => h.rec.ready.length === 1, { timeoutMs: 2_000, what: "broker-1 ready" });
    assert.deepEqual(h.rec.ready, ["broker-1"]);
  });

  it("reconnects after a dropped watch connection and resumes from its resourceVersion", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }]);
    await startWatching(h);
    assert.equal(h.api.watchRequests, 1);

    h.api.dropWatchConnections();
    h.api.setReady("broker-0", false); // while disconnected
    await waitFor(() => h.api.watchRequests >= 2 && h.api.activeWatches === 1, {
      timeoutMs: 3_000,
      what: "the watcher to reconnect",
    });
    h.api.setReady("broker-1", false); // after the reconnect
    await waitFor(() => h.rec.unavailable.length === 2, { timeoutMs: 2_000, what: "both transitions" });
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-0:not-ready", "unavailable:broker-1:not-ready"]);
    assert.equal(h.api.listRequests, 1, "a plain drop resumes the watch without relisting");
  });

  for (const as of ["event", "http"] as const) {
    it(`relists on 410 Gone (${as === "event" ? "ERROR event" : "HTTP 410"}) and reports what changed meanwhile`, async (t) => {
      const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }, { name: "broker-2" }]);
      await startWatching(h);
      assert.equal(h.api.listRequests, 1);

      h.api.dropWatchConnections();
      h.api.setReady("broker-0", false);
      h.api.deletePod("broker-1");
      h.api.expireHistory({ as });
      await waitFor(() => h.rec.unavailable.length === 2, { timeoutMs: 3_000, what: "the relist diff" });
      assert.ok(h.api.listRequests >= 2, `expected a relist, saw ${h.api.listRequests} list requests`);
      assert.deepEqual(
        [...h.rec.sequence].sort(),
        ["unavailable:broker-0:not-ready", "unavailable:broker-1:deleted"],
        "the pod that vanished and the one that turned NotReady while disconnected",
      );

      // The watch resumes from the relist: later transitions (including recovery) still arrive.
      await waitFor(() => h.api.activeWatches === 1, { timeoutMs: 3_000, what: "the new watch" });
      h.api.setReady("broker-0", true);
      h.api.setReady("broker-2", false);
      await waitFor(() => h.rec.sequence.length === 4, { timeoutMs: 2_000, what: "later transitions" });
      assert.deepEqual(h.rec.sequence.slice(2), ["ready:broker-0", "unavailable:broker-2:not-ready"]);
    });
  }

  it("delivers callbacks one at a time, in order, and survives a throwing callback", async (t) => {
    let inFlight = 0;
    let maxInFlight = 0;
    const rec = recorder();
    const track = async (entry: string) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // A slow receiver (e.g. one appending an op to etcd): overlapping calls would show here.
      await sleep(30);
      rec.sequence.push(entry);
      inFlight -= 1;
      if (rec.sequence.length === 1) throw new Error("receiver failed");
    };
    const h = await setup(
      t,
      [{ name: "broker-0" }],
      {
        onBrokerUnavailable: (event) => track(`unavailable:${event.brokerId}:${event.reason}`),
        onBrokerReady: (brokerId) => track(`ready:${brokerId}`),
      },
      rec,
    );
    await startWatching(h);
    h.api.setReady("broker-0", false);
    h.api.setReady("broker-0", true);
    h.api.setReady("broker-0", false);
    h.api.deletePod("broker-0");
    await waitFor(() => rec.sequence.length === 4, { timeoutMs: 3_000, what: "four callbacks" });
    assert.deepEqual(rec.sequence, [
      "unavailable:broker-0:not-ready",
      "ready:broker-0",
      "unavailable:broker-0:not-ready",
      "unavailable:broker-0:deleted",
    ]);
    assert.equal(maxInFlight, 1);
  });

  /** A second watcher on the same server, with its own token: it proves events were sent. */
  function startControl(h: Harness, t: TestContext): { watcher: PodWatcher; rec: Recorder } {
    const rec = recorder();
    const watcher = createPodWatcher({
      namespace: NAMESPACE,
      labelSelector: brokerPodSelector,
      kubeConfig: h.api.kubeConfig(CONTROL_TOKEN),
      onBrokerUnavailable: (event) => {
        rec.sequence.push(`unavailable:${event.brokerId}:${event.reason}`);
      },
      onBrokerReady: (brokerId) => {
        rec.sequence.push(`ready:${brokerId}`);
      },
      logger: silentLogger(),
    });
    t.after(() => watcher.stop());
    return { watcher, rec };
  }

  it("stop() during reconnect backoff: no reconnect and no callback afterwards", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }]);
    const control = startControl(h, t);
    await h.watcher.start();
    await control.watcher.start();
    await waitFor(() => h.api.activeWatches === 2, { timeoutMs: 3_000, what: "both watches" });

    // Refused reconnects put the watcher into backoff with a retry timer pending; stop it there.
    h.api.refuseWatches(503);
    h.api.dropWatchConnections();
    await waitFor(() => h.api.requestsBy(WATCHER_TOKEN).watch >= 2, {
      timeoutMs: 3_000,
      what: "a refused retry",
    });
    await h.watcher.stop();
    assert.equal(h.watcher.running, false);
    const watchesAtStop = h.api.requestsBy(WATCHER_TOKEN).watch;
    h.api.refuseWatches(undefined);

    h.api.setReady("broker-0", false);
    h.api.deletePod("broker-1");
    // The control, in the same backoff, sees both after its own reconnect; then one more drop and
    // reconnect of the control gives any leftover timer of the stopped watcher ample time to fire.
    await waitFor(() => control.rec.sequence.length === 2, { timeoutMs: 5_000, what: "the control watcher" });
    const controlWatches = h.api.requestsBy(CONTROL_TOKEN).watch;
    h.api.dropWatchConnections();
    await waitFor(() => h.api.requestsBy(CONTROL_TOKEN).watch > controlWatches && h.api.activeWatches === 1, {
      timeoutMs: 5_000,
      what: "the control watcher to reconnect again",
    });

    assert.deepEqual(h.rec.sequence, [], "no callback after stop");
    assert.equal(h.api.requestsBy(WATCHER_TOKEN).watch, watchesAtStop, "no reconnect after stop");
    assert.equal(h.api.requestsBy(WATCHER_TOKEN).list, 1);
  });

  it("stop() waits for the callback in flight and drops the queued ones", async (t) => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const rec = recorder();
    const h = await setup(
      t,
      [{ name: "broker-0" }, { name: "broker-1" }, { name: "broker-2" }],
      {
        onBrokerUnavailable: async (event) => {
          rec.sequence.push(`unavailable:${event.brokerId}:${event.reason}`);
          await gate;
        },
      },
      rec,
    );
    const control = startControl(h, t);
    await h.watcher.start();
    await control.watcher.start();
    await waitFor(() => h.api.activeWatches === 2, { timeoutMs: 3_000, what: "both watches" });

    h.api.setReady("broker-0", false);
    h.api.setReady("broker-1", false);
    h.api.setReady("broker-2", false);
    await waitFor(() => rec.sequence.length === 1, { timeoutMs: 2_000, what: "the first callback" });
    // Once the control has all three, the watcher under test has been sent them too (queued behind the gate).
    await waitFor(() => control.rec.sequence.length === 3, { timeoutMs: 2_000, what: "the control watcher" });

    let stopped = false;
    const stopping = h.watcher.stop().then(() => (stopped = true));
    await waitFor(() => h.api.activeWatches === 1, { timeoutMs: 2_000, what: "the watch to close" });
    assert.equal(stopped, false, "stop() must wait for the callback in flight");
    release();
    await stopping;
    assert.deepEqual(rec.sequence, ["unavailable:broker-0:not-ready"]);
  });

  it("can be started again after stop and reports the state afresh", async (t) => {
    const h = await setup(t, [{ name: "broker-0" }, { name: "broker-1" }]);
    await startWatching(h);
    await h.watcher.stop();
    await waitFor(() => h.api.activeWatches === 0, { timeoutMs: 2_000, what: "the watch to close" });
    h.api.setReady("broker-1", false);
    await startWatching(h);
    assert.deepEqual(h.rec.sequence, ["unavailable:broker-1:not-ready"]);
    assert.equal(h.api.listRequests, 2);
  });
});

describe("loadKubeConfig", () => {
  const withEnv = async (env: Record<string, string | undefined>, body: () => Promise<void> | void) => {
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    try {
      await body();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  };

  it("returns undefined outside a cluster when no kubeconfig path is given", async () => {
    await withEnv({ KUBERNETES_SERVICE_HOST: undefined }, () => {
      assert.equal(loadKubeConfig({}), undefined);
    });
  });

  it("uses the service account inside a cluster", async () => {
    await withEnv({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, () => {
      const config = loadKubeConfig({});
      assert.equal(config?.getCurrentCluster()?.server, "https://10.96.0.1:443");
    });
  });

  it("loads a kubeconfig file, which then drives a working watcher", async (t) => {
    const api = await startFakeKubeApi({ namespace: NAMESPACE, tokens: ["file-token"] });
    const dir = await mkdtemp(path.join(tmpdir(), "goulette-kubeconfig-"));
    t.after(async () => {
      await api.close();
      await rm(dir, { recursive: true, force: true });
    });
    const file = path.join(dir, "config");
    await writeFile(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: fake\n  cluster:\n    server: ${api.url}\n    insecure-skip-tls-verify: true`,
        "users:",
        "- name: u\n  user:\n    token: file-token",
        "contexts:",
        "- name: c\n  context:\n    cluster: fake\n    user: u",
        "current-context: c",
        "",
      ].join("\n"),
    );
    await withEnv({ KUBERNETES_SERVICE_HOST: undefined }, async () => {
      const config = loadKubeConfig({ kubeconfigPath: file });
      assert.ok(config);
      api.addPod({ name: "broker-0", ready: false });
      const seen: string[] = [];
      const watcher = createPodWatcher({
        namespace: NAMESPACE,
        labelSelector: brokerPodSelector,
        kubeConfig: config,
        onBrokerUnavailable: (e) => {
          seen.push(e.podName);
        },
        logger: silentLogger(),
      });
      await watcher.start();
      await watcher.stop();
      assert.deepEqual(seen, ["broker-0"]);
      assert.equal(api.requestsBy("file-token").list, 1);
    });
    assert.throws(
      () => loadKubeConfig({ kubeconfigPath: path.join(dir, "missing") }),
      /cannot load kubeconfig/,
    );
  });
});
