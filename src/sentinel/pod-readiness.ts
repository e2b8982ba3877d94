import type { V1Pod } from "@kubernetes/client-node";

/** Why a broker pod cannot serve. */
export type BrokerUnavailableReason = "not-ready" | "deleted" | "evicted" | "failed";

/** What a pod's object says about its ability to serve: ready, or unavailable with a reason. */
export type PodAvailability =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: BrokerUnavailableReason; readonly detail: string };

/**
 * Classifies a pod as the API server reports it. Objects from a watch stream are raw JSON (timestamps are
 * strings, not Dates), so only presence is tested, never the type of a field.
 * The most specific reason wins: an evicted pod is also Failed and NotReady, but "evicted" says more.
 */
export function podAvailability(pod: V1Pod): PodAvailability {
  const status = pod.status;
  const message = status?.message ? `: ${status.message}` : "";
  if (status?.reason === "Evicted") {
    return { ready: false, reason: "evicted", detail: `pod was evicted${message}` };
  }
  if (status?.phase === "Failed") {
    const why = status.reason ? ` (${status.reason})` : "";
    return { ready: false, reason: "failed", detail: `pod phase is Failed${why}${message}` };
  }
  if (pod.metadata?.deletionTimestamp) {
    return { ready: false, reason: "deleted", detail: "pod is terminating (deletionTimestamp is set)" };
  }
  const condition = status?.conditions?.find((c) => c.type === "Ready");
  if (condition?.status !== "True") {
    const state = condition ? `Ready=${condition.status}` : "no Ready condition";
    const why = condition?.reason ? ` (${condition.reason})` : "";
    return {
      ready: false,
      reason: "not-ready",
      detail: `${state}${why}, phase ${status?.phase ?? "unknown"}`,
    };
  }
  return { ready: true };
}
