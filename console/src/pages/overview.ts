/** Overview: who leads, whether the sentinels agree, the brokers, and the newest operations. */
import { BrokerStatus } from "../../../src/gen/goulette/v1/common_pb.js";
import type { GetClusterStatusResponse } from "../../../src/gen/goulette/v1/sentinel_pb.js";
import { broker, messageOf, peer, sentinel, timeout, LISTENER } from "../api.js";
import { ago, badge, h, link, section, table, time } from "../dom.js";
import { fill, pageElement, type PageView } from "../ui.js";

export function overviewPage(): PageView {
  const summary = h("div", { class: "cards" });
  const sentinels = h("div");
  const brokers = h("div");
  const operations = h("div");
  const element = pageElement(
    "Overview",
    summary,
    section("Sentinels", sentinels),
    section("Brokers", brokers),
    section("Recent operations", operations),
  );

  async function refresh(): Promise<void> {
    let status: GetClusterStatusResponse;
    try {
      status = await sentinel.getClusterStatus({ listener: LISTENER }, timeout());
    } catch (err) {
      await fill(summary, () => Promise.reject(err));
      return;
    }
    await Promise.all([
      fill(summary, async () => summaryCards(status)),
      fill(sentinels, () => sentinelTable(status)),
      fill(brokers, () => brokerTable(status)),
      fill(operations, () => recentOperations(status)),
    ]);
  }

  return { title: "Overview", element, refresh, refreshMs: 3_000 };
}

function card(label: string, value: string | HTMLElement, id?: string): HTMLElement {
  return h(
    "div",
    { class: "card", ...(id ? { "data-testid": id } : {}) },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
  );
}

function summaryCards(s: GetClusterStatusResponse): HTMLElement[] {
  const healthy = s.brokers.filter((b) => b.status === BrokerStatus.HEALTHY).length;
  return [
    card("Leader", s.leaderId || "none", "leader"),
    card("Served by", s.sentinelId),
    card("Brokers healthy", `${healthy} / ${s.brokers.length}`, "brokers-healthy"),
    card("Topics", String(s.topics)),
    card("Ring", `${s.ringBrokers} brokers · ${s.ringVirtualNodes} vnodes`),
    card("Op log", `head ${s.oplogHeadId} · snapshot ${s.snapshotId}`),
  ];
}

/** Every campaigning sentinel's own view, asked through this one; digests compared at equal ids. */
async function sentinelTable(s: GetClusterStatusResponse): Promise<HTMLElement> {
  const views = await Promise.all(
    s.sentinels.map(async (info) => {
      if (!info.id) return { info, error: "unknown id (older version)" };
      try {
        const view = info.id === s.sentinelId ? s : await peer(info.id).getClusterStatus({}, timeout(5_000));
        return { info, view };
      } catch (err) {
        return { info, error: messageOf(err) };
      }
    }),
  );
  const leaderView = views.find((v) => v.info.isLeader)?.view;
  return table(
    ["Sentinel", "URL", "Role", "Op-log head", "Applied", "Replay lag", "State digest", "Agrees"],
    views.map(({ info, view, error }) => [
      h("span", { "data-sentinel": info.id }, info.id || "?"),
      info.url,
      info.isLeader ? badge("leader", "ok") : "follower",
      view ? String(view.oplogHeadId) : "—",
      view ? String(view.oplogAppliedId) : "—",
      view ? badge(String(view.replayLagOps), view.replayLagOps === 0n ? "ok" : "warn") : "—",
      view
        ? h("code", { title: view.stateDigest }, view.stateDigest.slice(0, 12))
        : badge(error ?? "?", "bad"),
      view && leaderView ? agreement(view, leaderView) : "—",
    ]),
  );
}

function agreement(view: GetClusterStatusResponse, leader: GetClusterStatusResponse): HTMLElement {
  if (view.oplogAppliedId !== leader.oplogAppliedId) return badge("catching up", "warn");
  return view.stateDigest === leader.stateDigest ? badge("yes", "ok") : badge("DIFFERS", "bad");
}

const STATUS: Record<number, [string, "ok" | "warn" | "bad" | "info"]> = {
  [BrokerStatus.HEALTHY]: ["healthy", "ok"],
  [BrokerStatus.SUSPICIOUS]: ["suspicious", "warn"],
  [BrokerStatus.DOWN]: ["down", "bad"],
};

/** The brokers as the sentinel records them, with partitions led/followed as each broker reports. */
async function brokerTable(s: GetClusterStatusResponse): Promise<HTMLElement> {
  const health = await Promise.all(
    s.brokers.map((b) =>
      b.status === BrokerStatus.DOWN
        ? Promise.resolve(undefined)
        : broker(b.address)
            .health({}, timeout(3_000))
            .catch(() => undefined),
    ),
  );
  return table(
    ["Broker", "Status", "Address", "Last heartbeat", "Led", "Followed", "Topics"],
    s.brokers.map((b, i) => {
      const [text, tone] = STATUS[b.status] ?? ["unknown", "info"];
      const h1 = health[i];
      return [
        h("span", { "data-broker": b.brokerId }, b.brokerId),
        badge(text, tone),
        h("code", {}, b.address),
        ago(b.lastHeartbeat),
        h1 ? String(h1.partitionsLed) : "—",
        h1 ? String(h1.partitionsFollowed) : "—",
        String(b.topics.length),
      ];
    }),
    { "data-testid": "brokers" },
  );
}

async function recentOperations(s: GetClusterStatusResponse): Promise<HTMLElement> {
  const after = s.oplogHeadId > 10n ? s.oplogHeadId - 10n : 0n;
  const page = await sentinel.listOperations({ afterId: after, limit: 10 }, timeout());
  return h(
    "div",
    {},
    table(
      ["Id", "Time", "Type", "Leader"],
      [...page.operations]
        .reverse()
        .map((op) => [String(op.id), time(op.timestamp), h("code", {}, op.type), op.leaderId]),
    ),
    h("p", {}, link("#/oplog", "Whole operation log →")),
  );
}
