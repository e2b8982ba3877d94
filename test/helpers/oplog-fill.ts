import type { Etcd3 } from "etcd3";
import { createKeyspace } from "../../src/coordination/keyspace.js";
import { encodeOperation, type Command, type Operation } from "../../src/fsm/operations.js";
import { planNewTopic, planUnreachable } from "../../src/fsm/planner.js";
import { ClusterState } from "../../src/fsm/state.js";
import { createHashRing } from "../../src/ring/hash-ring.js";

/**
 * Builds a realistic history of `count` operations (brokers joining, topics created, brokers failing)
 * with the real planner, writes it straight into etcd in batched transactions (the exact key layout of
 * the operation log) and returns the state a correct replay must reach.
 */
export async function fillOperationLog(
  etcd: Etcd3,
  count: number,
  options: { prefix?: string; brokers?: number } = {},
): Promise<ClusterState> {
  const keys = createKeyspace(options.prefix ?? "/goulette");
  const state = new ClusterState();
  const brokers = options.brokers ?? 30;
  let ring = createHashRing({ virtualNodes: 150 });
  const batch: Operation[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const last = batch[batch.length - 1] as Operation;
    await etcd
      .if(keys.head, "Version", ">", -1)
      .then(
        ...batch.map((op) => etcd.put(keys.operation(op.id)).value(encodeOperation(op))),
        etcd.put(keys.head).value(String(last.id)),
      )
      .commit();
    batch.length = 0;
  };
  for (let id = 1; id <= count; id++) {
    let command: Command;
    if (id <= brokers) {
      command = { type: "registerBroker", data: { brokerId: `b${id}`, address: `127.0.0.1:${40000 + id}` } };
      ring = ring.withBroker(`b${id}`);
    } else if (id % 5000 === 0) {
      // Now and then a broker fails and its replicas move.
      const victim = state.healthyBrokerIds()[id % state.healthyBrokerIds().length] as string;
      command = planUnreachable(state, ring, [victim], "heartbeat-expired");
    } else if (id % 5000 === 1 && id > brokers) {
      const down = state.brokers().find((b) => b.status === "down");
      command = down
        ? { type: "addBrokerToHashRing", data: { brokerId: down.brokerId, address: down.address } }
        : planNewTopic(state, ring, { topic: `topic-${id}`, partitions: 3, replicaCount: 3 });
    } else {
      command = planNewTopic(state, ring, { topic: `topic-${id}`, partitions: 3, replicaCount: 3 });
    }
    const op = { ...command, id, timestamp: 1_700_000_000_000 + id, leaderId: "filler" } as Operation;
    state.apply(op);
    batch.push(op);
    if (batch.length === 120) await flush();
  }
  await flush();
  return state;
}
