import { CoreV1Api, Watch, type KubeConfig, type V1Pod, type V1PodList } from "@kubernetes/client-node";
import { InvalidArgumentError } from "../errors.js";
import { backoffDelay } from "../common/backoff.js";
import type { Logger } from "../observability/logger.js";
import { createPodTracker, type BrokerPodEvent, type PodTracker, type PodTransition } from "./pod-tracker.js";

export type { BrokerPodEvent } from "./pod-tracker.js";
export type { BrokerUnavailableReason } from "./pod-readiness.js";
export { loadKubeConfig, type LoadKubeConfigOptions } from "./kube-config.js";

export interface PodWatcherOptions {
  /** Namespace of broker pods. */
  namespace: string;
  /** Label selector of broker pods, e.g. "app.kubernetes.io/component=broker,app.kubernetes.io/instance=x". */
  labelSelector: string;
  /** Kubeconfig: a loaded KubeConfig (tests point it at the fake server). */
  kubeConfig: KubeConfig;
  /**
   * Maps a pod to a broker id; default: the pod name. Pods from watch events are raw JSON (timestamps
   * are strings), so read names and labels only.
   */
  brokerIdOf?: (pod: V1Pod) => string;
  /**
   * Called when a broker pod stops being able to serve. Must be idempotent on the receiving side; the
   * watcher calls it once per transition (ready→not ready, deletion).
   */
  onBrokerUnavailable: (event: BrokerPodEvent) => void | Promise<void>;
  /** Called when a pod becomes Ready again. */
  onBrokerReady?: (brokerId: string) => void | Promise<void>;
  logger: Logger;
}

export interface PodWatcher {
  /**
   * Lists the pods, reports those already unavailable, then watches. Resolves once the first list has
   * been reported, or has failed (logged; retried with backoff in the background). Idempotent.
   */
  start(): Promise<void>;
  /** Ends the watch and any pending retry; no callback runs after this resolves. */
  stop(): Promise<void>;
  readonly running: boolean;
}

/** First reconnect delay; doubled per failed attempt up to RETRY_MAX_MS (with jitter). */
const RETRY_INITIAL_MS = 200;
const RETRY_MAX_MS = 5_000;
/** A watch that lasted this long was healthy: the next failure starts the backoff afresh. */
const HEALTHY_WATCH_MS = 2_000;
/** The list call cannot be aborted, so a hung one is abandoned after this long. */
const LIST_TIMEOUT_MS = 10_000;
/** Asks the API server to end each watch after this long, so a silently dead stream gets replaced. */
const WATCH_TIMEOUT_SECONDS = 300;

/** The `code` of a Kubernetes Status object (watch ERROR events carry one). */
function statusCode(value: unknown): number | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const code = (value as { code?: unknown; statusCode?: unknown }).code;
  if (typeof code === "number") return code;
  const httpStatus = (value as { statusCode?: unknown }).statusCode;
  return typeof httpStatus === "number" ? httpStatus : undefined;
}

/**
 * Watches broker pods for the sentinel leader: a pod that turns NotReady, fails, is evicted or deleted
 * is reported at once, faster than an expiring heartbeat lease (docs/kubernetes.md). List, then watch from the
 * list's resourceVersion; reconnect with backoff on drops; relist and diff on 410 Gone.
 */
export function createPodWatcher(options: PodWatcherOptions): PodWatcher {
  if (!options.namespace) throw new InvalidArgumentError("pod watcher: namespace must not be empty");
  if (!options.kubeConfig.getCurrentCluster()) {
    throw new InvalidArgumentError("pod watcher: the kubeconfig has no current cluster");
  }
  let session: WatchSession | undefined;
  // A start right after a stop waits for it, so callbacks of the two sessions never interleave.
  let stopping: Promise<void> = Promise.resolve();
  return {
    get running() {
      return session !== undefined;
    },
    async start() {
      if (!session) {
        const previous = stopping;
        session = new WatchSession(options, previous);
      }
      return session.started;
    },
    async stop() {
      const current = session;
      session = undefined;
      if (current) stopping = current.stop();
      await stopping;
    },
  };
}

/** One start→stop period: its own state, so a restart after a leadership change begins clean. */
class WatchSession {
  readonly started: Promise<void>;
  private readonly log: Logger;
  private readonly api: CoreV1Api;
  private readonly watch: Watch;
  private readonly path: string;
  private readonly tracker: PodTracker;
  private stopped = false;
  /** False until a list succeeds, and again after a 410: the next cycle lists before watching. */
  private listed = false;
  private listedOnce = false;
  private resourceVersion: string | undefined;
  /** Incremented per watch connection; callbacks of older connections are ignored. */
  private connection = 0;
  private controller: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Callbacks run one after the other, in the order the transitions were seen. */
  private delivery: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: PodWatcherOptions,
    after: Promise<void>,
  ) {
    this.log = options.logger;
    this.api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.watch = new Watch(options.kubeConfig);
    this.path = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`;
    this.tracker = createPodTracker({
      brokerIdOf: options.brokerIdOf ?? ((pod) => pod.metadata?.name ?? ""),
    });
    this.started = after.then(() => this.cycle()).then(() => this.delivery);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.connection += 1;
    this.controller?.abort();
    this.controller = undefined;
    // Queued callbacks see `stopped` and skip; the one running now is awaited. A list still in flight
    // is not waited for: its result is dropped when it arrives.
    await this.delivery;
  }

  /** List when needed, then open a watch. Never throws: failures schedule the next attempt. */
  private async cycle(): Promise<void> {
    if (this.stopped) return;
    if (!this.listed) {
      let list: V1PodList;
      try {
        list = await this.list();
      } catch (err) {
        if (this.stopped) return;
        this.log.warn(
          { err: err, code: statusCode(err), namespace: this.options.namespace },
          "pod watcher: listing broker pods failed (check the pods get/list/watch RBAC rule); retrying",
        );
        this.scheduleRetry(false);
        return;
      }
      if (this.stopped) return;
      try {
        // Ready pods of the first list are the normal state, not news; after a relist they are.
        this.deliver(this.tracker.resync(list.items, !this.listedOnce));
      } catch (err) {
        this.log.error({ err: err }, "pod watcher: cannot process the pod list; retrying");
        this.scheduleRetry(false);
        return;
      }
      this.resourceVersion = list.metadata?.resourceVersion;
      this.listed = true;
      this.listedOnce = true;
      this.log.debug(
        { pods: list.items.length, resourceVersion: this.resourceVersion },
        "pod watcher: listed pods",
      );
    }
    await this.openWatch();
  }

  private async list(): Promise<V1PodList> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`list timed out after ${LIST_TIMEOUT_MS} ms`)),
        LIST_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([
        this.api.listNamespacedPod({
          namespace: this.options.namespace,
          labelSelector: this.options.labelSelector,
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async openWatch(): Promise<void> {
    const id = ++this.connection;
    const openedAt = Date.now();
    let progressed = false;
    const onEvent = (type: string, object: unknown): void => {
      if (id !== this.connection || this.stopped) return;
      if (type === "ERROR") {
        const code = statusCode(object);
        if (code === 410) {
          this.log.info(
            { resourceVersion: this.resourceVersion },
            "pod watcher: watch history expired (410), relisting",
          );
          this.listed = false;
        } else {
          this.log.warn({ code, status: object }, "pod watcher: watch error event, reconnecting");
        }
        this.endConnection(id, progressed || Date.now() - openedAt >= HEALTHY_WATCH_MS);
        return;
      }
      progressed = true;
      const pod = object as V1Pod;
      const version = pod.metadata?.resourceVersion;
      if (version) this.resourceVersion = version;
      try {
        if (type === "ADDED" || type === "MODIFIED") this.deliver(this.tracker.observe(pod));
        else if (type === "DELETED") this.deliver(this.tracker.remove(pod, "pod was deleted"));
        // BOOKMARK only moves the resourceVersion forward.
      } catch (err) {
        this.log.error({ err: err, type, pod: pod.metadata?.name }, "pod watcher: cannot process event");
      }
    };
    const onDone = (err: unknown): void => {
      if (id !== this.connection || this.stopped) return;
      if (statusCode(err) === 410) {
        this.log.info(
          { resourceVersion: this.resourceVersion },
          "pod watcher: watch answered 410 Gone, relisting",
        );
        this.listed = false;
      } else if (err) {
        this.log.warn({ err: err }, "pod watcher: watch connection failed, reconnecting");
      } else {
        this.log.debug("pod watcher: watch ended, reconnecting");
      }
      this.endConnection(id, progressed || Date.now() - openedAt >= HEALTHY_WATCH_MS);
    };
    try {
      const controller = await this.watch.watch(
        this.path,
        {
          labelSelector: this.options.labelSelector,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: WATCH_TIMEOUT_SECONDS,
        },
        onEvent,
        onDone,
      );
      // The connection may have ended (or the watcher stopped) while the request was being made.
      if (id === this.connection && !this.stopped) this.controller = controller;
      else controller.abort();
    } catch (err) {
      onDone(err);
    }
  }

  /** Closes connection `id` (if still current) and schedules the next cycle. */
  private endConnection(id: number, healthy: boolean): void {
    if (id !== this.connection) return;
    this.connection += 1;
    this.controller?.abort();
    this.controller = undefined;
    this.scheduleRetry(healthy);
  }

  private scheduleRetry(healthy: boolean): void {
    if (this.stopped) return;
    if (healthy) this.failures = 0;
    const delay = backoffDelay(this.failures + 1, RETRY_INITIAL_MS, RETRY_MAX_MS);
    this.failures += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.cycle();
    }, delay);
  }

  private deliver(transitions: PodTransition[]): void {
    for (const transition of transitions) {
      this.delivery = this.delivery.then(() => this.notify(transition));
    }
  }

  private async notify(transition: PodTransition): Promise<void> {
    if (this.stopped) return;
    try {
      if (transition.kind === "unavailable") {
        this.log.info({ ...transition.event }, "pod watcher: broker pod unavailable");
        await this.options.onBrokerUnavailable(transition.event);
      } else {
        this.log.info(
          { brokerId: transition.brokerId, podName: transition.podName },
          "pod watcher: broker pod ready",
        );
        await this.options.onBrokerReady?.(transition.brokerId);
      }
    } catch (err) {
      // The receiver's failure must not stall the watch; it sees the next transition anyway.
      this.log.error({ err: err, transition }, "pod watcher: callback failed");
    }
  }
}
