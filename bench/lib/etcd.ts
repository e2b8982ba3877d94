import type { ChildProcess } from "node:child_process";
import type { Etcd3, IOptions } from "etcd3";
import { startEtcd as startTestEtcd } from "../../test/helpers/etcd.js";
import { trackChild, trackDir } from "./children.js";

/**
 * A real etcd server for benchmarks: the integration tests' (test/helpers/etcd.ts: Debian's etcd-server
 * on free loopback ports, a temporary data dir on the same disk), plus extra flags (some benchmarks raise
 * etcd's request limits, and say so), clients configured as the sentinel's, and cleanup on exit.
 */
export interface BenchEtcd {
  /** Client URL, e.g. http://127.0.0.1:23790 */
  readonly endpoint: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /**
   * A fresh client configured as the sentinel's (createEtcdClient: a 5 s deadline on every unary call),
   * plus `options` (e.g. grpcOptions); closed by stop().
   */
  client(options?: Partial<IOptions>): Etcd3;
  /** Kills etcd and removes the data dir. */
  stop(): Promise<void>;
}

export interface BenchEtcdOptions {
  /** Extra etcd flags, e.g. ["--max-txn-ops=100000"]. */
  extraArgs?: string[];
}

export async function startEtcd(options: BenchEtcdOptions = {}): Promise<BenchEtcd> {
  let untrackDir = () => {};
  const etcd = await startTestEtcd({
    extraArgs: options.extraArgs ?? [],
    dirPrefix: "goulette-bench-etcd-",
    // Tracked from the spawn on: a benchmark interrupted while etcd starts leaves nothing behind.
    onSpawn: (child, dataDir) => {
      trackChild(child);
      untrackDir = trackDir(dataDir);
    },
  });
  return {
    endpoint: etcd.endpoint,
    dataDir: etcd.dataDir,
    process: etcd.process,
    client: (extra = {}) =>
      etcd.client({
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 5_000 }),
        ...extra,
      }),
    async stop() {
      await etcd.stop();
      untrackDir();
    },
  };
}
