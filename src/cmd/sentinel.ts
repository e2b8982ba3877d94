import path from "node:path";
import { createEtcdClient } from "../coordination/etcd-client.js";
import { startEmbeddedEtcd, type EmbeddedEtcd } from "../coordination/embedded-etcd.js";
import { loadOptions, formatHelp } from "../config/options.js";
import { sentinelOptionSchema } from "../config/sentinel-options.js";
import { createLogger } from "../observability/logger.js";
import { tokenAuth } from "../server/auth.js";
import { loadKubeConfig } from "../sentinel/pod-watcher.js";
import { startSentinel } from "../sentinel/sentinel.js";
import { onShutdown } from "./shutdown.js";

const USAGE =
  "Usage: goulette sentinel [options]\n\nRuns a sentinel (control plane) against etcd, or with an embedded etcd.";

/** Writes and admin RPCs that need the admin token when one is configured. */
const PROTECTED = new Set(["RegisterBroker", "UnregisterBroker", "CreateSnapshot"]);

export async function runSentinel(argv: string[]): Promise<void> {
  const { values: o, help, sources } = loadOptions(sentinelOptionSchema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, sentinelOptionSchema));
    return;
  }
  const logger = createLogger({ level: o.logLevel as "info", base: { sentinel: o.id } });
  logger.info({ sources }, "starting sentinel");

  let embedded: EmbeddedEtcd | undefined;
  let endpoints = o.etcdEndpoints;
  if (o.enableEmbeddedEtcd) {
    embedded = await startEmbeddedEtcd({
      name: `goulette-${o.id}`.replace(/[^A-Za-z0-9._-]/g, "-"),
      clientPort: o.etcdPort,
      peerPort: o.etcdPeerPort,
      dataDir: path.resolve(o.etcdDataDir),
      logger: logger.child({ component: "embedded-etcd" }),
    });
    endpoints = [embedded.endpoint];
    logger.info({ endpoint: embedded.endpoint, dataDir: o.etcdDataDir }, "embedded etcd is healthy");
  }
  const etcd = createEtcdClient({
    endpoints,
    ...(o.etcdTlsCa ? { caFile: o.etcdTlsCa } : {}),
    ...(o.etcdTlsCert ? { certFile: o.etcdTlsCert } : {}),
    ...(o.etcdTlsKey ? { keyFile: o.etcdTlsKey } : {}),
    ...(o.etcdUsername ? { username: o.etcdUsername, password: o.etcdPassword } : {}),
  });
  const running: { sentinel?: Awaited<ReturnType<typeof startSentinel>> } = {};
  onShutdown(logger, async () => {
    await running.sentinel?.stop();
    etcd.close();
    await embedded?.stop();
  });
  const kubeConfig = o.kubeBrokerSelector
    ? loadKubeConfig({ kubeconfigPath: o.kubeconfig || undefined })
    : undefined;
  if (o.kubeBrokerSelector && !kubeConfig) {
    logger.info("not in a Kubernetes cluster and no --kubeconfig: the broker pod watcher is off");
  }
  running.sentinel = await startSentinel({
    ...(kubeConfig
      ? {
          podWatch: {
            kubeConfig,
            namespace: o.kubeNamespace || "default",
            labelSelector: o.kubeBrokerSelector,
          },
        }
      : {}),
    id: o.id,
    address: o.address,
    advertiseUrl: o.advertiseUrl,
    etcd,
    etcdPrefix: o.etcdPrefix,
    heartbeatTtlSeconds: o.heartbeatTtl,
    electionTtlSeconds: o.electionTtl,
    virtualNodes: o.virtualNodes,
    defaultPartitions: o.defaultPartitions,
    snapshotEvery: o.snapshotEvery,
    forwardTimeoutMs: o.forwardTimeout,
    probeTimeoutMs: o.probeTimeout,
    ...(o.tlsCert && o.tlsKey
      ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsCa ? { caFile: o.tlsCa } : {}) } }
      : {}),
    interceptors: o.adminToken ? [tokenAuth({ token: o.adminToken, protectedMethods: PROTECTED })] : [],
    logger,
  });
}
