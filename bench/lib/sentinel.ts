import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Etcd3 } from "etcd3";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startSentinel, type Sentinel, type SentinelConfig } from "../../src/sentinel/sentinel.js";
import { waitFor } from "./wait.js";

export type SentinelClient = Client<typeof SentinelService>;

/** A gRPC (HTTP/2) client, the transport real clients use. */
export function sentinelClient(url: string): SentinelClient {
  return createClient(SentinelService, createGrpcTransport({ baseUrl: url }));
}

/**
 * A sentinel in the benchmark process (startSentinel, as test/helpers/in-process-sentinel.ts does),
 * leading on its own: resolves once it is the leader. Heartbeats last an hour so simulated brokers
 * (which send none) stay healthy for the whole run.
 */
export async function startLeaderSentinel(
  etcd: Etcd3,
  overrides: Partial<SentinelConfig> = {},
): Promise<{ sentinel: Sentinel; client: SentinelClient }> {
  const sentinel = await startSentinel({
    id: "bench-sentinel",
    address: "127.0.0.1:0",
    etcd,
    etcdPrefix: "/goulette",
    heartbeatTtlSeconds: 3600,
    electionTtlSeconds: 5,
    virtualNodes: 150,
    defaultPartitions: 3,
    snapshotEvery: 10_000,
    forwardTimeoutMs: 5_000,
    probeTimeoutMs: 500,
    logger: silentLogger(),
    ...overrides,
  });
  try {
    await waitFor(() => sentinel.plane.isLeader, { timeoutMs: 20_000, what: "the sentinel to lead" });
  } catch (err) {
    await sentinel.stop();
    throw err;
  }
  return { sentinel, client: sentinelClient(sentinel.url) };
}

/**
 * Registers `count` simulated brokers (ids broker-000…) through the RPC, all at `address` (a stub broker
 * that acknowledges the leader's role notifications).
 */
export async function registerBrokers(
  client: SentinelClient,
  count: number,
  address: string,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const brokerId = `broker-${String(i).padStart(3, "0")}`;
    await client.registerBroker({ brokerId, address });
    ids.push(brokerId);
  }
  return ids;
}
