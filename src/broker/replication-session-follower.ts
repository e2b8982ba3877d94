import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { AsyncQueue } from "../common/async-queue.js";
import {
  BrokerService,
  ReplicateSessionRequestSchema,
  SessionFetchSchema,
  type ReplicateSessionRequest,
  type SessionFetch,
  type SessionPartitionAnswer,
} from "../gen/goulette/v1/broker_pb.js";
import { grpcStream } from "../client/grpc-stream-client.js";
import type { Logger } from "../observability/logger.js";
import type { FetcherHandle, Partition, ReplicaInfo } from "./partition.js";
import { backoffMs, cut, startFetcher, store, type FollowerOptions } from "./replication-follower.js";
import { needsAcknowledgement } from "./replication-session-state.js";

export interface FollowerSessionsOptions extends FollowerOptions {
  /** Sessions open now, as a follower (the goulette_broker_replication_sessions gauge). */
  onOpen?: () => void;
  onClose?: () => void;
}

/**
 * The follower's side of replication: one ReplicateSession stream per leader broker, carrying every
 * partition this broker follows from it. A partition joins its leader's session when it becomes a
 * follower (Partition calls start() as it would start a per-partition fetcher) and leaves it when its
 * role changes; a session with no partitions closes. A leader that answers UNIMPLEMENTED (a broker
 * older than ReplicateSession) is served with one Replicate stream per partition instead.
 */
export class FollowerSessions {
  readonly #sessions = new Map<string, FollowerSession>();

  constructor(private readonly options: FollowerSessionsOptions) {}

  /** Starts replicating `p` from its current leader; stop() ends it (and waits for a write in progress). */
  start(p: Partition): FetcherHandle {
    const leader = p.leader;
    if (p.role !== "follower" || leader === undefined) return { stop: () => Promise.resolve() };
    const key = `${leader.brokerId}@${leader.address}`;
    let session = this.#sessions.get(key);
    if (session === undefined) {
      const created = new FollowerSession(this.options, leader, () => {
        if (this.#sessions.get(key) === created) this.#sessions.delete(key);
      });
      this.#sessions.set(key, created);
      session = created;
    }
    return session.add(p);
  }

  /** Leaders with a session (or per-partition fallback streams) now. */
  get size(): number {
    return this.#sessions.size;
  }
}

interface Member {
  readonly p: Partition;
  /**
   * pending: to be started on the next connection; joined: started on the current one; waiting: backing
   * off after the leader refused it (or storing an answer failed); legacy: a per-partition fetcher runs.
   */
  state: "pending" | "joined" | "waiting" | "legacy";
  /** Offset-table version stored from this session's answers (0 before the first). */
  offsetsVersion: bigint;
  failures: number;
  applying: Promise<void> | undefined;
  retry: NodeJS.Timeout | undefined;
  fetcher: FetcherHandle | undefined;
}

class FollowerSession {
  readonly #members = new Map<string, Member>();
  readonly #abort = new AbortController();
  readonly #logger: Logger;
  #outbound: AsyncQueue<ReplicateSessionRequest> | undefined;
  #running: Promise<void> | undefined;
  #legacy = false;

  constructor(
    private readonly options: FollowerSessionsOptions,
    private readonly leader: ReplicaInfo,
    private readonly onClosed: () => void,
  ) {
    this.#logger = options.logger.child({ leader: leader.brokerId });
  }

  add(p: Partition): FetcherHandle {
    const member: Member = {
      p,
      state: "pending",
      offsetsVersion: 0n,
      failures: 0,
      applying: undefined,
      retry: undefined,
      fetcher: undefined,
    };
    this.#members.set(p.key, member);
    if (this.#legacy) {
      member.state = "legacy";
      member.fetcher = startFetcher(this.options, p);
    } else if (this.#outbound !== undefined) {
      this.#join(member, this.#outbound);
    }
    this.#running ??= this.#run();
    return { stop: () => this.#remove(member) };
  }

  async #remove(member: Member): Promise<void> {
    const key = member.p.key;
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    clearTimeout(member.retry);
    if (member.state === "joined") {
      this.#outbound?.push(
        create(ReplicateSessionRequestSchema, {
          removed: [{ topic: member.p.topic, partition: member.p.partition }],
        }),
      );
    }
    await member.fetcher?.stop();
    // An answer being stored must land before the partition changes role (the caller's next step).
    await member.applying;
    if (this.#members.size === 0) await this.#close();
  }

  async #close(): Promise<void> {
    this.onClosed();
    this.#abort.abort();
    await this.#running;
  }

  #join(member: Member, outbound: AsyncQueue<ReplicateSessionRequest>): void {
    member.state = "joined";
    member.offsetsVersion = 0n;
    outbound.push(create(ReplicateSessionRequestSchema, { fetches: [this.#fetch(member, true)] }));
  }

  #fetch(member: Member, start: boolean): SessionFetch {
    const p = member.p;
    return create(SessionFetchSchema, {
      topic: p.topic,
      partition: p.partition,
      fetchOffset: BigInt(p.log.logEndOffset),
      epoch: BigInt(p.epoch),
      start,
      leaderEpochs: start
        ? p.epochs.entries.map((e) => ({ epoch: BigInt(e.epoch), startOffset: BigInt(e.startOffset) }))
        : [],
      offsetsVersion: member.offsetsVersion,
      logStartOffset: BigInt(p.log.logStartOffset),
    });
  }

  // ---- the connection ------------------------------------------------------------------------------

  async #run(): Promise<void> {
    this.options.onOpen?.();
    let failures = 0;
    try {
      while (!this.#abort.signal.aborted && !this.#legacy) {
        try {
          await this.#connect();
          failures = 0;
        } catch (err) {
          if (this.#abort.signal.aborted) break;
          if (err instanceof ConnectError && err.code === Code.Unimplemented) {
            this.#fallBack();
            break;
          }
          failures++;
          // The first failures are expected around role changes (leader not ready yet); say more later.
          const level = failures > 20 && failures % 20 === 1 ? "warn" : "debug";
          this.#logger[level]({ err: err, failures }, "replication session failed; reconnecting");
        }
        await sleep(backoffMs(failures), undefined, { signal: this.#abort.signal }).catch(() => undefined);
      }
    } finally {
      this.options.onClose?.();
    }
  }

  async #connect(): Promise<void> {
    if (!this.leader.address) throw new Error(`the address of leader ${this.leader.brokerId} is unknown`);
    // A partition is started again from its log end: writes of the previous connection land first.
    await Promise.allSettled([...this.#members.values()].map((m) => m.applying));
    const streamAbort = new AbortController();
    const onAbort = () => streamAbort.abort();
    this.#abort.signal.addEventListener("abort", onAbort, { once: true });
    const stall = setTimeout(() => streamAbort.abort(), this.options.stallTimeoutMs);
    const outbound = new AsyncQueue<ReplicateSessionRequest>();
    const fetches: SessionFetch[] = [];
    for (const member of this.#members.values()) {
      if (member.state !== "pending") continue;
      member.state = "joined";
      member.offsetsVersion = 0n;
      fetches.push(this.#fetch(member, true));
    }
    outbound.push(
      create(ReplicateSessionRequestSchema, {
        followerId: this.options.brokerId,
        fetches,
        frameFormat: this.options.frameFormat,
      }),
    );
    this.#outbound = outbound;
    const acks = new AckBatch(outbound);
    try {
      const options = { signal: streamAbort.signal, headers: this.options.headers };
      const sessions = this.options.sessions?.(this.leader.address);
      const responses = sessions
        ? grpcStream(sessions, BrokerService.method.replicateSession, outbound, options)
        : createClient(BrokerService, this.options.transport(this.leader.address)).replicateSession(
            outbound,
            options,
          );
      for await (const res of responses) {
        stall.refresh();
        if (this.#abort.signal.aborted) return;
        // A keep-alive is answered at once (that shows the leader this follower lives); partitions are
        // acknowledged one by one as their writes finish, so a slow one holds up no other.
        if (res.partitions.length === 0) outbound.push(create(ReplicateSessionRequestSchema, {}));
        for (const answer of res.partitions) this.#store(answer, acks);
      }
    } finally {
      clearTimeout(stall);
      this.#abort.signal.removeEventListener("abort", onAbort);
      this.#outbound = undefined;
      outbound.end();
      streamAbort.abort();
      for (const member of this.#members.values()) if (member.state === "joined") member.state = "pending";
    }
  }

  /** Stores one partition's answer (after the previous one of that partition) and acknowledges it. */
  #store(answer: SessionPartitionAnswer, acks: AckBatch): void {
    const member = this.#members.get(`${answer.topic}#${answer.partition}`);
    if (member === undefined || member.state !== "joined") return;
    if (answer.errorCode !== 0 || answer.data === undefined) {
      this.#refused(member, answer);
      return;
    }
    const p = member.p;
    const current = p.leader;
    // The partition moved on (its role change stops this member next): store nothing more.
    if (
      p.role !== "follower" ||
      current?.brokerId !== this.leader.brokerId ||
      current.address !== this.leader.address
    ) {
      return;
    }
    const data = answer.data;
    const write = async () => {
      if (data.truncateTo !== undefined) {
        await cut(p, Number(data.truncateTo), this.#logger.child({ partition: p.key }));
      } else {
        await store(p, data);
        member.offsetsVersion = data.offsetsVersion;
      }
    };
    const work = (member.applying ?? Promise.resolve()).then(write).then(
      () => {
        member.failures = 0;
        if (this.#members.get(p.key) === member && member.state === "joined" && needsAcknowledgement(data)) {
          acks.add(this.#fetch(member, false));
        }
      },
      (err: unknown) => {
        if (this.#members.get(p.key) !== member) return;
        this.#logger.warn({ partition: p.key, err: err }, "storing replicated records failed");
        this.#outbound?.push(
          create(ReplicateSessionRequestSchema, { removed: [{ topic: p.topic, partition: p.partition }] }),
        );
        this.#retryLater(member);
      },
    );
    member.applying = work;
    void work.finally(() => {
      if (member.applying === work) member.applying = undefined;
    });
  }

  /** The leader took the partition out of the session: start it again after a back-off. */
  #refused(member: Member, answer: SessionPartitionAnswer): void {
    const level = member.failures >= 20 && member.failures % 20 === 0 ? "warn" : "debug";
    this.#logger[level](
      {
        partition: member.p.key,
        code: Code[answer.errorCode],
        err: answer.errorMessage,
        failures: member.failures,
      },
      "the leader refused a partition of the replication session; retrying",
    );
    this.#retryLater(member);
  }

  #retryLater(member: Member): void {
    member.state = "waiting";
    member.failures++;
    member.retry = setTimeout(() => {
      member.retry = undefined;
      if (this.#members.get(member.p.key) !== member || member.state !== "waiting") return;
      if (this.#outbound !== undefined) this.#join(member, this.#outbound);
      else member.state = "pending";
    }, backoffMs(member.failures));
  }

  /** The leader predates ReplicateSession: one Replicate stream per partition, as before. */
  #fallBack(): void {
    this.#legacy = true;
    this.#logger.info(
      { partitions: this.#members.size },
      "the leader does not serve ReplicateSession (an older broker); one Replicate stream per partition",
    );
    for (const member of this.#members.values()) {
      clearTimeout(member.retry);
      member.state = "legacy";
      member.fetcher = startFetcher(this.options, member.p);
    }
  }
}

/** Acknowledgements finished in the same turn of the event loop go out as one message. */
class AckBatch {
  #fetches: SessionFetch[] = [];

  constructor(private readonly outbound: AsyncQueue<ReplicateSessionRequest>) {}

  add(fetch: SessionFetch): void {
    if (this.#fetches.length === 0) setImmediate(() => this.#flush());
    this.#fetches.push(fetch);
  }

  #flush(): void {
    const fetches = this.#fetches;
    this.#fetches = [];
    this.outbound.push(create(ReplicateSessionRequestSchema, { fetches }));
  }
}
