import { create } from "@bufbuild/protobuf";
import { BrokerStatus } from "../gen/goulette/v1/common_pb.js";
import {
  GetRingResponseSchema,
  type GetRingRequest,
  type GetRingResponse,
} from "../gen/goulette/v1/sentinel_pb.js";
import { InvalidArgumentError, NotFoundError } from "../errors.js";
import { countMovedReplicas, partitionKey } from "../ring/placement.js";
import { hash64 } from "../ring/hash.js";
import type { HashRing } from "../ring/hash-ring.js";
import { planReplacement } from "../fsm/planner.js";
import type { ClusterState } from "../fsm/state.js";
import { validateBrokerId, validateTopicName } from "../fsm/validation.js";

/** Brokers one GetRing may plan as down: a what-if, not a bulk job. */
export const MAX_SIMULATED_DOWN = 16;

/**
 * GetRing's answer, a pure function of the applied state and its ring: every broker's virtual nodes,
 * the topic's partitions on the ring, and with simulate_down the planner's replacement for those
 * brokers (planReplacement, the same function the leader proposes from when they really go down).
 */
export function ringView(state: ClusterState, ring: HashRing, req: GetRingRequest): GetRingResponse {
  if (req.topic !== "") validateTopicName(req.topic);
  const topic = req.topic === "" ? undefined : state.topic(req.topic);
  if (req.topic !== "" && !topic) throw new NotFoundError(`topic '${req.topic}' does not exist`);
  const leaving = simulatedDown(state, req.simulateDown);

  const positions = new Map<string, bigint[]>(ring.brokers().map((id) => [id, []]));
  for (const point of ring.points()) {
    const list = positions.get(point.brokerId);
    if (list) list[point.vnode] = point.position;
  }
  const changes = leaving.size > 0 ? planReplacement(state, ring, leaving) : [];
  let moved = 0;
  let affected = 0;
  for (const change of changes) {
    const before = state.topic(change.topic)?.partitions ?? [];
    const touched = new Set(change.partitions.map((p) => p.partition));
    moved += countMovedReplicas(
      before.filter((p) => touched.has(p.partition)),
      change.partitions,
    );
    affected += change.partitions.length;
  }
  const planned = new Map(
    (changes.find((c) => c.topic === req.topic)?.partitions ?? []).map((p) => [p.partition, p.replicas]),
  );

  return create(GetRingResponseSchema, {
    virtualNodes: ring.virtualNodes,
    brokers: ring.brokers().map((id) => ({
      brokerId: id,
      status: state.broker(id)?.status === "down" ? BrokerStatus.DOWN : BrokerStatus.HEALTHY,
      positions: positions.get(id) ?? [],
    })),
    topic: topic?.topic ?? "",
    partitions: (topic?.partitions ?? []).map((p) => ({
      partition: p.partition,
      position: hash64(partitionKey(topic?.topic ?? "", p.partition)),
      replicas: p.replicas,
      plannedReplicas: leaving.size > 0 ? (planned.get(p.partition) ?? p.replicas) : [],
      epoch: BigInt(p.epoch),
    })),
    movedReplicas: moved,
    affectedPartitions: affected,
    appliedId: BigInt(state.appliedId),
  });
}

function simulatedDown(state: ClusterState, ids: readonly string[]): Set<string> {
  if (ids.length > MAX_SIMULATED_DOWN) {
    throw new InvalidArgumentError(
      `simulate_down names ${ids.length} brokers; at most ${MAX_SIMULATED_DOWN} can be planned at once`,
    );
  }
  for (const id of ids) {
    validateBrokerId(id);
    if (!state.broker(id)) throw new NotFoundError(`simulate_down names unknown broker '${id}'`);
  }
  return new Set(ids);
}
