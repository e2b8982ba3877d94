import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { GRPCResourceExhastedError, Range, type Etcd3, type Watcher } from "etcd3";
import type { Keyspace } from "../coordination/keyspace.js";
import { NotLeaderError, UnavailableError, errorMessage } from "../errors.js";
import { decodeOperation, encodeOperation, type Command, type Operation } from "../fsm/operations.js";
import type { StateSnapshot, TopicRecord } from "../fsm/state.js";
import {
  HeadMovedError,
  checkBatchIds,
  type AppendBatchInput,
  type OperationLog,
  type SnapshotMeta,
} from "./operation-log.js";
import { toStoredTopicInfo } from "./topic-info.js";

/** etcd rejects requests above ~1.5 MiB by default; stay well below. */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** Replay aims at range responses of at most about this size: the etcd client refuses messages over 4 MiB. */
const PAGE_TARGET_BYTES = 2 * 1024 * 1024;
/** The first page's limit, before the operations' size is known (one operation is at most ~1.5 MiB). */
const FIRST_PAGE_OPERATIONS = 64;
const MAX_PAGE_REFUSALS = 20;
const PAGE_REFUSAL_PAUSE_MS = 1_000;

export interface AppendInput {
  command: Command;
  /** The etcd key whose existence proves this sentinel still leads (its election key). */
  fenceKey: string;
  /** The head this leader believes is current; the append fails if another write moved it. */
  expectedHead: number;
  leaderId: string;
  timestamp: number;
  /** The topic keys this operation changes (materialised view, written in the same transaction). */
  topics: { put: TopicRecord[]; deleted: string[] };
}

export { HeadMovedError, type AppendBatchInput, type SnapshotMeta } from "./operation-log.js";

/**
 * The operation log in etcd: fenced append, paged replay, watch, snapshots and compaction.
 * It knows keys and transactions, not what operations mean.
 */
export class OplogStore implements OperationLog {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keyspace,
  ) {}

  /** The newest operation id (0 when the log is empty) and the etcd revision it was read at. */
  async readHead(options: { timeoutMs?: number } = {}): Promise<{ head: number; revision: string }> {
    const res = await this.etcd.kv.range(
      { key: Buffer.from(this.keys.head) },
      options.timeoutMs ? { deadline: Date.now() + options.timeoutMs } : undefined,
    );
    const kv = res.kvs[0];
    return { head: kv ? Number(kv.value.toString()) : 0, revision: String(res.header.revision) };
  }

  /**
   * Appends one operation in one transaction that also moves the head and writes the topic keys it
   * changes. The transaction only succeeds while `fenceKey` exists (a deposed leader cannot write)
   * and the head is still `expectedHead` (no two appends get the same id).
   */
  async append(input: AppendInput): Promise<Operation> {
    const id = input.expectedHead + 1;
    const op = { ...input.command, id, timestamp: input.timestamp, leaderId: input.leaderId } as Operation;
    await this.appendBatch({
      fenceKey: input.fenceKey,
      expectedHead: input.expectedHead,
      ops: [op],
      topics: input.topics,
    });
    return op;
  }

  /**
   * Group commit: appends consecutive operations (ids expectedHead + 1, + 2, …) in one fenced
   * transaction, each under its own key, the head set to the last id, and each changed topic key
   * written once with its final value (etcd refuses a key twice in one transaction). The caller keeps
   * the transaction within etcd's limits (128 operations, 1.5 MiB by default).
   */
  async appendBatch(input: AppendBatchInput): Promise<void> {
    const last = input.ops[input.ops.length - 1];
    if (!last) return;
    checkBatchIds(input);
    const headCompare =
      input.expectedHead === 0
        ? this.etcd.if(input.fenceKey, "Create", ">", 0).and(this.keys.head, "Version", "==", 0)
        : this.etcd
            .if(input.fenceKey, "Create", ">", 0)
            .and(this.keys.head, "Value", "==", String(input.expectedHead));
    const writes = [
      this.etcd.put(this.keys.head).value(String(last.id)),
      ...input.ops.map((op) => this.etcd.put(this.keys.operation(op.id)).value(encodeOperation(op))),
      ...input.topics.put.map((t) =>
        this.etcd.put(this.keys.topic(t.topic)).value(JSON.stringify(toStoredTopicInfo(t))),
      ),
      ...input.topics.deleted.map((topic) => this.etcd.delete().key(this.keys.topic(topic))),
    ];
    const res = await headCompare.then(...writes).commit();
    if (res.succeeded) return;
    const fence = await this.etcd.get(input.fenceKey).exists();
    if (!fence) throw new NotLeaderError();
    throw new HeadMovedError(input.expectedHead);
  }

  /**
   * Reads the operations with id > afterId, in pages, all at one etcd revision (so the caller can
   * watch from revision + 1 without a gap). Pages are bounded by bytes as well as by `pageSize`: the
   * etcd client refuses responses over 4 MiB, and its answer to one (RESOURCE_EXHAUSTED counts as a
   * connection failure) resets its connections and opens its circuit breaker for 5 s. So the first page
   * is small and each next limit is `targetBytes` ÷ the largest operation of the page before (one
   * operation is at most ~1.5 MiB, so a single outlier still fits); a page refused anyway (several
   * operations much larger than their predecessors) is read again with a quarter of the limit.
   */
  async *readAfter(
    afterId: number,
    options: { pageSize?: number; revision?: string; targetBytes?: number } = {},
  ): AsyncGenerator<Operation[]> {
    const pageSize = options.pageSize ?? 1000;
    const targetBytes = options.targetBytes ?? PAGE_TARGET_BYTES;
    let limit = Math.min(pageSize, FIRST_PAGE_OPERATIONS);
    let ceiling = pageSize; // lowered for good when a page is refused
    let refusals = 0;
    let next = afterId + 1;
    const end = prefixEnd(Buffer.from(this.keys.operationsPrefix));
    let revision = options.revision;
    for (;;) {
      // Ids are dense, so [next, next + limit) holds the page. The range end matters: etcd 3.4 walks every
      // key of a range before applying the limit, so an open-ended range costs the whole rest of the log.
      const pageEnd = Buffer.from(this.keys.operation(next + limit));
      let res: Awaited<ReturnType<Etcd3["kv"]["range"]>>;
      try {
        res = await this.etcd.kv.range({
          key: Buffer.from(this.keys.operation(next)),
          range_end: pageEnd,
          limit,
          ...(revision ? { revision } : {}),
        });
      } catch (err) {
        if (limit === 1 || !isResponseTooBig(err) || ++refusals > MAX_PAGE_REFUSALS) throw err;
        ceiling = limit = Math.max(1, Math.floor(limit / 4));
        await sleep(PAGE_REFUSAL_PAUSE_MS); // let the client's circuit breaker half-open
        continue;
      }
      revision ??= String(res.header.revision);
      const full = res.kvs.length >= limit;
      if (res.kvs.length > 0) {
        let largest = 0;
        for (const kv of res.kvs) largest = Math.max(largest, kv.key.length + kv.value.length);
        limit = Math.max(1, Math.min(ceiling, Math.floor(targetBytes / largest)));
        const page = res.kvs.map((kv) => decodeOperation(kv.value.toString()));
        next = (page[page.length - 1] as Operation).id + 1;
        yield page;
      }
      if (full) continue;
      // Short page: the log ends here, unless ids jump (a gap, which the caller reports).
      const probe = await this.etcd.kv.range({
        key: pageEnd,
        range_end: end,
        limit: 1,
        keys_only: true,
        ...(revision ? { revision } : {}),
      });
      const key = probe.kvs[0]?.key.toString();
      if (!key) return;
      next = Number(key.slice(this.keys.operationsPrefix.length));
    }
  }

  /** Operations with id > afterId, at most `limit` (for ListOperations). */
  async list(afterId: number, limit: number): Promise<Operation[]> {
    const ops: Operation[] = [];
    for await (const page of this.readAfter(afterId, { pageSize: limit })) {
      ops.push(...page.slice(0, limit - ops.length));
      if (ops.length >= limit) break;
    }
    return ops;
  }

  /** Watches appended operations from `startRevision`; etcd3 resumes the watch itself after a disconnect. */
  async watch(
    startRevision: string,
    onOperation: (op: Operation) => void,
    onError: (err: Error) => void,
  ): Promise<Watcher> {
    const watcher = await this.etcd
      .watch()
      .prefix(this.keys.operationsPrefix)
      .startRevision(startRevision)
      .create();
    watcher.on("put", (kv) => {
      try {
        onOperation(decodeOperation(kv.value.toString()));
      } catch (err) {
        onError(err instanceof Error ? err : new Error(errorMessage(err)));
      }
    });
    watcher.on("error", onError);
    return watcher;
  }

  async readSnapshotMeta(): Promise<SnapshotMeta | undefined> {
    const text = await this.etcd.get(this.keys.snapshotMeta).string();
    return text ? (JSON.parse(text) as SnapshotMeta) : undefined;
  }

  /** The newest snapshot, verified against its checksum; undefined when none was written. */
  async readSnapshot(): Promise<{ meta: SnapshotMeta; state: StateSnapshot } | undefined> {
    const meta = await this.readSnapshotMeta();
    if (!meta) return undefined;
    // One chunk per request: a whole snapshot can exceed the gRPC client's 4 MiB response limit.
    const chunks: Buffer[] = [];
    for (let i = 0; i < meta.chunks; i++) {
      const chunk = await this.etcd.get(this.keys.snapshotChunk(meta.id, i)).buffer();
      if (!chunk) break;
      chunks.push(chunk);
    }
    const data = Buffer.concat(chunks);
    const sha256 = createHash("sha256").update(data).digest("hex");
    if (chunks.length !== meta.chunks || sha256 !== meta.sha256) {
      throw new UnavailableError(
        `snapshot ${meta.id} is incomplete or corrupt (${chunks.length}/${meta.chunks} chunks, sha256 ${sha256.slice(0, 12)}…)`,
      );
    }
    return { meta, state: JSON.parse(data.toString()) as StateSnapshot };
  }

  /**
   * Writes a snapshot of the state at `state.appliedId`, then — in one fenced transaction — points the
   * meta key at it and deletes the operations it covers. Old snapshot chunks are removed afterwards.
   */
  async writeSnapshot(
    state: StateSnapshot,
    fenceKey: string,
    now: number,
  ): Promise<{ meta: SnapshotMeta; compacted: number }> {
    const data = Buffer.from(JSON.stringify(state));
    const id = state.appliedId;
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < data.length || chunks.length === 0; offset += SNAPSHOT_CHUNK_BYTES) {
      chunks.push(data.subarray(offset, offset + SNAPSHOT_CHUNK_BYTES));
    }
    for (let i = 0; i < chunks.length; i++) {
      await this.etcd.put(this.keys.snapshotChunk(id, i)).value(chunks[i] as Buffer);
    }
    const meta: SnapshotMeta = {
      id,
      chunks: chunks.length,
      sha256: createHash("sha256").update(data).digest("hex"),
      size: data.length,
      createdAt: now,
    };
    const previous = await this.readSnapshotMeta();
    const covered = new Range(this.keys.operationsPrefix, this.keys.operation(id + 1));
    const countRes = await this.etcd.kv.range({
      key: Buffer.from(covered.start),
      range_end: Buffer.from(covered.end),
      count_only: true,
    });
    const res = await this.etcd
      .if(fenceKey, "Create", ">", 0)
      .then(
        this.etcd.put(this.keys.snapshotMeta).value(JSON.stringify(meta)),
        this.etcd.delete().range(covered),
      )
      .commit();
    if (!res.succeeded) {
      await this.etcd.delete().prefix(this.keys.snapshotChunksPrefix(id));
      throw new NotLeaderError();
    }
    if (previous && previous.id !== id) {
      await this.etcd.delete().prefix(this.keys.snapshotChunksPrefix(previous.id));
    }
    return { meta, compacted: Number(countRes.count) };
  }
}

/** The etcd client refused a response above its receive limit (gRPC RESOURCE_EXHAUSTED). */
function isResponseTooBig(err: unknown): boolean {
  // After RESOURCE_EXHAUSTED the client's own retries trip its circuit breaker, so that is what surfaces.
  return (
    err instanceof GRPCResourceExhastedError ||
    /RESOURCE_EXHAUSTED|larger than max|circuit breaker is open/i.test(errorMessage(err))
  );
}

/** The smallest key greater than every key starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
