import http from "node:http";
import { randomUUID } from "node:crypto";
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";

/**
 * A fake Kubernetes API server for pods: a real HTTP server on 127.0.0.1 speaking the list/watch protocol
 * of `/api/v1/namespaces/<ns>/pods` (PodList with metadata.resourceVersion, `watch=true` streams of
 * newline-delimited `{"type","object"}` events from a resourceVersion, 410 Gone for compacted history),
 * with controls to change pods and to inject faults.
 */

/** The labels the chart puts on broker pods (instance "test"): the default labels of added pods. */
export const brokerPodLabels: Readonly<Record<string, string>> = {
  "app.kubernetes.io/name": "goulette",
  "app.kubernetes.io/instance": "test",
  "app.kubernetes.io/component": "broker",
};

/** A label selector that picks exactly the pods labelled `brokerPodLabels`. */
export const brokerPodSelector = "app.kubernetes.io/component=broker,app.kubernetes.io/instance=test";

export interface FakePodSpec {
  /** Pod name. */
  name: string;
  /** Namespace; default the server's default namespace. */
  namespace?: string;
  /** Pod labels; default the broker labels of `startFakeKubeApi`. */
  labels?: Record<string, string>;
  /** Ready condition; default true. */
  ready?: boolean;
}

export interface FakeKubeApiOptions {
  /** Namespace used when a control names none; default "goulette". */
  namespace?: string;
  /** Default labels of added pods; default `brokerPodLabels`. */
  labels?: Record<string, string>;
  /** Bearer tokens accepted (requests are counted per token); default ["fake-token"]. */
  tokens?: string[];
}

export interface RequestCounts {
  list: number;
  watch: number;
}

export interface FakeKubeApi {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Pod list (GET without watch) requests so far. */
  readonly listRequests: number;
  /** Watch requests so far. */
  readonly watchRequests: number;
  /** Watch streams open now. */
  readonly activeWatches: number;
  /** Newest resourceVersion. */
  readonly resourceVersion: number;
  /** Requests made with one token. */
  requestsBy(token: string): RequestCounts;
  /** A KubeConfig pointing at this server: plain http, skipTLSVerify, a bearer-token user. */
  kubeConfig(token?: string): KubeConfig;
  addPod(spec: FakePodSpec): V1Pod;
  setReady(name: string, ready: boolean, namespace?: string): void;
  /** Graceful deletion: sets deletionTimestamp (MODIFIED); the pod stays until `deletePod`. */
  terminate(name: string, namespace?: string): void;
  deletePod(name: string, namespace?: string): void;
  /** Kubelet eviction: phase Failed, reason Evicted, Ready False. */
  evict(name: string, namespace?: string): void;
  /** Container crash with restartPolicy Never: phase Failed, Ready False. */
  fail(name: string, namespace?: string): void;
  /**
   * Compacts the event history: a later watch from an older resourceVersion gets 410 Gone, as an ERROR
   * event with a Status object (what the real API server does) or, with `as: "http"`, as an HTTP 410.
   */
  expireHistory(options?: { as?: "event" | "http" }): void;
  /** While set, watch requests are answered with this HTTP status (e.g. 503) instead of a stream. */
  refuseWatches(code: number | undefined): void;
  /** Destroys the sockets of all open watch streams (a network drop, as the client sees it). */
  dropWatchConnections(): void;
  pod(name: string, namespace?: string): V1Pod | undefined;
  close(): Promise<void>;
}

interface HistoryEntry {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  namespace: string;
  object: V1Pod;
}

interface OpenWatch {
  namespace: string;
  selector: Requirement[];
  res: http.ServerResponse;
}

type Requirement = { key: string; op: "=" | "!="; value: string } | { key: string; op: "exists" | "!exists" };

/** Parses the equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`). */
function parseSelector(selector: string): Requirement[] {
  const requirements: Requirement[] = [];
  for (const raw of selector.split(",")) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(part);
    if (m) {
      requirements.push({ key: m[1] ?? "", op: m[2] === "!=" ? "!=" : "=", value: m[3] ?? "" });
    } else if (/^![^=!\s]+$/.test(part)) {
      requirements.push({ key: part.slice(1), op: "!exists" });
    } else if (/^[^=!\s]+$/.test(part)) {
      requirements.push({ key: part, op: "exists" });
    } else {
      throw new Error(`unsupported label selector requirement: ${part}`);
    }
  }
  return requirements;
}

function matches(pod: V1Pod, selector: Requirement[]): boolean {
  const labels = pod.metadata?.labels ?? {};
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.op) {
      case "=":
        return has && labels[r.key] === r.value;
      case "!=":
        return !has || labels[r.key] !== r.value;
      case "exists":
        return has;
      case "!exists":
        return !has;
    }
  });
}

function statusObject(code: number, reason: string, message: string): object {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

export async function startFakeKubeApi(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const defaultNamespace = options.namespace ?? "goulette";
  const defaultLabels = options.labels ?? brokerPodLabels;
  const tokens = options.tokens ?? ["fake-token"];
  const counts = new Map<string, RequestCounts>(tokens.map((t) => [t, { list: 0, watch: 0 }]));
  const pods = new Map<string, V1Pod>(); // key: namespace/name
  const history: HistoryEntry[] = [];
  const watches = new Set<OpenWatch>();
  let rv = 1000;
  let compactedBelow = 0;
  let expiredAs: "event" | "http" = "event";
  let refuseWatchesWith: number | undefined;
  let listRequests = 0;
  let watchRequests = 0;

  const key = (name: string, namespace = defaultNamespace): string => `${namespace}/${name}`;

  const send = (w: OpenWatch, type: string, object: unknown): void => {
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  };

  const record = (type: HistoryEntry["type"], pod: V1Pod): void => {
    rv += 1;
    const metadata = pod.metadata ?? {};
    metadata.resourceVersion = String(rv);
    pod.metadata = metadata;
    const namespace = metadata.namespace ?? defaultNamespace;
    const entry: HistoryEntry = { rv, type, namespace, object: structuredClone(pod) };
    history.push(entry);
    for (const w of watches) {
      if (w.namespace === namespace && matches(entry.object, w.selector)) send(w, type, entry.object);
    }
  };

  const mutate = (name: string, namespace: string | undefined, change: (pod: V1Pod) => void): void => {
    const pod = pods.get(key(name, namespace));
    if (!pod) throw new Error(`fake kube api: no pod ${key(name, namespace)}`);
    change(pod);
    record("MODIFIED", pod);
  };

  const readyCondition = (ready: boolean, reason?: string) => ({
    type: "Ready",
    status: ready ? "True" : "False",
    ...(reason ? { reason } : {}),
    lastTransitionTime: new Date(),
  });

  const json = (res: http.ServerResponse, code: number, body: object): void => {
    res.writeHead(code, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://fake");
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const count = token === undefined ? undefined : counts.get(token);
    if (!count) return json(res, 401, statusObject(401, "Unauthorized", "Unauthorized"));
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    if (req.method !== "GET" || !m)
      return json(res, 404, statusObject(404, "NotFound", `no route ${url.pathname}`));
    const namespace = decodeURIComponent(m[1] ?? "");
    let selector: Requirement[];
    try {
      selector = parseSelector(url.searchParams.get("labelSelector") ?? "");
    } catch (err) {
      return json(res, 400, statusObject(400, "BadRequest", (err as Error).message));
    }
    const current = () =>
      [...pods.values()].filter((p) => p.metadata?.namespace === namespace && matches(p, selector));
    const watch = url.searchParams.get("watch");
    if (watch !== "true" && watch !== "1") {
      listRequests += 1;
      count.list += 1;
      return json(res, 200, {
        kind: "PodList",
        apiVersion: "v1",
        metadata: { resourceVersion: String(rv) },
        items: current(),
      });
    }
    watchRequests += 1;
    count.watch += 1;
    if (refuseWatchesWith !== undefined) {
      return json(
        res,
        refuseWatchesWith,
        statusObject(refuseWatchesWith, "ServiceUnavailable", "refused by test"),
      );
    }
    const from = url.searchParams.get("resourceVersion");
    const fromRv = from && from !== "0" ? Number(from) : undefined;
    if (fromRv !== undefined && (!Number.isInteger(fromRv) || fromRv < compactedBelow)) {
      const message = `too old resource version: ${from} (${compactedBelow})`;
      if (expiredAs === "http") return json(res, 410, statusObject(410, "Expired", message));
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(`${JSON.stringify({ type: "ERROR", object: statusObject(410, "Expired", message) })}\n`);
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const w: OpenWatch = { namespace, selector, res };
    if (fromRv === undefined) {
      // No resourceVersion: synthetic ADDED events for the current state, like the real server.
      for (const pod of current()) send(w, "ADDED", pod);
    } else {
      for (const e of history) {
        if (e.rv > fromRv && e.namespace === namespace && matches(e.object, selector))
          send(w, e.type, e.object);
      }
    }
    watches.add(w);
    const timeoutSeconds = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    const timer = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    res.on("close", () => {
      clearTimeout(timer);
      watches.delete(w);
    });
  };

  const server = http.createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("fake kube api: no address");
  const url = `http://127.0.0.1:${address.port}`;

  return {
    url,
    get listRequests() {
      return listRequests;
    },
    get watchRequests() {
      return watchRequests;
    },
    get activeWatches() {
      return watches.size;
    },
    get resourceVersion() {
      return rv;
    },
    requestsBy(token) {
      return { ...(counts.get(token) ?? { list: 0, watch: 0 }) };
    },
    kubeConfig(token = tokens[0] ?? "fake-token") {
      const config = new KubeConfig();
      config.loadFromOptions({
        clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
        users: [{ name: "fake-user", token }],
        contexts: [{ name: "fake", cluster: "fake", user: "fake-user", namespace: defaultNamespace }],
        currentContext: "fake",
      });
      return config;
    },
    addPod(spec) {
      const namespace = spec.namespace ?? defaultNamespace;
      if (pods.has(key(spec.name, namespace))) throw new Error(`fake kube api: pod ${spec.name} exists`);
      const ready = spec.ready ?? true;
      const pod: V1Pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: spec.name,
          namespace,
          uid: randomUUID(),
          labels: { ...(spec.labels ?? defaultLabels) },
          creationTimestamp: new Date(),
        },
        spec: { containers: [{ name: "broker", image: "goulette:test" }] },
        status: {
          phase: "Running",
          conditions: [readyCondition(ready, ready ? undefined : "ContainersNotReady")],
        },
      };
      pods.set(key(spec.name, namespace), pod);
      record("ADDED", pod);
      return structuredClone(pod);
    },
    setReady(name, ready, namespace) {
      mutate(name, namespace, (pod) => {
        const status = pod.status ?? {};
        status.conditions = [readyCondition(ready, ready ? undefined : "ContainersNotReady")];
        pod.status = status;
      });
    },
    terminate(name, namespace) {
      mutate(name, namespace, (pod) => {
        const metadata = pod.metadata ?? {};
        metadata.deletionTimestamp = new Date();
        metadata.deletionGracePeriodSeconds = 30;
        pod.metadata = metadata;
      });
    },
    deletePod(name, namespace) {
      const pod = pods.get(key(name, namespace));
      if (!pod) throw new Error(`fake kube api: no pod ${key(name, namespace)}`);
      pods.delete(key(name, namespace));
      record("DELETED", pod);
    },
    evict(name, namespace) {
      mutate(name, namespace, (pod) => {
        pod.status = {
          phase: "Failed",
          reason: "Evicted",
          message: "The node was low on resource: memory.",
          conditions: [readyCondition(false, "PodFailed")],
        };
      });
    },
    fail(name, namespace) {
      mutate(name, namespace, (pod) => {
        pod.status = { phase: "Failed", conditions: [readyCondition(false, "PodFailed")] };
      });
    },
    expireHistory(opts = {}) {
      compactedBelow = rv;
      expiredAs = opts.as ?? "event";
      history.length = 0;
    },
    refuseWatches(code) {
      refuseWatchesWith = code;
    },
    dropWatchConnections() {
      for (const w of [...watches]) {
        watches.delete(w);
        w.res.socket?.destroy();
      }
    },
    pod(name, namespace) {
      const pod = pods.get(key(name, namespace));
      return pod ? structuredClone(pod) : undefined;
    },
    async close() {
      for (const w of watches) w.res.socket?.destroy();
      watches.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
