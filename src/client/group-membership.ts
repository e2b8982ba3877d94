import { Code, ConnectError } from "@connectrpc/connect";
import { GouletteError } from "../errors.js";
import type { GroupHeartbeatResponse, MemberAssignment } from "../gen/goulette/v1/group_pb.js";
import { GenerationGate } from "./assignment-diff.js";
import { backoffDelay, sleep } from "./backoff.js";
import { AbortedError, NoSentinelReachableError, toClientError } from "./errors.js";
import type { ClientEvent } from "./events.js";
import type { SentinelPool } from "./sentinel-pool.js";
import { sortedPartitions, type TopicPartition } from "./topic-partition.js";

/** What the membership asks of the consumer it serves. */
export interface MembershipHost {
  /** The partitions consumed now: started and not yet released (sent with every heartbeat). */
  owned(): TopicPartition[];
  /** An assignment to apply (already checked: this member's, not older than the last one applied). */
  apply(assignment: MemberAssignment): void;
  /** The group no longer knows this member: every partition is lost (uncommitted). */
  membershipLost(reason: string): void;
  /** A heartbeat was answered: the session is alive. */
  answered(): void;
  /** The consumer cannot be a member (a join refused for good). */
  fatal(error: GouletteError): void;
  /** The sentinels do not serve consumer groups at all. */
  uncoordinated(reason: string): void;
}

export interface GroupMembershipOptions {
  group: string;
  topics: readonly string[];
  instanceId: string;
  /** 0: the sentinels' default. */
  sessionTimeoutMs: number;
  clientId: string;
  sentinels: SentinelPool;
  emit: (event: ClientEvent) => void;
  host: MembershipHost;
  retryBackoffMs: number;
  maxRetryBackoffMs: number;
}

export interface MembershipStats {
  memberId: string;
  generation: number;
  pending: TopicPartition[];
  joins: number;
  heartbeats: number;
  heartbeatFailures: number;
  /** Milliseconds since the last heartbeat that was answered was sent (-1 before the first). */
  lastHeartbeatAgoMs: number;
}

/** The sentinels' default session timeout, used until the join answers with the real one. */
const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
/** Codes that end the consumer when a join gets them: retrying the same join cannot succeed. */
const FATAL_ON_JOIN = new Set([
  Code.InvalidArgument,
  Code.ResourceExhausted,
  Code.Unauthenticated,
  Code.PermissionDenied,
]);

/**
 * One consumer's session in its group (docs/architecture.md, "Consumer groups"): joins, heartbeats every
 * heartbeat interval with the partitions it owns, keeps a WatchGroupAssignment stream open for pushes,
 * hands each new assignment to the consumer (in generation order), rejoins when the group forgot it, and
 * leaves on close. Any sentinel answers; a member without a stream still converges by heartbeats.
 */
export class GroupMembership {
  readonly #options: GroupMembershipOptions;
  readonly #gate = new GenerationGate();
  readonly #abort = new AbortController();
  #memberId = "";
  #previousMemberId = "";
  #lostReason = "";
  #intervalMs: number;
  #sessionTimeoutMs: number;
  /** When the last answered heartbeat was sent (0: none yet). */
  #answeredSentAt = 0;
  #wake: (() => void) | undefined;
  #wakeRequested = false;
  #loop: Promise<void> | undefined;
  #watchAbort: AbortController | undefined;
  #watch: Promise<void> | undefined;
  #pending: TopicPartition[] = [];
  #joins = 0;
  #heartbeats = 0;
  #heartbeatFailures = 0;
  #stopped = false;
  #joined: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void };

  constructor(options: GroupMembershipOptions) {
    this.#options = options;
    this.#sessionTimeoutMs = options.sessionTimeoutMs || DEFAULT_SESSION_TIMEOUT_MS;
    this.#intervalMs = Math.floor(this.#sessionTimeoutMs / 3);
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // observed through joined(), if at all
    this.#joined = { promise, resolve, reject };
  }

  /** Starts the session: join, then heartbeats and the push stream. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves once the first join was answered (or the sentinels turned out not to serve groups). */
  joined(): Promise<void> {
    return this.#joined.promise;
  }

  get memberId(): string {
    return this.#memberId;
  }

  get sessionTimeoutMs(): number {
    return this.#sessionTimeoutMs;
  }

  /**
   * True when no heartbeat was answered for a whole session timeout: the group may have removed this
   * member and given its partitions away, so nothing should be handed to the application until a
   * heartbeat says otherwise. Asks for a heartbeat at once.
   */
  suspect(now = Date.now()): boolean {
    if (this.#memberId === "" || this.#answeredSentAt === 0) return false;
    if (now - this.#answeredSentAt <= this.#sessionTimeoutMs) return false;
    this.heartbeatNow();
    return true;
  }

  /** Sends a heartbeat now (after a release, a fenced commit...), or right after the one on its way. */
  heartbeatNow(): void {
    this.#wakeRequested = true;
    this.#wake?.();
  }

  stats(now = Date.now()): MembershipStats {
    return {
      memberId: this.#memberId,
      generation: Math.max(0, Number(this.#gate.generation)),
      pending: [...this.#pending],
      joins: this.#joins,
      heartbeats: this.#heartbeats,
      heartbeatFailures: this.#heartbeatFailures,
      lastHeartbeatAgoMs: this.#answeredSentAt === 0 ? -1 : now - this.#answeredSentAt,
    };
  }

  /**
   * Stops heartbeating and the stream; with `leave`, tells the group this member leaves, so its
   * partitions move at once (instead of after the session timeout).
   */
  async close(leave: boolean): Promise<void> {
    this.#stopped = true;
    this.#abort.abort(new Error("the consumer closed"));
    this.#watchAbort?.abort();
    this.#wake?.();
    await this.#loop;
    await this.#watch;
    const memberId = this.#memberId;
    if (!leave || memberId === "") return;
    await this.#options.sentinels
      .call(
        (client, o) => client.groupHeartbeat({ group: this.#options.group, memberId, leave: true }, o),
        AbortSignal.timeout(this.#sessionTimeoutMs),
      )
      .catch((err: unknown) => this.#report("leave", err));
  }

  async #run(): Promise<void> {
    let failures = 0;
    let expulsions = 0;
    while (!this.#stopped) {
      this.#wakeRequested = false;
      const joining = this.#memberId === "";
      let delay = this.#intervalMs;
      try {
        const sentAt = Date.now();
        const answer = await this.#send(joining);
        if (this.#stopped) return;
        failures = 0;
        this.#heartbeats++;
        this.#answeredSentAt = sentAt;
        this.#sessionTimeoutMs = answer.sessionTimeoutMs || this.#sessionTimeoutMs;
        this.#intervalMs = answer.heartbeatIntervalMs || Math.floor(this.#sessionTimeoutMs / 3);
        delay = this.#intervalMs;
        if (joining) this.#joinedAs(answer);
        else expulsions = 0;
        this.#options.host.answered();
        if (answer.assignment) this.#offer(answer.assignment);
      } catch (err) {
        if (this.#stopped) return;
        const error = unwrapPoolError(err);
        this.#heartbeatFailures++;
        if (!joining && error.code === Code.NotFound) {
          // Removed from the group (session expired while this process was paused or cut off): the
          // partitions are someone else's now. Rejoin at once; back off if it keeps happening.
          this.#expel(`the group no longer knows member ${this.#memberId}: ${error.message}`);
          delay =
            ++expulsions > 1 ? backoffDelay(expulsions, this.#options.retryBackoffMs, this.#intervalMs) : 0;
        } else if (joining && this.#joins === 0 && error.code === Code.Unimplemented) {
          this.#stopped = true;
          this.#options.host.uncoordinated(error.message);
          this.#joined.resolve();
          return;
        } else if (joining && FATAL_ON_JOIN.has(error.code)) {
          this.#stopped = true;
          this.#options.host.fatal(error);
          this.#joined.reject(error);
          return;
        } else if (
          !joining &&
          (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied)
        ) {
          this.#stopped = true;
          this.#options.host.fatal(error);
          return;
        } else {
          failures++;
          this.#report(joining ? "group join" : "group heartbeat", error);
          // A join retries with backoff; a member retries at its next interval (any sentinel answers).
          if (joining)
            delay = backoffDelay(failures, this.#options.retryBackoffMs, this.#options.maxRetryBackoffMs);
        }
      }
      if (!this.#wakeRequested) await this.#sleep(delay);
    }
  }

  #send(joining: boolean): Promise<GroupHeartbeatResponse> {
    const { group, topics, instanceId, sessionTimeoutMs, clientId } = this.#options;
    const request = joining
      ? { group, topics: [...topics], instanceId, sessionTimeoutMs, clientId, owned: [] }
      : {
          group,
          memberId: this.#memberId,
          owned: sortedPartitions(this.#options.host.owned()),
          // What `owned` was computed after: a partition given later is not mistaken for a release.
          generation: this.#gate.generation < 0n ? 0n : this.#gate.generation,
        };
    return this.#options.sentinels.call((client, o) => client.groupHeartbeat(request, o), this.#abort.signal);
  }

  #joinedAs(answer: GroupHeartbeatResponse): void {
    const memberId = answer.assignment?.memberId ?? "";
    if (memberId === "")
      throw new GouletteError("the group join was answered without a member id", Code.Internal, true);
    this.#memberId = memberId;
    this.#gate.reset(memberId);
    this.#joins++;
    const generation = Number(answer.assignment?.generation ?? 0n);
    const { group } = this.#options;
    if (this.#joins === 1) {
      this.#options.emit({ type: "joined", group, memberId, generation });
      this.#joined.resolve();
    } else {
      this.#options.emit({
        type: "rejoined",
        group,
        memberId,
        previousMemberId: this.#previousMemberId,
        generation,
        reason: this.#lostReason,
      });
    }
    this.#openWatch(memberId);
  }

  #expel(reason: string): void {
    this.#previousMemberId = this.#memberId;
    this.#lostReason = reason;
    this.#memberId = "";
    this.#gate.reset("");
    this.#pending = [];
    this.#answeredSentAt = 0;
    this.#watchAbort?.abort();
    this.#options.host.membershipLost(reason);
  }

  #offer(assignment: MemberAssignment): void {
    if (this.#stopped || !this.#gate.accept(assignment.memberId, assignment.generation)) return;
    this.#pending = sortedPartitions(assignment.pending);
    this.#options.host.apply(assignment);
  }

  /** Keeps a WatchGroupAssignment stream open for `memberId` until it changes or the member closes. */
  #openWatch(memberId: string): void {
    this.#watchAbort?.abort();
    const abort = new AbortController();
    this.#watchAbort = abort;
    const previous = this.#watch ?? Promise.resolve();
    this.#watch = previous.then(() => this.#watchLoop(memberId, abort.signal));
  }

  async #watchLoop(memberId: string, signal: AbortSignal): Promise<void> {
    const { group, sentinels } = this.#options;
    let failures = 0;
    while (!signal.aborted && !this.#stopped) {
      try {
        await sentinels.call(async (client, o) => {
          const stream = client.watchGroupAssignment({ group, memberId }, { signal, headers: o.headers });
          for await (const assignment of stream) {
            failures = 0;
            this.#offer(assignment);
          }
        }, signal);
      } catch (err) {
        if (signal.aborted || this.#stopped) return;
        const code = unwrapPoolError(err).code;
        // The group does not know this member (any more): the next heartbeat finds out and rejoins.
        if (code === Code.FailedPrecondition || code === Code.NotFound) this.heartbeatNow();
      }
      failures++;
      const delay = backoffDelay(
        failures,
        this.#options.retryBackoffMs,
        Math.max(this.#options.maxRetryBackoffMs, this.#intervalMs),
      );
      await sleep(delay, signal).catch(() => undefined);
    }
  }

  /** Waits `ms`, or less when woken (heartbeatNow, close). */
  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      // Not unref'd: a member holds its session (and the process) until it is closed.
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  #report(what: string, err: unknown): void {
    if (err instanceof AbortedError) return;
    this.#options.emit({
      type: "error",
      topic: this.#options.topics.join(","),
      what: `${what} (group ${this.#options.group})`,
      error: toClientError(err),
    });
  }
}

/**
 * The error a sentinel gave, out of the pool's "no sentinel answered": when every sentinel answered the
 * same code (a join refused everywhere, an RPC no sentinel serves), that answer is the error.
 */
function unwrapPoolError(err: unknown): GouletteError {
  if (err instanceof NoSentinelReachableError && err.errors.length > 0) {
    const [first] = err.errors;
    if (
      first instanceof ConnectError &&
      (first.code === Code.Unimplemented || first.code === Code.ResourceExhausted) &&
      err.errors.every((e) => e instanceof ConnectError && e.code === first.code)
    ) {
      return toClientError(first);
    }
  }
  return toClientError(err);
}
