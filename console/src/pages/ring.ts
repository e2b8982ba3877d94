/**
 * The ring: every broker's virtual nodes on a circle, a topic's partitions at their keys' positions
 * with a line to the virtual node where each replica was found walking clockwise, and the planner's
 * answer to "what if this broker went down" (dashed lines, and the table's "after" column).
 */
import { BrokerStatus } from "../../../src/gen/goulette/v1/common_pb.js";
import type { GetRingResponse } from "../../../src/gen/goulette/v1/sentinel_pb.js";
import { sentinel, timeout } from "../api.js";
import { badge, h, section, svg, table } from "../dom.js";
import { firstNodeOf, fractionOf, pointAt, sortedNodes, type VirtualNode } from "../ring-geometry.js";
import { fill, pageElement, type PageView, type Route } from "../ui.js";
import { topicNames } from "./topics.js";

const SIZE = 560;
const C = SIZE / 2;
const R = 220;
const PARTITION_R = R - 70;
const PALETTE = 8;

export function ringPage(route: Route): PageView {
  let topic = route.params.get("topic") ?? "";
  let down = route.params.get("down") ?? "";
  const topicSelect = h("select", { id: "ring-topic", onchange: () => choose() });
  const downSelect = h("select", { id: "ring-down", onchange: () => choose() });
  const topicNote = h("div");
  const drawing = h("div", { class: "ring-drawing" });
  const details = h("div");
  const element = pageElement(
    "Hash ring",
    h(
      "div",
      { class: "controls" },
      h("label", { for: "ring-topic" }, "Topic"),
      topicSelect,
      h("label", { for: "ring-down" }, "Simulate broker down"),
      downSelect,
    ),
    topicNote,
    h("div", { class: "ring-layout" }, drawing, details),
  );

  function choose(): void {
    topic = topicSelect.value;
    down = downSelect.value;
    const params = new URLSearchParams({ ...(topic ? { topic } : {}), ...(down ? { down } : {}) });
    history.replaceState(null, "", `#/ring${params.size ? `?${params}` : ""}`);
    void refresh();
  }

  async function refresh(): Promise<void> {
    let names: string[] = [];
    await fill(topicNote, async () => {
      names = await topicNames();
      return null;
    });
    if (!topic && names.length > 0) topic = names[0] as string;
    options(topicSelect, [["", "(no topic)"], ...names.map((n): [string, string] => [n, n])], topic);
    let ring: GetRingResponse | undefined;
    await fill(details, async () => {
      ring = await sentinel.getRing({ topic, simulateDown: down ? [down] : [] }, timeout());
      const healthy = ring.brokers.filter((b) => b.status !== BrokerStatus.DOWN).map((b) => b.brokerId);
      options(downSelect, [["", "(none)"], ...healthy.map((id): [string, string] => [id, id])], down);
      return ringDetails(ring, down);
    });
    if (ring) drawing.replaceChildren(drawRing(ring, down));
  }

  return { title: "Ring", element, refresh, refreshMs: 3_000 };
}

/** Replaces a select's options (keeping focus and the choice when it still exists). */
function options(select: HTMLSelectElement, entries: [string, string][], chosen: string): void {
  const same =
    select.options.length === entries.length &&
    entries.every(([value], i) => select.options[i]?.value === value);
  if (!same) select.replaceChildren(...entries.map(([value, text]) => h("option", { value }, text)));
  select.value = entries.some(([value]) => value === chosen) ? chosen : "";
}

function colour(ring: GetRingResponse, brokerId: string): string {
  const i = ring.brokers.findIndex((b) => b.brokerId === brokerId);
  const b = ring.brokers[i];
  return b?.status === BrokerStatus.DOWN ? "down" : `b${i % PALETTE}`;
}

function drawRing(ring: GetRingResponse, down: string): SVGElement {
  const nodes = sortedNodes(ring.brokers);
  const ticks = nodes.map((node) => {
    const f = fractionOf(node.position);
    const [x1, y1] = pointAt(f, R - 9, C);
    const [x2, y2] = pointAt(f, R + 9, C);
    return svg("line", { x1, y1, x2, y2, class: `vnode ${colour(ring, node.brokerId)}` });
  });
  const partitions = ring.partitions.map((p) => {
    const f = fractionOf(p.position);
    const [px, py] = pointAt(f, PARTITION_R, C);
    const link = (replica: string, index: number, planned: boolean) => {
      const node = firstNodeOf(nodes, replica, p.position) as VirtualNode | undefined;
      if (!node) return null;
      const [x, y] = pointAt(fractionOf(node.position), R - 9, C);
      const kind = planned ? "planned" : index === 0 ? "leader" : "follower";
      return svg("line", { x1: px, y1: py, x2: x, y2: y, class: `replica ${kind} ${colour(ring, replica)}` });
    };
    const moved = down ? p.plannedReplicas.filter((id) => !p.replicas.includes(id)) : [];
    const [lx, ly] = pointAt(f, PARTITION_R - 18, C);
    return svg(
      "g",
      { class: "partition", "data-partition": p.partition },
      p.replicas.map((id, i) => link(id, i, false)),
      moved.map((id) => link(id, 1, true)),
      svg("circle", { cx: px, cy: py, r: 6, class: `pdot${moved.length ? " moving" : ""}` }),
      svg(
        "text",
        { x: lx, y: ly, class: "plabel", "text-anchor": "middle", "dominant-baseline": "middle" },
        `p${p.partition}`,
      ),
    );
  });
  return svg(
    "svg",
    {
      viewBox: `0 0 ${SIZE} ${SIZE}`,
      role: "img",
      "aria-label": `Hash ring: ${ring.brokers.length} brokers, ${nodes.length} virtual nodes${ring.topic ? `, topic ${ring.topic}` : ""}`,
      "data-testid": "ring",
      "data-nodes": nodes.length,
    },
    svg("circle", { cx: C, cy: C, r: R, class: "ring-circle" }),
    ticks,
    partitions,
    svg("text", { x: C, y: C, class: "ring-centre", "text-anchor": "middle" }, ring.topic || "no topic"),
  );
}

function ringDetails(ring: GetRingResponse, down: string): HTMLElement[] {
  const legend = h(
    "ul",
    { class: "legend", "data-testid": "ring-legend" },
    ring.brokers.map((b) =>
      h(
        "li",
        { "data-broker": b.brokerId, "data-status": b.status === BrokerStatus.DOWN ? "down" : "healthy" },
        h("span", { class: `chip ${colour(ring, b.brokerId)}` }),
        b.brokerId,
        " ",
        b.status === BrokerStatus.DOWN ? badge("down", "bad") : badge("healthy", "ok"),
        h("span", { class: "muted" }, ` ${b.positions.length} vnodes`),
      ),
    ),
  );
  const rows = ring.partitions.map((p) => {
    const after = down ? p.plannedReplicas : p.replicas;
    const changed = down && after.join() !== p.replicas.join();
    return [
      `p${p.partition}`,
      `${(fractionOf(p.position) * 360).toFixed(1)}°`,
      replicaList(p.replicas),
      down ? replicaList(after, p.replicas) : "—",
      changed ? badge("moves", "warn") : "",
    ];
  });
  const plan = down
    ? h(
        "p",
        { class: "notice info", "data-testid": "plan-summary" },
        `If ${down} went down, the leader's planner would change ${ring.affectedPartitions} partition(s) ` +
          `over all topics and copy ${ring.movedReplicas} replica(s) to other brokers. ` +
          `Surviving replicas keep their order; when it happens, the most up-to-date survivor leads.`,
      )
    : null;
  return [
    section(`Brokers (${ring.virtualNodes} virtual nodes each)`, legend),
    section(
      ring.topic ? `Partitions of ${ring.topic}` : "Partitions",
      plan,
      table(
        ["Partition", "Key at", "Replicas (leader first)", down ? `After ${down} down` : "Planned", ""],
        rows,
        {
          "data-testid": "ring-partitions",
        },
      ),
    ),
    h("p", { class: "muted" }, `Applied operation ${ring.appliedId}`),
  ];
}

function replicaList(ids: readonly string[], before?: readonly string[]): HTMLElement {
  return h(
    "span",
    { class: "replicas" },
    ids.map((id, i) =>
      h(
        "span",
        { class: `replica-id${i === 0 ? " lead" : ""}${before && !before.includes(id) ? " new" : ""}` },
        id,
      ),
    ),
  );
}
