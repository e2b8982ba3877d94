import { readFileSync } from "node:fs";
import { handleWhen, noop, retry } from "cockatiel";
import { Etcd3, isRecoverableError, type IOptions } from "etcd3";
import { InvalidArgumentError } from "../errors.js";

export interface EtcdClientOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]; bare host:port means http. */
  endpoints: string[];
  /** PEM files for TLS to etcd (https endpoints). */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** etcd authentication. */
  username?: string;
  password?: string;
  /** Per-call deadline in milliseconds (default 5 s) so a hung etcd fails calls instead of hanging them. */
  callTimeoutMs?: number;
}

export function normaliseEndpoints(endpoints: readonly string[]): string[] {
  if (endpoints.length === 0) throw new InvalidArgumentError("no etcd endpoints given (--etcd-endpoints)");
  return endpoints.map((endpoint) => (/^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`));
}

/**
 * What a client carries. "bulk": the operation log, snapshots, groups, everything else (etcd3's
 * defaults: three attempts, and a circuit breaker per host that opens for 5 s after three consecutive
 * failures). "liveness": heartbeats and the leader election, on a connection of its own and without a
 * circuit breaker, so that neither a slow bulk transaction ahead of it on the HTTP/2 connection nor a
 * breaker that bulk timeouts opened can delay a lease renewal (docs/architecture.md, "Overload").
 */
export type EtcdClientRole = "bulk" | "liveness";

export function createEtcdClient(options: EtcdClientOptions, role: EtcdClientRole = "bulk"): Etcd3 {
  const config: IOptions = {
    hosts: normaliseEndpoints(options.endpoints),
    defaultCallOptions: (context) =>
      // Watches and lease keepalives are long-lived streams: no deadline for them.
      context.isStream ? {} : { deadline: Date.now() + (options.callTimeoutMs ?? 5_000) },
  };
  if (role === "liveness") {
    // grpc-js shares one connection between channels to the same target unless told otherwise.
    config.grpcOptions = { "grpc.use_local_subchannel_pool": 1 };
    config.faultHandling = {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
    };
  }
  if (options.caFile || options.certFile) {
    config.credentials = {
      rootCertificate: options.caFile ? readFileSync(options.caFile) : Buffer.alloc(0),
      ...(options.certFile ? { certChain: readFileSync(options.certFile) } : {}),
      ...(options.keyFile ? { privateKey: readFileSync(options.keyFile) } : {}),
    };
  }
  if (options.username) config.auth = { username: options.username, password: options.password ?? "" };
  return new Etcd3(config);
}
