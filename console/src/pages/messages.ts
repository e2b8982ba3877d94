/**
 * A partition's messages, read straight from its leader (FetchMessages from an offset, no consumer
 * group: nothing is committed for anyone), and a test message produced with the SDK's Producer.
 */
import type { Message } from "../../../src/gen/goulette/v1/broker_pb.js";
import { LISTENER, broker, producer, sentinel, timeout } from "../api.js";
import { controlsForm, h, section, table, time } from "../dom.js";
import { act, fill, pageElement, type PageView, type Route } from "../ui.js";
import { formatBytes, type Format } from "../format.js";

/** GetCommittedOffset needs a group name; the SDK's reserved one only reads the log range. */
const RANGE_PROBE_GROUP = "goulette.log-range";
const MAX_READ = 500;

export function messagesPage(topic: string, route: Route): PageView {
  const partition = h("input", {
    id: "msg-partition",
    type: "number",
    min: 0,
    value: route.params.get("partition") ?? "0",
  });
  const from = h(
    "select",
    { id: "msg-from" },
    h("option", { value: "end" }, "the end (newest)"),
    h("option", { value: "offset" }, "an offset"),
  );
  const offset = h("input", { id: "msg-offset", type: "number", min: 0, value: "0" });
  const count = h("input", { id: "msg-count", type: "number", min: 1, max: MAX_READ, value: "20" });
  const format = h(
    "select",
    { id: "msg-format" },
    h("option", { value: "text" }, "text"),
    h("option", { value: "json" }, "JSON"),
    h("option", { value: "hex" }, "hex"),
  );
  const results = h("div", { "aria-live": "polite" });
  let last: { messages: Message[]; note: string } | undefined;
  const show = () =>
    last && results.replaceChildren(messageTable(last.messages, format.value as Format, last.note));
  format.addEventListener("change", show);

  const read = () =>
    fill(results, async () => {
      last = await readMessages(
        topic,
        Number(partition.value),
        from.value === "end" ? "end" : Number(offset.value),
        Number(count.value),
      );
      return messageTable(last.messages, format.value as Format, last.note);
    });

  const key = h("input", { id: "produce-key", type: "text", placeholder: "(none)" });
  const value = h("textarea", { id: "produce-value", rows: 3, required: true });
  const headers = h("textarea", { id: "produce-headers", rows: 2, placeholder: "name=value, one per line" });
  const toPartition = h("input", { id: "produce-partition", type: "number", min: 0, placeholder: "by key" });
  const produced = h("p", { class: "status", "data-testid": "produce-status" });

  const element = pageElement(
    `Messages of ${topic}`,
    h("p", { class: "muted" }, "Reads the partition leader's log directly: no consumer group, no commit."),
    controlsForm(
      (e) => (e.preventDefault(), void read()),
      [
        ["Partition", partition],
        ["Read from", from],
        ["Offset", offset],
        ["Count", count],
        ["Show as", format],
      ],
      { id: "msg-read", text: "Read", tone: "primary" },
    ),
    results,
    section(
      "Produce a test message",
      h(
        "form",
        {
          class: "produce",
          onsubmit: (e: Event) => {
            e.preventDefault();
            void act(
              produced,
              () => produceOne(topic, key.value, value.value, headers.value, toPartition.value),
              (ack) => `stored at partition ${ack.partition}, offset ${ack.offset}`,
            );
          },
        },
        h("label", { for: "produce-key" }, "Key"),
        key,
        h("label", { for: "produce-value" }, "Value"),
        value,
        h("label", { for: "produce-headers" }, "Headers"),
        headers,
        h("label", { for: "produce-partition" }, "Partition"),
        toPartition,
        h("div", {}, h("button", { type: "submit", class: "primary", id: "produce-send" }, "Produce")),
      ),
      produced,
    ),
  );
  return { title: `Messages of ${topic}`, element, refresh: read, refreshMs: 0 };
}

async function readMessages(
  topic: string,
  partition: number,
  from: "end" | number,
  wanted: number,
): Promise<{ messages: Message[]; note: string }> {
  const n = Math.max(1, Math.min(MAX_READ, Math.floor(wanted) || 20));
  const ring = await sentinel.getRing({ topic }, timeout());
  const placed = ring.partitions.find((p) => p.partition === partition);
  if (!placed) throw new Error(`${topic} has no partition ${partition} (it has ${ring.partitions.length})`);
  const status = await sentinel.getClusterStatus({ listener: LISTENER }, timeout());
  const leader = status.brokers.find((b) => b.brokerId === placed.replicas[0]);
  if (!leader) throw new Error(`partition ${partition} has no leader now`);
  const client = broker(leader.address);
  const range = await client.getCommittedOffset(
    { consumerGroup: RANGE_PROBE_GROUP, topic, partition },
    timeout(),
  );
  const start =
    from === "end"
      ? range.highWatermark - BigInt(n) > range.logStartOffset
        ? range.highWatermark - BigInt(n)
        : range.logStartOffset
      : BigInt(Math.max(Number(range.logStartOffset), Math.floor(from)));
  const available = range.highWatermark - start;
  const note = `log ${range.logStartOffset} … ${range.highWatermark} on ${leader.brokerId}`;
  if (available <= 0n) return { messages: [], note: `${note}: nothing at or after offset ${start}` };
  const limit = available < BigInt(n) ? available : BigInt(n);
  const messages: Message[] = [];
  // Only what exists is asked for (limit), so the stream ends instead of long-polling for more.
  for await (const batch of client.fetchMessages(
    { topic, partition, offset: start, consumerGroup: "", maxMessages: n, limit },
    timeout(15_000),
  )) {
    messages.push(...batch.messages);
  }
  return { messages, note: `${note}: offsets ${start} … ${start + BigInt(messages.length) - 1n}` };
}

function messageTable(messages: Message[], format: Format, note: string): HTMLElement {
  return h(
    "div",
    {},
    h("p", { class: "muted", "data-testid": "read-note" }, note),
    table(
      ["Offset", "Timestamp", "Key", "Value", "Headers"],
      messages.map((m) => [
        String(m.offset),
        time(m.timestamp),
        m.key.length
          ? h("code", {}, formatBytes(m.key, format === "json" ? "text" : format))
          : h("span", { class: "muted" }, "—"),
        h("pre", { class: "value" }, formatBytes(m.payload, format)),
        m.headers.map((hd) =>
          h(
            "div",
            {},
            h("code", {}, `${hd.key}=${formatBytes(hd.value, format === "json" ? "text" : format)}`),
          ),
        ),
      ]),
      { "data-testid": "messages" },
    ),
  );
}

async function produceOne(
  topic: string,
  key: string,
  value: string,
  headerText: string,
  partitionText: string,
) {
  const headers: Record<string, string> = {};
  for (const line of headerText.split("\n")) {
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`header line '${line}' is not name=value`);
    headers[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  const p = producer(topic);
  try {
    return await p.send({
      value,
      ...(key ? { key } : {}),
      ...(Object.keys(headers).length ? { headers } : {}),
      ...(partitionText !== "" ? { partition: Number(partitionText) } : {}),
    });
  } finally {
    await p.close({ flush: false });
  }
}
