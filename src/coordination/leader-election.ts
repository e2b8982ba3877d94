import { EventEmitter } from "node:events";
import type { Etcd3, Lease, Watcher } from "etcd3";
import type { Logger } from "../observability/logger.js";
import { errorMessage } from "../errors.js";
import type { Keyspace } from "./keyspace.js";
import type { Leadership } from "./leadership.js";

export interface LeaderElectionOptions {
  etcd: Etcd3;
  keys: Keyspace;
  /** This sentinel's advertised RPC URL, which followers forward writes to. */
  url: string;
  /** This sentinel's id; with it the election value is {"id","url"} JSON, so status lists every id. */
  id?: string;
  /** Election lease TTL in seconds: a dead leader is replaced within about this long. */
  ttlSeconds: number;
  logger: Logger;
  /** stop() gives etcd this long (ms, default 5,000) to cancel the watches and revoke the lease. */
  stopTimeoutMs?: number;
}

/** One campaigning sentinel as its election value describes it. */
export interface Candidate {
  key: string;
  /** Empty for a sentinel that campaigns with a bare URL (older versions). */
  id: string;
  url: string;
}

/** The election value: {"id","url"} JSON, so every sentinel's id is visible to the others. */
export function encodeCandidate(id: string | undefined, url: string): string {
  return id === undefined ? url : JSON.stringify({ id, url });
}

/**
 * Reads an election value: {"id","url"} JSON, or a bare URL as older sentinels write it (a URL never
 * starts with "{", so the two cannot be confused).
 */
export function decodeCandidate(value: string): { id: string; url: string } {
  if (value.startsWith("{")) {
    try {
      const parsed = JSON.parse(value) as unknown;
      if (typeof parsed === "object" && parsed !== null) {
        const { id, url } = parsed as Record<string, unknown>;
        if (typeof url === "string") return { id: typeof id === "string" ? id : "", url };
      }
    } catch {
      // Not JSON after all: treat it as a URL like any other value.
    }
  }
  return { id: "", url: value };
}

export type ElectionEvents = {
  /** This sentinel became leader; fenceKey is the key whose existence fences its writes. */
  elected: [fenceKey: string];
  /** This sentinel stopped being leader (lease lost, etcd unreachable too long, or resigned). */
  deposed: [reason: string];
  /** The leader's URL changed (undefined while there is none). */
  leader: [url: string | undefined];
};

/**
 * Leader election over etcd (the algorithm of etcd's concurrency package): each candidate puts
 * `<prefix>/election/leader/<lease id>` = {"id","url"} (encodeCandidate) under its own lease; the key with the lowest create
 * revision leads. The key is also the fence of the operation log: appends compare that it exists.
 *
 * Split-brain guard: etcd expires a lease TTL seconds after its last successful keepalive. A leader
 * that has not renewed for 2/3 of the TTL steps down on its own, before another sentinel could be
 * elected, and campaigns again with a new lease.
 */
export class LeaderElection extends EventEmitter<ElectionEvents> implements Leadership {
  #lease: Lease | undefined;
  #fenceKey: string | undefined;
  #isLeader = false;
  #leaderUrl: string | undefined;
  #running = false;
  #lastRenewal = 0;
  #guardTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #predecessorWatch: Watcher | undefined;
  #leaderWatch: Watcher | undefined;
  #leaderPoll: NodeJS.Timeout | undefined;
  #generation = 0;

  constructor(private readonly options: LeaderElectionOptions) {
    super();
  }

  get isLeader(): boolean {
    return this.#isLeader;
  }

  /** The key that fences this leader's writes; undefined when not leader. */
  get fenceKey(): string | undefined {
    return this.#isLeader ? this.#fenceKey : undefined;
  }

  get leaderUrl(): string | undefined {
    return this.#leaderUrl;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.#observeLeader();
    this.#campaign();
  }

  /**
   * Stops campaigning; a leader resigns (revokes its lease) so another sentinel takes over at once.
   * It steps down first and gives etcd at most `stopTimeoutMs` to cancel the watches and revoke the
   * lease: an unreachable etcd must not hang a shutdown. The lease's keepalives stop at once either way,
   * so an unrevoked lease expires on its own after the TTL.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#guardTimer);
    clearInterval(this.#leaderPoll);
    this.#stepDown("resigned");
    const watches = [this.#predecessorWatch, this.#leaderWatch];
    const lease = this.#lease;
    this.#predecessorWatch = undefined;
    this.#leaderWatch = undefined;
    this.#lease = undefined;
    // revoke() stops the keepalives synchronously, before its first await.
    const release = Promise.allSettled([lease?.revoke(), ...watches.map((watch) => watch?.cancel())]).then(
      () => true,
    );
    const timeoutMs = this.options.stopTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const released = await Promise.race([release, timedOut]);
    clearTimeout(timer);
    if (!released) {
      this.options.logger.warn(
        { timeoutMs, ttlSeconds: this.options.ttlSeconds },
        "etcd did not confirm the resignation in time; stopped anyway (the lease expires after its TTL)",
      );
    }
  }

  /** Every campaigning sentinel's id and URL, leader first. */
  async candidates(): Promise<Candidate[]> {
    const res = await this.options.etcd
      .getAll()
      .prefix(this.options.keys.electionPrefix)
      .sort("Create", "Ascend")
      .exec();
    return res.kvs.map((kv) => ({ key: kv.key.toString(), ...decodeCandidate(kv.value.toString()) }));
  }

  #campaign(): void {
    const generation = ++this.#generation;
    void this.#runCampaign(generation).catch((err: unknown) => {
      if (generation !== this.#generation || !this.#running) return;
      this.options.logger.warn({ err: err }, "leader campaign failed; retrying in 1 s");
      this.#stepDown(`campaign failed: ${errorMessage(err)}`);
      this.#retry(generation);
    });
  }

  #retry(generation: number): void {
    if (generation !== this.#generation || !this.#running) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#campaign(), 1_000);
  }

  async #runCampaign(generation: number): Promise<void> {
    const { etcd, keys, ttlSeconds, url, id } = this.options;
    const old = this.#lease;
    this.#lease = undefined;
    old?.revoke().catch(() => undefined);
    const lease = etcd.lease(ttlSeconds);
    this.#lease = lease;
    const leaseId = await lease.grant();
    this.#lastRenewal = performance.now();
    lease.on("keepaliveSucceeded", () => {
      this.#lastRenewal = performance.now();
    });
    lease.on("lost", (err) => {
      if (generation !== this.#generation) return;
      this.options.logger.warn({ err: err.message }, "election lease lost");
      this.#stepDown("election lease lost");
      this.#campaign();
    });
    const myKey = keys.electionPrefix + leaseId;
    await lease.put(myKey).value(encodeCandidate(id, url));
    this.#fenceKey = myKey;

    while (generation === this.#generation && this.#running) {
      const res = await etcd.getAll().prefix(keys.electionPrefix).sort("Create", "Ascend").exec();
      const mine = res.kvs.findIndex((kv) => kv.key.toString() === myKey);
      if (mine === -1) throw new Error("our election key vanished (lease expired)");
      if (mine === 0) break;
      // Wait for the candidate just ahead of us to go, then look again.
      const predecessor = (res.kvs[mine - 1] as { key: Buffer }).key.toString();
      await new Promise<void>((resolve, reject) => {
        void etcd
          .watch()
          .key(predecessor)
          .startRevision(String(Number(res.header.revision) + 1))
          .create()
          .then((watcher) => {
            this.#predecessorWatch = watcher;
            watcher.on("delete", () => resolve());
            watcher.on("error", reject);
            if (generation !== this.#generation || !this.#running) resolve();
          }, reject);
      }).finally(() => {
        // Cancel once and forget it: etcd3 never resolves a second cancel, which hung stop().
        const watch = this.#predecessorWatch;
        this.#predecessorWatch = undefined;
        void watch?.cancel().catch(() => undefined);
      });
    }
    if (generation !== this.#generation || !this.#running) return;
    this.#isLeader = true;
    this.#startGuard(generation);
    this.options.logger.info({ fenceKey: myKey }, "elected leader");
    this.emit("elected", myKey);
  }

  #startGuard(generation: number): void {
    clearInterval(this.#guardTimer);
    const limitMs = (this.options.ttlSeconds * 1000 * 2) / 3;
    let extraRenewal: Promise<void> | undefined;
    this.#guardTimer = setInterval(() => {
      if (generation !== this.#generation || !this.#isLeader) return;
      // Monotonic: a wall-clock step must not stretch the guard (two leaders) nor trip it.
      const silentFor = performance.now() - this.#lastRenewal;
      // Halfway to the limit, renew once more on a stream of its own: after a stall (this process's
      // event loop, a slow etcd) one answer is enough to stay leader, instead of waiting for the next
      // periodic keepalive. Counted from when it was sent, the lease cannot expire earlier than that.
      const lease = this.#lease;
      if (silentFor > limitMs / 2 && !extraRenewal && lease) {
        const sentAt = performance.now();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, limitMs)));
        extraRenewal = Promise.race([
          lease.keepaliveOnce().then(() => {
            if (generation === this.#generation) this.#lastRenewal = Math.max(this.#lastRenewal, sentAt);
          }),
          timedOut,
        ])
          .catch(() => undefined) // a lost lease is reported by its "lost" event
          .finally(() => {
            clearTimeout(timer);
            extraRenewal = undefined;
          });
      }
      if (silentFor > limitMs) {
        this.options.logger.warn(
          { silentForMs: silentFor, ttlSeconds: this.options.ttlSeconds },
          "could not renew the election lease in time; stepping down before it can expire",
        );
        this.#stepDown("lease renewal overdue");
        this.#retry(generation);
      }
    }, 100);
    this.#guardTimer.unref();
  }

  #stepDown(reason: string): void {
    clearInterval(this.#guardTimer);
    if (!this.#isLeader) return;
    this.#isLeader = false;
    this.emit("deposed", reason);
  }

  /**
   * Follows the leader's URL. Reads are ordered (a late answer never overwrites a newer one) and also
   * run every second, so a read that failed while etcd was away is made good without a new event.
   */
  async #observeLeader(): Promise<void> {
    const { etcd, keys } = this.options;
    let issued = 0;
    let newestApplied = 0;
    const refresh = async () => {
      const ticket = ++issued;
      const res = await etcd.getAll().prefix(keys.electionPrefix).sort("Create", "Ascend").limit(1).strings();
      if (ticket < newestApplied) return;
      newestApplied = ticket;
      const value = Object.values(res)[0];
      const url = value === undefined ? undefined : decodeCandidate(value).url;
      if (url !== this.#leaderUrl) {
        this.#leaderUrl = url;
        this.emit("leader", url);
      }
    };
    await refresh();
    const onChange = () => {
      if (!this.#running) return;
      refresh().catch((err: unknown) =>
        this.options.logger.debug({ err: err }, "could not read the election leader; will retry"),
      );
    };
    this.#leaderWatch = await etcd.watch().prefix(keys.electionPrefix).create();
    this.#leaderWatch.on("put", onChange);
    this.#leaderWatch.on("delete", onChange);
    this.#leaderWatch.on("connected", onChange);
    this.#leaderPoll = setInterval(onChange, 1_000);
    this.#leaderPoll.unref();
  }
}
