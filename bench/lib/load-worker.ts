import { performance } from "node:perf_hooks";
import { parentPort } from "node:worker_threads";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Etcd3 } from "etcd3";
import { createNodeTransport } from "../../src/client/node.js";
import type { ClientTransport } from "../../src/client/transport.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import type {
  LoadSpec,
  LoadResult,
  LoadTarget,
  TopicSet,
  WorkerReply,
  WorkerRequest,
} from "./load-protocol.js";
import { threadCpuMs } from "./cpu.js";
import { summariseLatencies } from "./stats.js";

/**
 * The load generator, in its own thread so the client's CPU does not share an event loop with an
 * in-process server: on this 2-core machine the server gets one core, the client the other.
 */

const grpcClients = new Map<string, Client<typeof SentinelService>>();
const etcdClients = new Map<string, Etcd3>();
/** The SDK's transport (lean unary client for sentinel reads), shared by every "lean" target. */
let sdkTransport: ClientTransport | undefined;
let unique = 0;
let seed = 0x9e3779b9;

/** xorshift32: cheap, deterministic topic picks (Math.random would do, this keeps runs repeatable). */
function random(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

function topicPicker(set: TopicSet): () => string {
  if (Array.isArray(set)) {
    if (set.length === 1) {
      const only = set[0] as string;
      return () => only;
    }
    return () => set[random(set.length)] as string;
  }
  return () => `${set.prefix}${random(set.count)}`;
}

function caller(target: LoadTarget, timeoutMs: number): () => Promise<unknown> {
  if (target.kind === "etcdGet") {
    let etcd = etcdClients.get(target.endpoint);
    if (!etcd) etcdClients.set(target.endpoint, (etcd = new Etcd3({ hosts: target.endpoint })));
    const client = etcd;
    const keys = target.keys;
    return () => client.get(keys[random(keys.length)] as string).buffer();
  }
  const key = `${target.client ?? "connect"} ${target.url}`;
  let client = grpcClients.get(key);
  if (!client) {
    const transport =
      target.client === "lean"
        ? (sdkTransport ??= createNodeTransport()).sentinel(target.url)
        : createGrpcTransport({ baseUrl: target.url });
    client = createClient(SentinelService, transport);
    grpcClients.set(key, client);
  }
  const c = client;
  const { replicaCount, partitions, uniquePrefix } = target;
  const pick = topicPicker(target.topics);
  const options = { timeoutMs };
  if (uniquePrefix !== undefined) {
    return () => c.getBrokers({ topic: `${uniquePrefix}-${unique++}`, replicaCount, partitions }, options);
  }
  return () => c.getBrokers({ topic: pick(), replicaCount, partitions }, options);
}

async function closedLoop(
  call: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  maxRequests: number,
  latencies: Float64Array | undefined,
): Promise<{ requests: number; errors: number; firstError?: string; elapsedMs: number }> {
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const begin = performance.now();
  const deadline = begin + durationMs;
  const loop = async () => {
    while (started < maxRequests && performance.now() < deadline) {
      const i = started++;
      const t0 = performance.now();
      try {
        await call();
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      if (latencies) latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return {
    requests: started,
    errors,
    elapsedMs: performance.now() - begin,
    ...(firstError ? { firstError } : {}),
  };
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const call = caller(spec.target, spec.callTimeoutMs);
  if (spec.warmupMs > 0 && spec.warmupRequests > 0) {
    await closedLoop(call, spec.concurrency, spec.warmupMs, spec.warmupRequests, undefined);
  }
  const latencies = new Float64Array(spec.maxRequests);
  const cpuBefore = threadCpuMs();
  const measured = await closedLoop(call, spec.concurrency, spec.durationMs, spec.maxRequests, latencies);
  return {
    clientCpuMs: threadCpuMs() - cpuBefore,
    ...summariseLatencies(latencies.subarray(0, measured.requests)),
    ...measured,
    rps: ((measured.requests - measured.errors) * 1000) / measured.elapsedMs,
  };
}

const port = parentPort;
if (!port) throw new Error("load-worker.js must run as a worker thread");
port.on("message", (message: WorkerRequest) => {
  if ("close" in message) {
    for (const etcd of etcdClients.values()) etcd.close();
    sdkTransport?.close();
    port.postMessage({ id: message.id } satisfies WorkerReply);
    port.close();
    return;
  }
  run(message.spec).then(
    (result) => port.postMessage({ id: message.id, result } satisfies WorkerReply),
    (err: unknown) =>
      port.postMessage({
        id: message.id,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      } satisfies WorkerReply),
  );
});
