import { Counter, Gauge, type Registry } from "prom-client";
import type { GroupView } from "../groups/group-view.js";
import { groupPhase } from "../groups/transitions.js";

/**
 * Per-group series are bounded: the first MAX_GROUP_SERIES groups by name get their own `group`
 * label, the rest are summed under group="_other" (members, partitions moving). Every sentinel
 * exports them from its mirror, so dashboards take max by (group).
 */
export const MAX_GROUP_SERIES = 200;
export const OTHER_GROUPS = "_other";

export interface GroupMetrics {
  rebalances: Counter<"reason">;
}

export function createGroupMetrics(registry: Registry, view: GroupView): GroupMetrics {
  const registers = [registry];
  new Gauge({
    name: "goulette_sentinel_consumer_groups",
    help: "Consumer groups known to the sentinels, by state (stable, rebalancing, empty)",
    labelNames: ["state"],
    registers,
    collect() {
      this.reset();
      const counts = { stable: 0, rebalancing: 0, empty: 0 };
      for (const group of view.groups()) {
        const snapshot = view.get(group);
        counts[groupPhase(snapshot.state, snapshot.members)]++;
      }
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: "goulette_sentinel_group_members",
    help: `Live members of a consumer group (groups beyond the first ${MAX_GROUP_SERIES} summed as ${OTHER_GROUPS})`,
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      forEachBounded(view, (label, group) => this.inc({ group: label }, view.get(group).members.size));
    },
  });
  new Gauge({
    name: "goulette_sentinel_group_generation",
    help: `Generation of a consumer group: it increases at every change of its assignment (first ${MAX_GROUP_SERIES} groups)`,
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      forEachBounded(view, (label, group) => {
        if (label !== OTHER_GROUPS) this.set({ group: label }, view.get(group).state.generation);
      });
    },
  });
  new Gauge({
    name: "goulette_sentinel_group_partitions_moving",
    help: "Partitions of a consumer group not yet with their target member (being revoked or handed over)",
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      forEachBounded(view, (label, group) => {
        const { state } = view.get(group);
        const keys = new Set([...Object.keys(state.targets), ...Object.keys(state.owners)]);
        let moving = 0;
        for (const key of keys) if (state.targets[key] !== state.owners[key]?.member) moving++;
        this.inc({ group: label }, moving);
      });
    },
  });
  return {
    rebalances: new Counter({
      name: "goulette_sentinel_group_rebalances_total",
      help: "Consumer-group assignment changes written by this sentinel as leader, by cause",
      labelNames: ["reason"],
      registers,
    }),
  };
}

function forEachBounded(view: GroupView, visit: (label: string, group: string) => void): void {
  const groups = view.groups();
  groups.forEach((group, i) => visit(i < MAX_GROUP_SERIES ? group : OTHER_GROUPS, group));
}
