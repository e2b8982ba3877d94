import type { AssignedPartition, TopicPartition } from "./topic-partition.js";

/**
 * What the clients report while they work around failures. Pass `onEvent` to see them (the CLI prints
 * them with --verbose); nothing here needs handling, the clients recover by themselves.
 */
export type ClientEvent =
  /** A call to a broker failed at the connection level; it is reported to the sentinels. */
  | {
      type: "broker-unreachable";
      topic: string;
      brokerId: string;
      address: string;
      error: Error;
    }
  /** A new assignment of the topic arrived from the sentinels (after a failure, or the first one). */
  | {
      type: "assignment";
      topic: string;
      version: bigint;
      /** Partition → leader broker id. */
      leaders: string[];
      /** Brokers reported unreachable with the GetBrokers request that returned this. */
      reported: string[];
    }
  /** The sentinel in use failed; the client moved to the next one of its list. */
  | { type: "sentinel-failover"; from: string; to: string; error: Error }
  /** Records of a partition will be sent again (after a retryable error). */
  | { type: "retry"; topic: string; partition: number; records: number; reason: string }
  /** A consumer's position moved without consuming (the log no longer holds it, or never did). */
  | { type: "offset-reset"; topic: string; partition: number; from: number; to: number; reason: string }
  /** A background step failed and will be tried again (metadata refresh, offset commit...). */
  | { type: "error"; topic: string; what: string; error: Error }
  /** The consumer joined its group (first join). */
  | { type: "joined"; group: string; memberId: string; generation: number }
  /** The consumer joined its group again after it was removed from it (its partitions were lost). */
  | {
      type: "rejoined";
      group: string;
      memberId: string;
      previousMemberId: string;
      generation: number;
      /** Why the previous membership ended. */
      reason: string;
    }
  /** The group gave the consumer these partitions: it reads them from their committed offsets. */
  | { type: "assigned"; group: string; generation: number; partitions: AssignedPartition[] }
  /**
   * The consumer released these partitions to the group (a rebalance, or close()), after the
   * application finished their messages (or the wait ended) and their processed offsets were committed
   * (`committed` false when a commit failed: the next owner starts earlier, with duplicates).
   */
  | { type: "revoked"; group: string; generation: number; partitions: TopicPartition[]; committed: boolean }
  /**
   * The consumer stopped these partitions without committing: another member owns them now (a commit
   * was fenced, the session expired, or the member was removed). Their uncommitted messages will be
   * delivered again to the new owner.
   */
  | { type: "lost"; group: string; partitions: TopicPartition[]; reason: string }
  /**
   * The sentinels do not coordinate consumer groups (they predate them): the consumer reads every
   * partition of its topics without coordination, as static consumers do.
   */
  | { type: "uncoordinated"; group: string; reason: string };

/** Options shared by Producer, Consumer and Admin. */
export interface CommonClientOptions {
  /**
   * Sentinel URLs (`http://host:port`), or one comma-separated string. Any sentinel answers; when one
   * fails, the client moves to the next.
   */
  sentinels: readonly string[] | string;
  /** Bearer token, when the brokers and sentinels require one. */
  token?: string;
  /** Deadline of each sentinel call before trying the next sentinel (ms, default 5000). */
  sentinelTimeoutMs?: number;
  /**
   * The brokers' listener to dial, e.g. "external" from outside Kubernetes (see docs/client.md): the
   * sentinels answer with every broker's address on it, or fail with FAILED_PRECONDITION naming the
   * listeners a broker has. Default: the listener of the sentinel host the client calls (the sentinels'
   * --listener-hosts), else the brokers' default (internal) addresses.
   */
  listener?: string;
  /** Called for every ClientEvent. Must not throw. */
  onEvent?: (event: ClientEvent) => void;
  /** Aborting it closes the client at once, without flushing (like close({ flush: false })). */
  signal?: AbortSignal;
}

/** The sentinel list of the options, as URLs. */
export function sentinelList(sentinels: readonly string[] | string): string[] {
  const list = (typeof sentinels === "string" ? sentinels.split(",") : [...sentinels])
    .map((url) => url.trim())
    .filter((url) => url !== "");
  return list;
}

/** Calls `onEvent`, never letting a throwing listener break the client. */
export function emitter(onEvent: ((event: ClientEvent) => void) | undefined): (event: ClientEvent) => void {
  if (!onEvent) return () => undefined;
  return (event) => {
    try {
      onEvent(event);
    } catch {
      // A listener's bug must not stop message delivery.
    }
  };
}
