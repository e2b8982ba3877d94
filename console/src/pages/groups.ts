/**
 * Consumer groups: the list, and one group's members, assignment and lag per partition (the SDK's
 * Admin.describeGroup asks each partition leader), with an offset reset that the sentinels and brokers
 * refuse while the group has live members.
 */
import type { GroupDescription, OffsetTarget } from "../../../src/client/web.js";
import { admin, sentinel, timeout } from "../api.js";
import { ago, badge, controlsForm, h, link, section, table } from "../dom.js";
import { act, confirmThenAct, fill, pageElement, type PageView } from "../ui.js";

const STATE_TONE: Record<string, "ok" | "warn" | "info"> = {
  stable: "ok",
  rebalancing: "warn",
  empty: "info",
};

export function groupsPage(): PageView {
  const list = h("div");
  const element = pageElement("Consumer groups", list);
  const refresh = () =>
    fill(list, async () => {
      const { groups } = await sentinel.listGroups({ prefix: "" }, timeout());
      return table(
        ["Group", "State", "Members", "Generation", "Topics", "Partitions"],
        groups.map((g) => [
          link(`#/groups/${encodeURIComponent(g.group)}`, g.group),
          badge(g.state, STATE_TONE[g.state] ?? "info"),
          String(g.members),
          String(g.generation),
          g.topics.join(", "),
          String(g.partitions),
        ]),
        { "data-testid": "groups" },
      );
    });
  return { title: "Groups", element, refresh, refreshMs: 5_000 };
}

export function groupPage(group: string): PageView {
  const summary = h("div");
  const members = h("div");
  const partitions = h("div");
  const resetArea = h("div");
  const element = pageElement(
    `Group ${group}`,
    summary,
    section("Members", members),
    section("Partitions", partitions),
    section("Reset offsets", resetArea),
  );
  let described: GroupDescription | undefined;

  async function refresh(): Promise<void> {
    const client = admin();
    try {
      await fill(summary, async () => {
        described = await client.describeGroup(group);
        return h(
          "p",
          {},
          described.state
            ? badge(described.state, STATE_TONE[described.state] ?? "info")
            : badge("unknown group", "warn"),
          ` generation ${described.generation} · ${described.members.length} live member(s)`,
        );
      });
    } finally {
      await client.close();
    }
    const d = described;
    if (!d) return;
    members.replaceChildren(
      table(
        ["Member", "Instance", "Client", "Topics", "Owns", "Last heartbeat"],
        d.members.map((m) => [
          h("code", {}, m.memberId),
          m.instanceId || "—",
          m.clientId || "—",
          m.topics.join(", "),
          m.partitions.map((p) => `${p.topic}#${p.partition}`).join(", ") || "—",
          ago(m.lastHeartbeat),
        ]),
      ),
    );
    partitions.replaceChildren(
      table(
        ["Topic", "Partition", "Owner", "Committed", "Log start", "High watermark", "Lag"],
        d.partitions.map((p) => [
          p.topic,
          String(p.partition),
          p.owner ? h("code", {}, p.owner) : "—",
          p.committed < 0 ? "none" : String(p.committed),
          p.error ? badge(p.error, "bad") : String(p.logStart),
          p.error ? "—" : String(p.highWatermark),
          p.lag === undefined ? "—" : badge(String(p.lag), p.lag === 0 ? "ok" : "warn"),
        ]),
        { "data-testid": "group-partitions" },
      ),
    );
    if (!resetArea.hasChildNodes()) resetArea.append(resetForm(group, () => described));
  }
  return { title: group, element, refresh, refreshMs: 5_000 };
}

/** The SDK's resetOffsets refuses while the group has live members (asked at the time of the reset). */
function resetForm(group: string, current: () => GroupDescription | undefined): HTMLElement {
  const topic = h("input", {
    id: "reset-topic",
    type: "text",
    required: true,
    value: current()?.partitions[0]?.topic ?? "",
  });
  const target = h(
    "select",
    { id: "reset-to" },
    h("option", { value: "earliest" }, "earliest (log start)"),
    h("option", { value: "latest" }, "latest (high watermark)"),
    h("option", { value: "offset" }, "an offset"),
  );
  const offset = h("input", { id: "reset-offset", type: "number", min: 0, value: "0" });
  const status = h("p", { class: "status", "data-testid": "reset-status" });
  const to = (): OffsetTarget =>
    target.value === "offset" ? { offset: Number(offset.value) } : (target.value as "earliest" | "latest");
  const submit = async (e: Event) => {
    e.preventDefault();
    const client = admin();
    try {
      const preview = await act(
        status,
        () => client.resetOffsets({ group, topic: topic.value, to: to(), dryRun: true }),
        (r) => `${r.length} partition(s) would move`,
      );
      if (!preview) return;
      const moves = preview.map((r) => `#${r.partition}: ${r.before} → ${r.after}`).join(", ");
      await confirmThenAct(
        status,
        {
          title: `Reset ${group} on ${topic.value}?`,
          text: `New committed offsets: ${moves}.`,
          action: "Reset offsets",
        },
        () => client.resetOffsets({ group, topic: topic.value, to: to() }),
        (r) => `reset ${r.length} partition(s): ${r.map((x) => `#${x.partition} → ${x.after}`).join(", ")}`,
      );
    } finally {
      await client.close();
    }
  };
  return controlsForm(
    (e) => void submit(e),
    [
      ["Topic", topic],
      ["To", target],
      ["Offset", offset],
    ],
    { id: "reset-go", text: "Reset…", tone: "danger" },
    status,
  );
}
