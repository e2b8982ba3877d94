import path from "node:path";
import { identityFromOptions } from "../config/identity-options.js";
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, type Etcd3 } from "etcd3";
import { createEtcdClient } from "../coordination/etcd-client.js";
import { startEmbeddedEtcd, type EmbeddedEtcd } from "../coordination/embedded-etcd.js";
import { createKeyspace, type Keyspace } from "../coordination/keyspace.js";
import { loadOptions, formatHelp } from "../config/options.js";
import { InvalidArgumentError, errorMessage } from "../errors.js";
import { corsFromOptions } from "../config/cors-options.js";
import { rpcLimitsFromOptions } from "../config/rpc-limit-options.js";
import { sentinelOptionSchema } from "../config/sentinel-options.js";
import { createLogger } from "../observability/logger.js";
import { loadKubeConfig } from "../sentinel/pod-watcher.js";
import { listenerHostsLookup } from "../sentinel/listener-hosts.js";
import { startSentinel } from "../sentinel/sentinel.js";
import { assertAddressFree } from "./address-check.js";
import { onShutdown } from "./shutdown.js";

const USAGE =
  "Usage: goulette sentinel [options]\n\nRuns a sentinel (control plane) against etcd, or with an embedded etcd.";

export async function runSentinel(argv: string[]): Promise<void> {
  const { values: o, help, sources } = loadOptions(sentinelOptionSchema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, sentinelOptionSchema));
    return;
  }
  const rpcLimits = rpcLimitsFromOptions(o);
  const cors = corsFromOptions(o);
  listenerHostsLookup(o.listenerHosts); // a malformed --listener-hosts fails here, before etcd starts
  // Before anything starts: a node that could authenticate nobody stops here with a sentence.
  const identity = identityFromOptions(o, {
    sharedToken: o.adminToken,
    sharedFlag: "--admin-token",
    mutualTls: Boolean(o.tlsCert && o.tlsCa),
  });
  // A taken --address is one line naming its holder, before etcd is started or contacted.
  await assertAddressFree(o.address, `sentinel ${o.id}`, "--address");
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
  const etcdOptions = {
    endpoints,
    ...(o.etcdTlsCa ? { caFile: o.etcdTlsCa } : {}),
    ...(o.etcdTlsCert ? { certFile: o.etcdTlsCert } : {}),
    ...(o.etcdTlsKey ? { keyFile: o.etcdTlsKey } : {}),
    ...(o.etcdUsername ? { username: o.etcdUsername, password: o.etcdPassword } : {}),
  };
  const etcd = createEtcdClient(etcdOptions);
  const livenessEtcd = createEtcdClient(etcdOptions, "liveness");
  await checkEtcdCredentials(etcd, createKeyspace(o.etcdPrefix), Boolean(o.etcdUsername));
  const running: { sentinel?: Awaited<ReturnType<typeof startSentinel>> } = {};
  onShutdown(logger, async () => {
    await running.sentinel?.stop();
    etcd.close();
    livenessEtcd.close();
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
    livenessEtcd,
    etcdPrefix: o.etcdPrefix,
    heartbeatTtlSeconds: o.heartbeatTtl,
    electionTtlSeconds: o.electionTtl,
    virtualNodes: o.virtualNodes,
    defaultPartitions: o.defaultPartitions,
    snapshotEvery: o.snapshotEvery,
    forwardTimeoutMs: o.forwardTimeout,
    probeTimeoutMs: o.probeTimeout,
    leaderBalanceIntervalMs: o.leaderBalanceInterval,
    maxPendingTopicCreations: o.maxPendingTopicCreations,
    maxPendingRolePushes: o.maxPendingRolePushes,
    verdictLimits: { maxHoldMs: o.suspectVerdictMaxHold },
    maxGroupMembers: o.maxGroupMembers,
    listenerHosts: o.listenerHosts,
    rpcLimits,
    ...(cors ? { cors } : {}),
    ...(o.tlsCert && o.tlsKey
      ? {
          tls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsCa ? { caFile: o.tlsCa } : {}) },
          // Outgoing calls (to the leader, to brokers) present the same certificate, which must allow
          // client auth, and trust --tls-ca when given (else Node's store, NODE_EXTRA_CA_CERTS included).
          clientTls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsCa ? { caFile: o.tlsCa } : {}) },
        }
      : {}),
    ...(o.adminToken ? { adminToken: o.adminToken } : {}),
    ...identity,
    logger,
  });
}

/**
 * Fails fast, with a sentence, when etcd refuses this sentinel's credentials or certificates: recovery
 * would otherwise retry forever and the sentinel never become ready. An etcd that is merely
 * unreachable is left to the recovery loop (it may be starting too).
 */
async function checkEtcdCredentials(etcd: Etcd3, keys: Keyspace, withUser: boolean): Promise<void> {
  try {
    await etcd.get(keys.head).string();
  } catch (err) {
    const message = errorMessage(err);
    if (err instanceof EtcdAuthenticationFailedError) {
      throw new InvalidArgumentError(
        `etcd refused the user and password (--etcd-username, --etcd-password): ${message}`,
      );
    }
    if (err instanceof EtcdPermissionDeniedError) {
      throw new InvalidArgumentError(
        `the etcd user may not read ${keys.prefix}/ (grant it a role on that prefix): ${message}`,
      );
    }
    if (!withUser && /user name is empty/.test(message)) {
      throw new InvalidArgumentError("etcd has authentication on: pass --etcd-username and --etcd-password");
    }
    // grpc-js reports a refused or untrusted certificate as "unavailable"; it is configuration, not an outage.
    const tls = /alert [a-z ]+|unable to verify [a-z ]+|self[- ]signed [a-z ]+|certificate has expired/i.exec(
      message,
    );
    if (tls) {
      throw new InvalidArgumentError(
        `TLS to etcd failed (${tls[0].trim()}): check --etcd-tls-ca, --etcd-tls-cert and --etcd-tls-key`,
      );
    }
  }
}
