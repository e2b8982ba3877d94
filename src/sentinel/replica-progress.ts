import type { Logger } from "../observability/logger.js";
import { survivorsToAsk, type ProgressOf, type ReplicaProgress } from "../fsm/leader-choice.js";
import type { ClusterState } from "../fsm/state.js";
import type { BrokerProber } from "./broker-prober.js";

/**
 * Asks the surviving replicas of every partition led by one of `leaving` how far their logs go (one
 * Health call per broker, in parallel, each bounded by the prober's timeout). A broker that does not
 * answer simply has no progress: it is ranked last, never waited for.
 */
export async function readReplicaProgress(
  prober: Pick<BrokerProber, "progress">,
  state: ClusterState,
  leaving: readonly string[],
  logger?: Logger,
): Promise<ProgressOf> {
  const progress = new Map<string, ReplicaProgress>();
  const keyOf = (topic: string, partition: number, brokerId: string) => `${topic}\0${partition}\0${brokerId}`;
  const asks = survivorsToAsk(state, new Set(leaving));
  await Promise.all(
    [...asks].map(async ([brokerId, partitions]) => {
      const address = state.broker(brokerId)?.address;
      if (!address) return;
      const answers = await prober.progress(address, partitions);
      if (!answers) {
        logger?.warn({ brokerId }, "surviving replica did not report its log progress; ranking it last");
        return;
      }
      for (const a of answers) {
        // A damaged replica refuses to lead: unknown progress keeps it from being chosen.
        if (a.damaged) continue;
        progress.set(keyOf(a.topic, a.partition, brokerId), {
          lastEpoch: a.lastEpoch,
          logEndOffset: a.logEndOffset,
        });
      }
    }),
  );
  logger?.info(
    {
      leaving,
      progress: Object.fromEntries(
        [...progress].map(([key, p]) => [key.replaceAll("\0", "/"), `${p.lastEpoch}:${p.logEndOffset}`]),
      ),
    },
    "read the surviving replicas' log progress before choosing new leaders",
  );
  return (topic, partition, brokerId) => progress.get(keyOf(topic, partition, brokerId));
}
