import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Candidate, ElectionEvents } from "../../src/coordination/leader-election.js";
import type { Leadership } from "../../src/coordination/leadership.js";
import { NotLeaderError } from "../../src/errors.js";
import type { Operation } from "../../src/fsm/operations.js";
import type { StateSnapshot, TopicRecord } from "../../src/fsm/state.js";
import { silentLogger, type Logger } from "../../src/observability/logger.js";
import { createRegistry, createSentinelMetrics } from "../../src/observability/metrics.js";
import {
  HeadMovedError,
  checkBatchIds,
  type AppendBatchInput,
  type LogWatch,
  type OperationLog,
  type SnapshotMeta,
} from "../../src/oplog/operation-log.js";
import { ControlPlane, type ControlPlaneOptions } from "../../src/sentinel/control-plane.js";

interface StoredOperation {
  op: Operation;
  revision: number;
}

interface MemoryWatch {
  onOperation: (op: Operation) => void;
  onError: (err: Error) => void;
  cancelled: boolean;
}

/** Lets a test hold some I/O in flight: `held` counts the calls waiting, `release` lets them all go. */
class Gate {
  #open: Promise<void> | undefined;
  #release = () => {};
  held = 0;

  close(): () => void {
    this.#open = new Promise((resolve) => (this.#release = resolve));
    return () => {
      this.#open = undefined;
      this.#release();
    };
  }

  async pass(): Promise<void> {
    if (!this.#open) return;
    this.held++;
    await this.#open;
    this.held--;
  }
}

/**
 * The operation log in memory, with etcd's semantics where the control plane relies on them (fenced,
 * head-compared group append; replay at a revision; a watch from a revision, delivered asynchronously;
 * snapshots that compact what they cover) and knobs to hold, fail or bypass its I/O.
 */
export class MemoryOperationLog implements OperationLog {
  readonly #ops = new Map<number, StoredOperation>();
  #head = 0;
  #revision = 1;
  #snapshot: { meta: SnapshotMeta; json: string } | undefined;
  readonly #watches = new Set<MemoryWatch>();
  readonly #appendGate = new Gate();
  readonly #snapshotGate = new Gate();
  #appendFailures: Error[] = [];
  #dropWatchEvents = 0;
  /** Fence keys of the leaders that hold office now (MemoryLeadership adds and removes them). */
  readonly fences = new Set<string>();
  /** The materialised topic view the appends maintain (etcd's topic keys). */
  readonly topics = new Map<string, TopicRecord>();
  /** Every committed append transaction: its operation ids and its write count (head + operations + topics). */
  readonly transactions: { ids: number[]; writes: number }[] = [];

  /** Appends wait until the returned function is called. */
  holdAppends(): () => void {
    return this.#appendGate.close();
  }

  /** Appends waiting behind holdAppends(). */
  get heldAppends(): number {
    return this.#appendGate.held;
  }

  /** Snapshot writes wait until the returned function is called. */
  holdSnapshots(): () => void {
    return this.#snapshotGate.close();
  }

  get heldSnapshots(): number {
    return this.#snapshotGate.held;
  }

  /** The next append fails with `err`, writing nothing. */
  failNextAppend(err: Error): void {
    this.#appendFailures.push(err);
  }

  /** The watches lose the next `count` operations (as a watch that fell behind a compaction would). */
  dropWatchEvents(count: number): void {
    this.#dropWatchEvents += count;
  }

  /** Fails every watch (as etcd's watch stream erroring out). */
  failWatches(err: Error): void {
    for (const watch of this.#watches) if (!watch.cancelled) watch.onError(err);
  }

  /** Writes an operation bypassing the fence (another writer): moves the head; watches see it unless `unseen`. */
  appendExternal(
    command: Omit<Operation, "id" | "timestamp" | "leaderId">,
    options: { unseen?: boolean } = {},
  ): Operation {
    const op = { ...command, id: this.#head + 1, timestamp: 1, leaderId: "external" } as Operation;
    if (options.unseen) this.#dropWatchEvents++;
    this.#commit([op], { put: [], deleted: [] });
    return op;
  }

  /** The stored operation ids, in order (compaction removes those a snapshot covers). */
  storedIds(): number[] {
    return [...this.#ops.keys()].sort((a, b) => a - b);
  }

  async readHead(): Promise<{ head: number; revision: string }> {
    await Promise.resolve();
    return { head: this.#head, revision: String(this.#revision) };
  }

  async appendBatch(input: AppendBatchInput): Promise<void> {
    await this.#appendGate.pass();
    const failure = this.#appendFailures.shift();
    if (failure) throw failure;
    if (input.ops.length === 0) return;
    checkBatchIds(input);
    if (!this.fences.has(input.fenceKey)) throw new NotLeaderError();
    if (this.#head !== input.expectedHead) throw new HeadMovedError(input.expectedHead);
    this.#commit(input.ops, input.topics);
  }

  #commit(ops: Operation[], topics: AppendBatchInput["topics"]): void {
    const revision = ++this.#revision;
    for (const op of ops) this.#ops.set(op.id, { op: structuredClone(op), revision });
    this.#head = (ops[ops.length - 1] as Operation).id;
    for (const record of topics.put) this.topics.set(record.topic, structuredClone(record));
    for (const topic of topics.deleted) this.topics.delete(topic);
    this.transactions.push({
      ids: ops.map((op) => op.id),
      writes: 1 + ops.length + topics.put.length + topics.deleted.length,
    });
    for (const op of ops) {
      if (this.#dropWatchEvents > 0) {
        this.#dropWatchEvents--;
        continue;
      }
      for (const watch of this.#watches) this.#deliver(watch, op);
    }
  }

  #deliver(watch: MemoryWatch, op: Operation): void {
    const copy = structuredClone(op);
    // Asynchronously, as etcd's watch events arrive after (and apart from) the transaction's answer.
    setImmediate(() => {
      if (!watch.cancelled) watch.onOperation(copy);
    });
  }

  async *readAfter(
    afterId: number,
    options: { pageSize?: number; revision?: string } = {},
  ): AsyncGenerator<Operation[]> {
    const pageSize = options.pageSize ?? 1000;
    const revision = options.revision ? Number(options.revision) : Infinity;
    const ops = [...this.#ops.values()]
      .filter((s) => s.op.id > afterId && s.revision <= revision)
      .sort((a, b) => a.op.id - b.op.id)
      .map((s) => structuredClone(s.op));
    for (let i = 0; i < ops.length; i += pageSize) {
      await Promise.resolve();
      yield ops.slice(i, i + pageSize);
    }
  }

  async list(afterId: number, limit: number): Promise<Operation[]> {
    const ops: Operation[] = [];
    for await (const page of this.readAfter(afterId, { pageSize: limit })) ops.push(...page);
    return ops.slice(0, limit);
  }

  async watch(
    startRevision: string,
    onOperation: (op: Operation) => void,
    onError: (err: Error) => void,
  ): Promise<LogWatch> {
    const watch: MemoryWatch = { onOperation, onError, cancelled: false };
    const from = Number(startRevision);
    const past = [...this.#ops.values()].filter((s) => s.revision >= from).sort((a, b) => a.op.id - b.op.id);
    for (const stored of past) this.#deliver(watch, stored.op);
    this.#watches.add(watch);
    return {
      cancel: async () => {
        watch.cancelled = true;
        this.#watches.delete(watch);
      },
    };
  }

  async readSnapshotMeta(): Promise<SnapshotMeta | undefined> {
    return this.#snapshot ? { ...this.#snapshot.meta } : undefined;
  }

  async readSnapshot(): Promise<{ meta: SnapshotMeta; state: StateSnapshot } | undefined> {
    if (!this.#snapshot) return undefined;
    return { meta: { ...this.#snapshot.meta }, state: JSON.parse(this.#snapshot.json) as StateSnapshot };
  }

  async writeSnapshot(
    state: StateSnapshot,
    fenceKey: string,
    now: number,
  ): Promise<{ meta: SnapshotMeta; compacted: number }> {
    const json = JSON.stringify(state);
    await this.#snapshotGate.pass();
    if (!this.fences.has(fenceKey)) throw new NotLeaderError();
    const meta: SnapshotMeta = {
      id: state.appliedId,
      chunks: 1,
      sha256: createHash("sha256").update(json).digest("hex"),
      size: json.length,
      createdAt: now,
    };
    let compacted = 0;
    for (const id of this.#ops.keys()) {
      if (id <= meta.id) {
        this.#ops.delete(id);
        compacted++;
      }
    }
    this.#revision++;
    this.#snapshot = { meta, json };
    return { meta, compacted };
  }
}

/**
 * Leadership in memory: `elect()` and `depose()` are the test's to call (start() elects at once unless
 * `autoElect` is false); the fence key is valid in the log exactly while this sentinel leads.
 */
export class MemoryLeadership extends EventEmitter<ElectionEvents> implements Leadership {
  readonly #log: MemoryOperationLog;
  readonly #id: string;
  readonly #url: string;
  readonly #autoElect: boolean;
  #fenceKey: string | undefined;
  #terms = 0;

  constructor(log: MemoryOperationLog, options: { id: string; url?: string; autoElect?: boolean }) {
    super();
    this.#log = log;
    this.#id = options.id;
    this.#url = options.url ?? `http://127.0.0.1:1/${options.id}`;
    this.#autoElect = options.autoElect ?? true;
  }

  get isLeader(): boolean {
    return this.#fenceKey !== undefined;
  }

  get fenceKey(): string | undefined {
    return this.#fenceKey;
  }

  get leaderUrl(): string | undefined {
    return this.#fenceKey ? this.#url : undefined;
  }

  async start(): Promise<void> {
    if (this.#autoElect) queueMicrotask(() => this.elect());
  }

  async stop(): Promise<void> {
    this.depose("resigned");
  }

  async candidates(): Promise<Candidate[]> {
    return this.#fenceKey ? [{ key: this.#fenceKey, id: this.#id, url: this.#url }] : [];
  }

  elect(): void {
    if (this.#fenceKey) return;
    this.#fenceKey = `memory/${this.#id}/${++this.#terms}`;
    this.#log.fences.add(this.#fenceKey);
    this.emit("leader", this.#url);
    this.emit("elected", this.#fenceKey);
  }

  depose(reason: string): void {
    if (!this.#fenceKey) return;
    this.#log.fences.delete(this.#fenceKey);
    this.#fenceKey = undefined;
    this.emit("deposed", reason);
  }
}

/** A ControlPlane over the in-memory log and leadership (fast, for unit tests). */
export function memoryControlPlane(
  log: MemoryOperationLog,
  options: Partial<Omit<ControlPlaneOptions, "log" | "leadership">> & {
    autoElect?: boolean;
    logger?: Logger;
  } = {},
): { plane: ControlPlane; leadership: MemoryLeadership } {
  const { autoElect, ...rest } = options;
  const id = options.id ?? "memory";
  const leadership = new MemoryLeadership(log, { id, ...(autoElect !== undefined ? { autoElect } : {}) });
  const plane = new ControlPlane({
    id,
    logger: silentLogger(),
    metrics: createSentinelMetrics(createRegistry()),
    virtualNodes: 50,
    snapshotEvery: 1_000_000,
    ...rest,
    log,
    leadership,
  });
  return { plane, leadership };
}
