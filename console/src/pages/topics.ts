/** Topics: the list, and one topic's partitions with what their replicas report (Health). */
import type { HealthResponse, PartitionProgress } from "../../../src/gen/goulette/v1/broker_pb.js";
import type { TopicReplicaInfo } from "../../../src/gen/goulette/v1/common_pb.js";
import { LISTENER, admin, broker, sentinel, timeout } from "../api.js";
import { badge, bytes, controlsForm, h, link, section, table, time } from "../dom.js";
import { confirmThenAct, fill, pageElement, type PageView } from "../ui.js";

/** Every topic's assignment (all pages of ListTopics). */
export async function allTopics(): Promise<TopicReplicaInfo[]> {
  const topics: TopicReplicaInfo[] = [];
  let after = "";
  do {
    const page = await sentinel.listTopics({ after, limit: 1000 }, timeout());
    topics.push(...page.topics);
    after = page.nextAfter;
  } while (after !== "");
  return topics;
}

export async function topicNames(): Promise<string[]> {
  return (await allTopics()).map((t) => t.topic);
}

export function topicsPage(): PageView {
  const list = h("div");
  const element = pageElement("Topics", list);
  const refresh = () =>
    fill(list, async () => {
      const topics = await allTopics();
      return table(
        ["Topic", "Partitions", "Replicas", "Brokers", "Changed by op", "At"],
        topics.map((t) => [
          link(`#/topics/${encodeURIComponent(t.topic)}`, t.topic),
          String(t.partitions.length),
          String(t.replicaCount),
          t.brokers.join(", "),
          String(t.version),
          time(t.timestamp),
        ]),
        { "data-testid": "topics" },
      );
    });
  return { title: "Topics", element, refresh, refreshMs: 5_000 };
}

export function topicPage(name: string): PageView {
  const partitions = h("div");
  const deleteArea = h("div");
  const element = pageElement(
    `Topic ${name}`,
    h(
      "p",
      {},
      link(`#/topics/${encodeURIComponent(name)}/messages`, "Browse and produce messages →"),
      " · ",
      link(`#/ring?topic=${encodeURIComponent(name)}`, "On the ring →"),
    ),
    section("Partitions", partitions),
    section("Delete records", deleteArea),
  );
  const refresh = async () => {
    let count = 0;
    await fill(partitions, async () => {
      const shown = await partitionTable(name);
      count = shown.partitions;
      return shown.element;
    });
    if (count > 0 && !deleteArea.hasChildNodes()) deleteArea.append(deleteForm(name, count));
  };
  return { title: name, element, refresh, refreshMs: 5_000 };
}

/**
 * DeleteRecords through the SDK's Admin (each partition's leader, answered once every in-sync replica
 * deleted them), after a confirmation: every acknowledged record, or those below an offset.
 */
function deleteForm(topic: string, partitionCount: number): HTMLElement {
  const partition = h(
    "select",
    { id: "delete-partition" },
    h("option", { value: "all" }, "every partition"),
    ...Array.from({ length: partitionCount }, (_, p) => h("option", { value: String(p) }, `#${p}`)),
  );
  const what = h(
    "select",
    { id: "delete-what" },
    h("option", { value: "all" }, "every acknowledged record"),
    h("option", { value: "before" }, "the records below an offset"),
  );
  const offset = h("input", { id: "delete-before", type: "number", min: 0, value: "0" });
  const status = h("p", { class: "status", "data-testid": "delete-status" });
  const submit = async (e: Event) => {
    e.preventDefault();
    const partitions = partition.value === "all" ? undefined : [Number(partition.value)];
    const before = what.value === "before" ? Number(offset.value) : undefined;
    const where = partitions === undefined ? "every partition" : `partition #${partitions[0]}`;
    const records = before === undefined ? "every acknowledged record" : `the records below offset ${before}`;
    const client = admin();
    try {
      await confirmThenAct(
        status,
        {
          title: `Delete records of ${topic}?`,
          text:
            `On ${where}, ${records} will be deleted from every replica. Consumers can no longer read them; ` +
            "groups committed below the new log start resume there. This cannot be undone.",
          action: "Delete records",
        },
        () =>
          client.deleteRecords({
            topic,
            ...(partitions ? { partitions } : {}),
            ...(before !== undefined ? { before } : {}),
          }),
        (r) => `deleted: ${r.map((x) => `#${x.partition} log start ${x.logStart}`).join(", ")}`,
      );
    } finally {
      await client.close();
    }
  };
  return controlsForm(
    (e) => void submit(e),
    [
      ["Partition", partition],
      ["Delete", what],
      ["Offset", offset],
    ],
    { id: "delete-go", text: "Delete…", tone: "danger" },
    status,
  );
}

async function partitionTable(name: string): Promise<{ element: HTMLElement; partitions: number }> {
  // GetRing, not GetBrokers: it never creates the topic (a mistyped name is NOT_FOUND).
  const { partitions: placed } = await sentinel.getRing({ topic: name }, timeout());
  const partitions = placed.map((p) => ({ ...p, leader: p.replicas[0] ?? "" }));
  const status = await sentinel.getClusterStatus({ listener: LISTENER }, timeout());
  const address = new Map(status.brokers.map((b) => [b.brokerId, b.address]));
  // One Health call per replica broker, asking for every partition of the topic it holds.
  const ids = [...new Set(partitions.flatMap((p) => p.replicas))];
  const refs = partitions.map((p) => ({ topic: name, partition: p.partition }));
  const answers = new Map<string, HealthResponse | undefined>(
    await Promise.all(
      ids.map(async (id): Promise<[string, HealthResponse | undefined]> => {
        const at = address.get(id);
        const health = at
          ? await broker(at)
              .health({ partitions: refs }, timeout(4_000))
              .catch(() => undefined)
          : undefined;
        return [id, health];
      }),
    ),
  );
  const progress = (id: string, partition: number): PartitionProgress | undefined =>
    answers.get(id)?.partitions.find((p) => p.partition === partition);
  const element = table(
    ["Partition", "Leader", "Replicas", "In sync", "High watermark", "Log start", "Log end", "Size", "Epoch"],
    partitions.map((p) => {
      const lead = progress(p.leader, p.partition);
      const isr = lead?.inSyncReplicas ?? [];
      return [
        link(`#/topics/${encodeURIComponent(name)}/messages?partition=${p.partition}`, String(p.partition)),
        p.leader ? h("span", { "data-leader": p.leader }, p.leader) : badge("none", "bad"),
        p.replicas.join(", "),
        lead
          ? badge(isr.join(", ") || "—", isr.length < p.replicas.length ? "warn" : "ok")
          : badge("leader unreachable", "bad"),
        lead ? String(lead.highWatermark) : "—",
        lead ? String(lead.logStartOffset) : "—",
        lead ? String(lead.logEndOffset) : "—",
        lead ? bytes(lead.sizeBytes) : "—",
        String(p.epoch),
      ];
    }),
    { "data-testid": "partitions" },
  );
  return { element, partitions: partitions.length };
}
