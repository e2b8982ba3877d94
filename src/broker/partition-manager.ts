import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { monotonicClock } from "../common/clock.js";
import { forEachYielding } from "../common/yielding.js";
import { InvalidArgumentError } from "../errors.js";
import { TooManyPartitionsError } from "./errors.js";
import { validateTopicName } from "../fsm/validation.js";
import { PartitionRole, type ReplicaRef, type SetTopicRoleRequest } from "../gen/goulette/v1/broker_pb.js";
import type { Logger } from "../observability/logger.js";
import { Partition, type FetcherHandle, type PartitionOptions, type RoleAssignment } from "./partition.js";

export interface PartitionManagerOptions {
  /** Root of the partition directories: `<dataDir>/<topic>/<partition>/`. */
  dataDir: string;
  brokerId: string;
  /** Options shared by every partition. */
  partition: Omit<
    PartitionOptions,
    "topic" | "partition" | "dir" | "brokerId" | "startFetcher" | "onRoleDropped" | "logger"
  >;
  /** Starts a follower fetch loop. */
  startFetcher: (p: Partition) => FetcherHandle;
  /**
   * A partition missing from a KeepAlive answer is dropped only if its role is older than this (ms): a
   * role pushed by the sentinel leader may not have reached the sentinel that answered yet.
   */
  absenceGraceMs: number;
  /** Partitions held at most (open and opening); a role for one more is refused (default 50,000). */
  maxPartitions?: number;
  logger: Logger;
}

export const DEFAULT_MAX_PARTITIONS = 50_000;

/** Partitions opened at once while applying roles in bulk (opening a new one touches the disk). */
export const APPLY_CONCURRENCY = 16;

/**
 * The partitions this broker holds: opens their logs on first use, applies roles from the sentinel
 * (pushed with SetTopicRole or listed by KeepAlive), drops partitions it no longer holds.
 */
export class PartitionManager {
  readonly #partitions = new Map<string, Partition>();
  readonly #opening = new Map<string, Promise<Partition>>();
  #maxAppliedId = 0n;
  #closed = false;
  /** Digest of the KeepAlive role list these partitions match exactly ("" when they may not). */
  #heldDigest = "";
  /** Counts role changes made outside reconcile (pushes, removals, self-demotions). */
  #outsideChanges = 0;

  constructor(private readonly options: PartitionManagerOptions) {}

  /** An open partition, or undefined. */
  get(topic: string, partition: number): Partition | undefined {
    return this.#partitions.get(`${topic}#${partition}`);
  }

  all(): Partition[] {
    return [...this.#partitions.values()];
  }

  /** Opens (or returns) the partition's log and metadata. */
  open(topic: string, partition: number): Promise<Partition> {
    const key = `${topic}#${partition}`;
    const open = this.#partitions.get(key);
    if (open) return Promise.resolve(open);
    let opening = this.#opening.get(key);
    if (!opening) {
      if (this.#closed) return Promise.reject(new InvalidArgumentError("the broker is shutting down"));
      const limit = this.options.maxPartitions ?? DEFAULT_MAX_PARTITIONS;
      if (this.#partitions.size + this.#opening.size >= limit) {
        return Promise.reject(new TooManyPartitionsError(this.options.brokerId, topic, partition, limit));
      }
      opening = Partition.open({
        ...this.options.partition,
        topic,
        partition,
        dir: path.join(this.options.dataDir, topic, String(partition)),
        brokerId: this.options.brokerId,
        startFetcher: this.options.startFetcher,
        onRoleDropped: () => this.#changedOutsideReconcile(),
        logger: this.options.logger,
      }).then(
        (p) => {
          this.#opening.delete(key);
          this.#partitions.set(key, p);
          return p;
        },
        (err: unknown) => {
          this.#opening.delete(key);
          throw err;
        },
      );
      this.#opening.set(key, opening);
    }
    return opening;
  }

  /**
   * The assignments_digest of the last KeepAlive role list these partitions were reconciled with and
   * still match exactly; "" when they may differ from it (a role pushed, a partition removed or given up
   * since, or a reconciliation that could not apply everything), so that the next answer lists it all.
   */
  get heldAssignmentsDigest(): string {
    return this.#heldDigest;
  }

  #changedOutsideReconcile(): void {
    this.#outsideChanges++;
    this.#heldDigest = "";
  }

  /** Validates and applies one pushed role; resolves with the partition (and whether the role was taken). */
  async applyRole(req: SetTopicRoleRequest): Promise<{ partition: Partition; applied: boolean }> {
    this.#changedOutsideReconcile();
    return this.#applyRole(req);
  }

  async #applyRole(req: SetTopicRoleRequest): Promise<{ partition: Partition; applied: boolean }> {
    const assignment = toAssignment(req, this.options.brokerId);
    const p = await this.open(req.topic, req.partition);
    return { partition: p, applied: p.applyRole(assignment) };
  }

  /**
   * Reconciles with a KeepAlive answer: every listed role is applied (older epochs are ignored), and a
   * partition not listed any more stops being served, unless the answer comes from a sentinel that is
   * behind one that answered before, or the role is too recent for that sentinel to know.
   */
  async reconcile(
    assignments: readonly SetTopicRoleRequest[],
    appliedId: bigint,
    digest = "",
  ): Promise<void> {
    const outsideChangesBefore = this.#outsideChanges;
    this.#heldDigest = "";
    // Exact: afterwards every listed role is held and nothing else is served.
    let exact = true;
    const listed = new Set<string>();
    const toOpen: SetTopicRoleRequest[] = [];
    const failed = (req: SetTopicRoleRequest, err: unknown) => {
      exact = false;
      this.options.logger.error(
        { partition: `${req.topic}#${req.partition}`, err },
        "cannot take the role the sentinel assigned",
      );
    };
    for (const req of assignments) {
      const key = `${req.topic}#${req.partition}`;
      listed.add(key);
      const open = this.#partitions.get(key);
      // An open partition takes its role synchronously: with thousands of partitions listed every
      // KeepAlive, a promise per unchanged role is most of what an idle broker does.
      if (open === undefined) {
        toOpen.push(req);
        continue;
      }
      try {
        // False: the partition holds a newer epoch than this (lagging) sentinel knows.
        if (!open.applyRole(toAssignment(req, this.options.brokerId))) exact = false;
      } catch (err) {
        failed(req, err);
      }
    }
    // Opening is I/O: bounded and yielding, as a KeepAlive answer may list thousands of new roles.
    await forEachYielding(toOpen, APPLY_CONCURRENCY, (req) =>
      this.#applyRole(req).then(
        ({ applied }) => {
          if (!applied) exact = false;
        },
        (err: unknown) => failed(req, err),
      ),
    );
    if (appliedId < this.#maxAppliedId) return;
    this.#maxAppliedId = appliedId;
    const now = monotonicClock.now(); // the clock of Partition.roleSetAt
    for (const [key, p] of this.#partitions) {
      if (listed.has(key) || p.role === "none") continue;
      if (now - p.roleSetAt < this.options.absenceGraceMs) {
        exact = false;
        continue;
      }
      p.demote("the sentinels no longer list this broker as a replica");
    }
    if (exact && this.#outsideChanges === outsideChangesBefore) this.#heldDigest = digest;
  }

  /** Stops serving a partition (or every partition of a topic), deleting its data when asked. */
  async remove(topic: string, partition: number | undefined, deleteData: boolean): Promise<void> {
    validateTopicName(topic);
    this.#changedOutsideReconcile();
    const doomed = [...this.#partitions.values()].filter(
      (p) => p.topic === topic && (partition === undefined || p.partition === partition),
    );
    for (const p of doomed) this.#partitions.delete(p.key);
    await Promise.all(doomed.map((p) => p.close()));
    if (deleteData) {
      const target =
        partition === undefined
          ? path.join(this.options.dataDir, topic)
          : path.join(this.options.dataDir, topic, String(partition));
      await rm(target, { recursive: true, force: true });
    }
    this.options.logger.info({ topic, partition, deleteData }, "removed partition(s)");
  }

  /** Topic names with a directory under the data dir. */
  async topicsOnDisk(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.options.dataDir);
    } catch {
      return [];
    }
    return names.filter((name) => {
      try {
        validateTopicName(name);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Leader housekeeping of every partition (in-sync set, waiter deadlines). */
  tick(): void {
    for (const p of this.#partitions.values()) p.tick();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#opening.values()]);
    const all = [...this.#partitions.values()];
    this.#partitions.clear();
    const results = await Promise.allSettled(all.map((p) => p.close()));
    for (const r of results) {
      if (r.status === "rejected") this.options.logger.error({ err: r.reason }, "closing a partition failed");
    }
  }
}

/** A SetTopicRole request → a checked RoleAssignment. */
export function toAssignment(req: SetTopicRoleRequest, selfId: string): RoleAssignment {
  validateTopicName(req.topic);
  const where = `${req.topic}#${req.partition}`;
  if (req.role !== PartitionRole.LEADER && req.role !== PartitionRole.FOLLOWER) {
    throw new InvalidArgumentError(`role for ${where} must be LEADER or FOLLOWER, got ${req.role}`);
  }
  if (!req.leader?.brokerId) throw new InvalidArgumentError(`role for ${where} names no leader`);
  if (req.replicas.length === 0) throw new InvalidArgumentError(`role for ${where} lists no replicas`);
  if (!req.replicas.some((r) => r.brokerId === selfId)) {
    throw new InvalidArgumentError(`role for ${where} does not list this broker (${selfId}) as a replica`);
  }
  const leads = req.role === PartitionRole.LEADER;
  if (leads !== (req.leader.brokerId === selfId)) {
    throw new InvalidArgumentError(
      `role for ${where} is ${leads ? "LEADER" : "FOLLOWER"} but names ${req.leader.brokerId} as the leader`,
    );
  }
  if (req.epoch > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`epoch ${req.epoch} for ${where} is out of range`);
  }
  const ref = (r: ReplicaRef) => ({ brokerId: r.brokerId, address: r.address });
  return {
    role: leads ? "leader" : "follower",
    epoch: Number(req.epoch),
    leader: ref(req.leader),
    replicas: req.replicas.map(ref),
  };
}
