import type { LatencySummary } from "./stats.js";

/** Names of topics a load run asks for: a fixed list, or `<prefix><i>` for i in [0, count), at random. */
export type TopicSet = string[] | { prefix: string; count: number };

/** What one load run sends. */
export type LoadTarget =
  /**
   * SentinelService.GetBrokers over gRPC (HTTP/2): by connect-node's client (createGrpcTransport, the
   * default) or by the SDK's sentinel transport (src/client/node.ts: the lean unary client).
   */
  | {
      kind: "getBrokers";
      url: string;
      client?: "connect" | "lean";
      topics: TopicSet;
      replicaCount: number;
      partitions: number;
      /** When set, every request names a new topic `<uniquePrefix>-<n>` (creates it: a write). */
      uniquePrefix?: string;
    }
  /** A raw etcd3 get of one of `keys` (value as bytes, no decoding). */
  | { kind: "etcdGet"; endpoint: string; keys: string[] };

export interface LoadSpec {
  target: LoadTarget;
  /** Requests in flight at any time (closed loop: each finished request starts the next). */
  concurrency: number;
  /** Unmeasured warm-up first (JIT, connections), this long or `warmupRequests`, whichever comes first. */
  warmupMs: number;
  warmupRequests: number;
  /** The measured phase stops at this duration or this many requests, whichever comes first. */
  durationMs: number;
  maxRequests: number;
  /** Per-call deadline (ms). */
  callTimeoutMs: number;
}

export interface LoadResult extends LatencySummary {
  /** Requests completed (successfully or not) in the measured phase. */
  requests: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  /** Successful requests per second. */
  rps: number;
  /** CPU time of the load worker's thread during the measured phase (ms): is the client the limit? */
  clientCpuMs: number;
}

export type WorkerRequest = { id: number; spec: LoadSpec } | { id: number; close: true };
export type WorkerReply = { id: number; result?: LoadResult; error?: string };
