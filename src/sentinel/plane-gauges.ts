import type { Operation } from "../fsm/operations.js";
import type { ClusterState } from "../fsm/state.js";
import type { SentinelMetrics } from "../observability/metrics.js";

/** What the control plane's gauges show, read at one moment. */
export interface PlaneView {
  state: ClusterState;
  isLeader: boolean;
  ready: boolean;
  etcdReachable: boolean;
  ring: { size: number; virtualNodeCount: number };
  head: number;
  /** Timestamp of the last applied operation (0: none yet): replay lag in seconds is measured from it. */
  lastAppliedTimestamp: number;
}

export function updatePlaneGauges(m: SentinelMetrics, view: PlaneView, now = Date.now()): void {
  const { state } = view;
  m.isLeader.set(view.isLeader ? 1 : 0);
  m.etcdUp.set(view.etcdReachable ? 1 : 0);
  m.ready.set(view.ready ? 1 : 0);
  m.ringBrokers.set(view.ring.size);
  m.ringVirtualNodes.set(view.ring.virtualNodeCount);
  m.topics.set(state.topicCount());
  const brokers = state.brokers();
  m.brokers.set({ status: "healthy" }, brokers.filter((b) => b.status === "healthy").length);
  m.brokers.set({ status: "down" }, brokers.filter((b) => b.status === "down").length);
  m.oplogHeadId.set(view.head);
  m.oplogAppliedId.set(state.appliedId);
  const lag = view.head - state.appliedId;
  m.replayLagOps.set(lag);
  m.replayLagSeconds.set(
    lag > 0 && view.lastAppliedTimestamp > 0 ? Math.max(0, (now - view.lastAppliedTimestamp) / 1000) : 0,
  );
}

/** A short, log-friendly view of an operation's parameters. */
export function summariseOperation(op: Operation): Record<string, unknown> {
  switch (op.type) {
    case "generateTopicReplicas":
      return {
        topic: op.data.topic,
        partitions: op.data.partitions.length,
        replicaCount: op.data.replicaCount,
      };
    case "handleUnreachableBrokers":
      return { brokers: op.data.brokerIds, reason: op.data.reason, topicsMoved: op.data.changes.length };
    case "unregisterBroker":
      return { broker: op.data.brokerId, topicsMoved: op.data.changes.length };
    case "reassignPartitions":
      return { topicsMoved: op.data.changes.length };
    default:
      return op.data;
  }
}
