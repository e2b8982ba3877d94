import { brokerOptionSchema } from "../config/broker-options.js";
import { identityFromOptions } from "../config/identity-options.js";
import { formatHelp, loadOptions } from "../config/options.js";
import { advertisedListeners } from "../broker/advertised-listeners.js";
import { RECORD_OVERHEAD_BYTES, startBroker, type Broker } from "../broker/broker.js";
import { corsFromOptions } from "../config/cors-options.js";
import { rpcLimitsFromOptions } from "../config/rpc-limit-options.js";
import { createLogger } from "../observability/logger.js";
import { assertAddressFree } from "./address-check.js";
import { onShutdown } from "./shutdown.js";
import { applyV8Tuning } from "./v8-tuning.js";

const USAGE =
  "Usage: goulette broker [options]\n\nRuns a broker: stores partition logs, serves produce and pull, replicates.";

const HOUR_MS = 3_600_000;

export async function runBroker(argv: string[]): Promise<void> {
  const { values: o, help, sources } = loadOptions(brokerOptionSchema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, brokerOptionSchema));
    return;
  }
  // Before the first request is served: V8 reads the flag when it decides where to allocate.
  applyV8Tuning({ pretenuring: o.v8Pretenuring });
  // A request must hold at least one record of the largest payload.
  const rpcLimits = rpcLimitsFromOptions(o, {
    minRequestBytes: o.maxMessageBytes + RECORD_OVERHEAD_BYTES,
    minRequestBytesReason: "a SendMessage of one largest message needs (--max-message-bytes + 64 KiB)",
  });
  const cors = corsFromOptions(o);
  const listeners = advertisedListeners(o.advertiseListeners, o.id);
  // Before anything starts: a node that could authenticate nobody stops here with a sentence.
  const identity = identityFromOptions(o, {
    sharedToken: o.authToken,
    sharedFlag: "--auth-token",
    mutualTls: Boolean(o.tlsCert && o.tlsCa),
  });
  // A taken --address is one line naming its holder, before anything starts.
  await assertAddressFree(o.address, `broker ${o.id}`, "--address");
  const logger = createLogger({ level: o.logLevel as "info", base: { broker: o.id } });
  logger.info({ sources }, "starting broker");
  const running: { broker?: Broker } = {};
  onShutdown(logger, async () => {
    await running.broker?.stop();
  });
  running.broker = await startBroker({
    id: o.id,
    address: o.address,
    advertiseAddress: o.advertiseAddress,
    advertiseListeners: listeners,
    dataDir: o.dataDir,
    sentinels: o.sentinels,
    fsync: o.fsync as "always" | "interval",
    fsyncIntervalMs: o.fsyncInterval,
    intervalSync: o.intervalSync as "volume" | "file",
    segmentBytes: o.segmentBytes,
    ...(o.retentionHours > 0 ? { retentionMs: Math.round(o.retentionHours * HOUR_MS) } : {}),
    ...(o.retentionBytes > 0 ? { retentionBytes: o.retentionBytes } : {}),
    maxMessageBytes: o.maxMessageBytes,
    keepAliveIntervalMs: o.keepaliveInterval,
    replicaLagMaxMs: o.replicaLagMax,
    scrubIntervalMs: o.scrubInterval,
    scrubBytesPerSecond: o.scrubBytesPerSecond,
    minInsyncReplicas: o.minInsyncReplicas,
    maxConsumerLagSeries: o.maxConsumerLagSeries,
    replicationSessions: o.replicationSessions,
    replicationFrames: o.replicationFrames,
    grpcFastPath: o.grpcFastPath,
    ...(o.maxOpenSegmentFiles > 0 ? { maxOpenSegmentFiles: o.maxOpenSegmentFiles } : {}),
    segmentFileIdleTimeoutMs: o.segmentFileIdleTimeout,
    maxPartitions: o.maxPartitions,
    maxConsumerGroups: o.maxConsumerGroups,
    unreadResponsesTimeoutMs: o.unreadResponsesTimeout,
    rpcLimits,
    ...(cors ? { cors } : {}),
    ...(o.authToken ? { authToken: o.authToken } : {}),
    ...identity,
    ...(o.tlsCert && o.tlsKey
      ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsCa ? { caFile: o.tlsCa } : {}) } }
      : {}),
    logger,
  });
}
