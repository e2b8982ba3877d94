import type { V1Pod } from "@kubernetes/client-node";
import { podAvailability, type BrokerUnavailableReason } from "./pod-readiness.js";

/** A broker pod that stopped being able to serve (what the pod watcher reports). */
export interface BrokerPodEvent {
  brokerId: string;
  reason: BrokerUnavailableReason;
  podName: string;
  detail: string;
}

/** A transition the tracker found: a broker turned unavailable, or became ready. */
export type PodTransition =
  | { readonly kind: "unavailable"; readonly event: BrokerPodEvent }
  | { readonly kind: "ready"; readonly brokerId: string; readonly podName: string };

export interface PodTrackerOptions {
  /** Maps a pod to a broker id. */
  brokerIdOf: (pod: V1Pod) => string;
}

/**
 * The last known state of each broker pod and the transitions between states. Pure bookkeeping, no I/O:
 * the watcher feeds it list results and watch events and delivers what it returns.
 */
export interface PodTracker {
  /**
   * A pod as seen in an ADDED/MODIFIED event or a list. A pod seen for the first time is a transition
   * from "unknown": reported when unavailable, and when ready unless `quietWhenReady` (the very first
   * list, where ready is the normal state and not news).
   */
  observe(pod: V1Pod, quietWhenReady?: boolean): PodTransition[];
  /** A pod is gone (DELETED event, or missing from a relist). */
  remove(pod: V1Pod, detail: string): PodTransition[];
  /** Replaces the known state with a full list, reporting what changed since (vanished pods first). */
  resync(pods: readonly V1Pod[], quietWhenReady?: boolean): PodTransition[];
}

interface KnownPod {
  uid: string | undefined;
  brokerId: string;
  ready: boolean;
  /** The reason last reported as unavailable, so a terminating pod that then disappears is told once. */
  reported: BrokerUnavailableReason | undefined;
}

export function createPodTracker(options: PodTrackerOptions): PodTracker {
  const known = new Map<string, KnownPod>();

  const forget = (name: string, entry: KnownPod, detail: string): PodTransition[] => {
    known.delete(name);
    if (entry.reported === "deleted") return [];
    return [
      { kind: "unavailable", event: { brokerId: entry.brokerId, reason: "deleted", podName: name, detail } },
    ];
  };

  const observe = (pod: V1Pod, quietWhenReady = false): PodTransition[] => {
    const name = pod.metadata?.name;
    if (!name) return [];
    const uid = pod.metadata?.uid;
    const transitions: PodTransition[] = [];
    let previous = known.get(name);
    // A StatefulSet recreates a pod under the same name: the old one is gone even if no DELETED was seen.
    if (previous && uid && previous.uid && previous.uid !== uid) {
      transitions.push(...forget(name, previous, "pod was replaced by a new pod with the same name"));
      previous = undefined;
    }
    const brokerId = options.brokerIdOf(pod);
    const availability = podAvailability(pod);
    if (availability.ready) {
      known.set(name, { uid, brokerId, ready: true, reported: undefined });
      if (previous ? !previous.ready : !quietWhenReady)
        transitions.push({ kind: "ready", brokerId, podName: name });
      return transitions;
    }
    if (previous && !previous.ready) {
      // Still unavailable: one report per transition, whatever the reason turns into.
      known.set(name, { ...previous, uid, brokerId });
      return transitions;
    }
    known.set(name, { uid, brokerId, ready: false, reported: availability.reason });
    transitions.push({
      kind: "unavailable",
      event: { brokerId, reason: availability.reason, podName: name, detail: availability.detail },
    });
    return transitions;
  };

  const remove = (pod: V1Pod, detail: string): PodTransition[] => {
    const name = pod.metadata?.name;
    if (!name) return [];
    const entry = known.get(name);
    if (!entry) return [];
    // A stale DELETED for an older incarnation must not take down its successor.
    const uid = pod.metadata?.uid;
    if (uid && entry.uid && uid !== entry.uid) return [];
    return forget(name, entry, detail);
  };

  const resync = (pods: readonly V1Pod[], quietWhenReady = false): PodTransition[] => {
    const listed = new Set(pods.map((p) => p.metadata?.name).filter((n): n is string => n !== undefined));
    const transitions: PodTransition[] = [];
    for (const [name, entry] of [...known]) {
      if (!listed.has(name))
        transitions.push(...forget(name, entry, "pod no longer exists (found by relist)"));
    }
    for (const pod of pods) transitions.push(...observe(pod, quietWhenReady));
    return transitions;
  };

  return { observe, remove, resync };
}
