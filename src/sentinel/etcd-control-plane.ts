import type { Etcd3 } from "etcd3";
import type { Keyspace } from "../coordination/keyspace.js";
import { LeaderElection } from "../coordination/leader-election.js";
import { OplogStore } from "../oplog/oplog-store.js";
import { ControlPlane, type ControlPlaneOptions } from "./control-plane.js";

export interface EtcdControlPlaneOptions extends Omit<ControlPlaneOptions, "log" | "leadership"> {
  /** This sentinel's advertised RPC URL (in the election value, with the id). */
  url: string;
  etcd: Etcd3;
  /** The client the leader election runs on (its lease renewals must not queue behind bulk calls); default `etcd`. */
  livenessEtcd?: Etcd3;
  keys: Keyspace;
  /** Election lease TTL in seconds. */
  electionTtlSeconds: number;
}

/** A ControlPlane whose operation log and leadership live in etcd (what a sentinel runs). */
export function createEtcdControlPlane(options: EtcdControlPlaneOptions): ControlPlane {
  const { url, etcd, livenessEtcd, keys, electionTtlSeconds, ...rest } = options;
  return new ControlPlane({
    ...rest,
    log: new OplogStore(etcd, keys),
    leadership: new LeaderElection({
      etcd: livenessEtcd ?? etcd,
      keys,
      id: options.id,
      url,
      ttlSeconds: electionTtlSeconds,
      logger: options.logger.child({ part: "election" }),
    }),
  });
}
