import type { TestEtcd } from "./etcd.js";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startSentinel, type Sentinel, type SentinelConfig } from "../../src/sentinel/sentinel.js";

export interface InProcessSentinel {
  sentinel: Sentinel;
  client: Client<typeof SentinelService>;
  stop(): Promise<void>;
}

/** A sentinel in the test process (fast to start; use sentinel-process.ts when a test must kill it). */
export async function startInProcessSentinel(
  etcd: TestEtcd,
  id: string,
  overrides: Partial<SentinelConfig> = {},
): Promise<InProcessSentinel> {
  const client = etcd.client();
  const sentinel = await startSentinel({
    id,
    address: "127.0.0.1:0",
    etcd: client,
    etcdPrefix: "/goulette",
    heartbeatTtlSeconds: 30,
    electionTtlSeconds: 2,
    virtualNodes: 150,
    defaultPartitions: 3,
    snapshotEvery: 10_000,
    forwardTimeoutMs: 5_000,
    probeTimeoutMs: 500,
    logger: silentLogger(),
    ...overrides,
  });
  return {
    sentinel,
    client: createClient(SentinelService, createGrpcTransport({ baseUrl: sentinel.url })),
    stop: () => sentinel.stop(),
  };
}
