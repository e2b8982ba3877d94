import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBroker, type Broker, type BrokerConfig } from "../../src/broker/broker.js";
import { silentLogger } from "../../src/observability/logger.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export interface InProcessBroker {
  broker: Broker;
  /** Its data directory (a fresh temp dir, removed by stop()). */
  dataDir: string;
  /** Stops the broker and removes its data. */
  stop(): Promise<void>;
}

/**
 * A broker in the test process, registered with `sentinelUrl`: small segments, interval fsync, silent
 * (use broker-process.ts when a test must kill it). Resolves once the sentinels list it.
 */
export async function startInProcessBroker(
  sentinelUrl: string,
  id: string,
  overrides: Partial<BrokerConfig> = {},
): Promise<InProcessBroker> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `goulette-${id}-`));
  let broker: Broker;
  try {
    broker = await startBroker({
      id,
      address: `127.0.0.1:${await freePort()}`,
      dataDir,
      sentinels: [sentinelUrl],
      fsync: "interval",
      fsyncIntervalMs: 200,
      segmentBytes: 1024 * 1024,
      maxMessageBytes: 1024 * 1024,
      keepAliveIntervalMs: 1_000,
      replicaLagMaxMs: 5_000,
      logger: silentLogger(),
      ...overrides,
    });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  await waitFor(() => broker.ready, { what: `${id} to register` });
  return {
    broker,
    dataDir,
    stop: async () => {
      await broker.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
