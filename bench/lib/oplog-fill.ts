import type { Etcd3, IRequestOp } from "etcd3";
import type { Keyspace } from "../../src/coordination/keyspace.js";
import { planNewTopic, planUnreachable } from "../../src/fsm/planner.js";
import { encodeOperation, type Command, type Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { toStoredTopicInfo } from "../../src/oplog/topic-info.js";
import { createHashRing, type HashRing } from "../../src/ring/hash-ring.js";

/**
 * Fills an etcd with an operation log, fast: operations are planned by the real planner on the real ring
 * and applied to a ClusterState (so they are exactly what a leader would have appended), then written
 * straight into etcd in batched transactions, in the keyspace's exact format (operation keys, the
 * materialised topic keys, the head key). Much faster than appending one fenced transaction at a time.
 */
export interface FillOptions {
  etcd: Etcd3;
  keys: Keyspace;
  /** Stop once the log holds this many operations... */
  operations?: number;
  /** ...or once this many topics exist (whichever is given; operations wins if both are). */
  topics?: number;
  /** Brokers registered first (registerBroker each). */
  brokers: number;
  partitions: number;
  replicaCount: number;
  virtualNodes: number;
  /**
   * Churn: every this many operations a new broker joins (registerBroker) and, `churnLifetime` operations
   * later, is confirmed down (handleUnreachableBrokers, its replicas moved). 0 turns churn off.
   */
  churnEvery: number;
  churnLifetime: number;
  /** etcd requests per transaction (etcd's default --max-txn-ops is 128). */
  maxTxnOps?: number;
  /** Transactions in flight. */
  concurrency?: number;
  /** Timestamp of the first operation (Unix ms); each next one is 1 ms later. */
  startTimestamp?: number;
}

export interface FillResult {
  /** The state after the last operation: what a recovered sentinel must hold. */
  state: ClusterState;
  operations: number;
  topics: number;
  brokers: number;
  byType: Record<string, number>;
  /** Total and largest encoded operation, bytes. */
  operationBytes: number;
  largestOperationBytes: number;
  transactions: number;
  seconds: number;
}

export async function fillOplog(options: FillOptions): Promise<FillResult> {
  const started = Date.now();
  const { etcd, keys } = options;
  const maxTxnOps = options.maxTxnOps ?? 128;
  const concurrency = options.concurrency ?? 8;
  const state = new ClusterState();
  let ring: HashRing = createHashRing({ virtualNodes: options.virtualNodes });
  const baseTimestamp = options.startTimestamp ?? Date.UTC(2025, 0, 1);
  const byType: Record<string, number> = {};
  let operationBytes = 0;
  let largestOperationBytes = 0;
  let transactions = 0;

  // Keyed by etcd key: a topic created and then changed within one batch is put once (etcd rejects a
  // transaction that names a key twice), with its latest value.
  let batch = new Map<string, string>();
  const inFlight = new Set<Promise<void>>();
  const flush = async () => {
    if (batch.size === 0) return;
    const success: IRequestOp[] = [...batch].map(([key, value]) => ({
      request_put: { key: Buffer.from(key), value: Buffer.from(value) },
    }));
    batch = new Map();
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    const txn: Promise<void> = etcd.kv
      .txn({ compare: [], success, failure: [] })
      .then(() => undefined)
      .finally(() => inFlight.delete(txn));
    inFlight.add(txn);
    transactions++;
  };
  const put = async (key: string, value: string) => {
    batch.set(key, value);
    if (batch.size >= maxTxnOps) await flush();
  };

  const append = async (command: Command) => {
    const op = {
      ...command,
      id: state.appliedId + 1,
      timestamp: baseTimestamp + state.appliedId,
      leaderId: "bench-fill",
    } as Operation;
    const effect = state.apply(op);
    const encoded = encodeOperation(op);
    operationBytes += encoded.length;
    largestOperationBytes = Math.max(largestOperationBytes, encoded.length);
    byType[op.type] = (byType[op.type] ?? 0) + 1;
    await put(keys.operation(op.id), encoded);
    for (const topic of effect?.changedTopics ?? []) {
      const record = state.topic(topic);
      if (record) await put(keys.topic(topic), JSON.stringify(toStoredTopicInfo(record)));
    }
  };
  const register = async (brokerId: string, address: string) => {
    await append({ type: "registerBroker", data: { brokerId, address } });
    ring = ring.withBroker(brokerId);
  };

  const done = () =>
    options.operations !== undefined
      ? state.appliedId >= options.operations
      : state.topicCount() >= (options.topics ?? 0);

  // A current leader's log starts with the ring configuration; without it, a recovering plane that
  // wins the election would append one and recover to one operation more than was written.
  await append({ type: "configureRing", data: { virtualNodes: options.virtualNodes } });
  for (let b = 0; b < options.brokers && !done(); b++) {
    await register(
      `broker-${String(b).padStart(3, "0")}`,
      `10.0.${Math.floor(b / 250)}.${(b % 250) + 1}:9092`,
    );
  }
  const dying: { brokerId: string; downAt: number }[] = [];
  let flaky = 0;
  let topic = 0;
  while (!done()) {
    const next = state.appliedId + 1;
    const due = dying[0];
    if (due && next >= due.downAt) {
      dying.shift();
      await append(planUnreachable(state, ring, [due.brokerId], "heartbeat-expired"));
    } else if (options.churnEvery > 0 && next % options.churnEvery === 0) {
      const brokerId = `flaky-${String(flaky++).padStart(4, "0")}`;
      await register(brokerId, `10.1.${Math.floor(flaky / 250)}.${(flaky % 250) + 1}:9092`);
      dying.push({ brokerId, downAt: next + options.churnLifetime });
    } else {
      await append(
        planNewTopic(state, ring, {
          topic: `topic-${topic++}`,
          partitions: options.partitions,
          replicaCount: options.replicaCount,
        }),
      );
    }
  }
  await flush();
  await Promise.all(inFlight);
  await etcd.put(keys.head).value(String(state.appliedId));
  return {
    state,
    operations: state.appliedId,
    topics: state.topicCount(),
    brokers: state.brokers().length,
    byType,
    operationBytes,
    largestOperationBytes,
    transactions,
    seconds: (Date.now() - started) / 1000,
  };
}
