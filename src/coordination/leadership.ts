import type { Candidate } from "./leader-election.js";

/**
 * What the control plane needs of leader election (raft's transport-free view of it): whether this
 * sentinel leads, the fence its appends carry, and events when that changes. The etcd implementation is
 * `LeaderElection`; tests use an in-memory twin (test/helpers/memory-control-plane.ts).
 */
export interface Leadership {
  readonly isLeader: boolean;
  /** The key that fences this leader's appends; undefined when not leader. */
  readonly fenceKey: string | undefined;
  /** The current leader's URL (undefined while there is none). */
  readonly leaderUrl: string | undefined;
  /** Starts campaigning. */
  start(): Promise<void>;
  /** Stops campaigning; a leader resigns. */
  stop(): Promise<void>;
  /** Every campaigning sentinel, the leader first. */
  candidates(): Promise<Candidate[]>;
  on(event: "elected", listener: (fenceKey: string) => void): unknown;
  on(event: "deposed", listener: (reason: string) => void): unknown;
}
