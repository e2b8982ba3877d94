/**
 * The page's script: produce the lines of the text box, consume a topic for a group, show both. It uses
 * the SDK's web entry point (Connect, or gRPC-web with ?protocol=grpc-web, over fetch); server.ts
 * bundles it with esbuild. It calls the cluster directly (CORS) or through server.ts (proxy mode).
 */
import {
  Admin,
  Consumer,
  Producer,
  createWebTransport,
  type ClientEvent,
  type ConsumedMessage,
} from "../../src/client/web.js";
import type { PageConfig } from "./server.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

const config = (await (await fetch("/config.json")).json()) as PageConfig;
const protocol = params.get("protocol") === "grpc-web" ? "grpc-web" : "connect";
const absolute = (path: string) => new URL(path, location.origin).toString().replace(/\/$/, "");
// Direct: the SDK calls the sentinels' URLs and the brokers' http://host:port, other origins (CORS).
// Proxy: both are paths of this page's own origin.
const transport =
  config.mode === "proxy"
    ? createWebTransport({
        protocol,
        sentinelUrl: (url) => absolute(url),
        brokerUrl: (address) => absolute(`${config.brokerPrefix}${address}`),
      })
    : createWebTransport({ protocol });
const sentinels = config.mode === "proxy" ? config.sentinels.map(absolute) : config.sentinels;
$("mode").textContent =
  config.mode === "proxy"
    ? `Through this page's server (proxy mode), ${protocol}.`
    : `Directly to the cluster from ${location.origin}, ${protocol}: sentinels ${sentinels.join(", ")}.`;
const events: ClientEvent[] = [];
const onEvent = (event: ClientEvent) => {
  events.push(event);
  if (event.type !== "assignment") status(`${event.type}: ${JSON.stringify(event, replacer)}`);
};

for (const [param, id] of [
  ["topic", "topic"],
  ["group", "group"],
  ["key", "key"],
] as const) {
  const value = params.get(param);
  if (value !== null) $<HTMLInputElement>(id).value = value;
}

const admin = new Admin({ sentinels, transport });
// The cluster line follows the cluster: read again every few seconds, so a page opened while a broker
// was still registering (or a sentinel was electing) catches up instead of showing that moment forever.
let clusterShown = false;
const showCluster = () =>
  admin.clusterStatus().then(
    (s) => {
      clusterShown = true;
      $("cluster").textContent =
        `Cluster: leader ${s.leaderUrl || "(none)"}, ${s.brokers.length} brokers ` +
        `(${s.brokers.map((b) => b.brokerId).join(", ")}), ${s.topics} topics`;
    },
    (err: unknown) => {
      // Once the page works, a failed refresh must not overwrite what the producer or consumer reports.
      if (clusterShown) {
        $("cluster").textContent = `Cluster: status unavailable (${String(err)})`;
        return;
      }
      status(
        `cluster status failed: ${String(err)}` +
          (config.mode === "direct"
            ? ` (does the cluster allow this page's origin? --cors-allowed-origins ${location.origin})`
            : ""),
        true,
      );
    },
  );
void showCluster();
setInterval(() => void showCluster(), 5_000);

let producer: Producer | undefined;
let producerTopic = "";

$("produce").addEventListener("click", () => {
  const topic = $<HTMLInputElement>("topic").value.trim();
  const key = $<HTMLInputElement>("key").value;
  const lines = $<HTMLTextAreaElement>("message")
    .value.split("\n")
    .filter((line) => line !== "");
  if (!producer || producerTopic !== topic) {
    void producer?.close();
    producer = new Producer({ sentinels, transport, topic, onEvent });
    producerTopic = topic;
  }
  status(`producing ${lines.length} message(s) to ${topic}…`);
  const sends = lines.map((value) =>
    (producer as Producer).send({ value, ...(key ? { key } : {}) }).then(
      (ack) => item("acks", `${value} → ${ack.topic}#${ack.partition} offset ${ack.offset}`),
      (err: unknown) => {
        item("acks", `${value} → failed: ${String(err)}`);
        throw err;
      },
    ),
  );
  Promise.all(sends).then(
    () => status(`produced ${lines.length} message(s)`),
    (err: unknown) => status(`produce failed: ${String(err)}`, true),
  );
});

let consumer: Consumer | undefined;

$("consume").addEventListener("click", () => {
  if (consumer) return;
  const topic = $<HTMLInputElement>("topic").value.trim();
  const group = $<HTMLInputElement>("group").value.trim();
  const fromBeginning = $<HTMLInputElement>("from-beginning").checked;
  const current = new Consumer({
    sentinels,
    transport,
    topic,
    group,
    from: fromBeginning ? "earliest" : "latest",
    autoCommitIntervalMs: 500,
    onEvent,
  });
  consumer = current;
  $<HTMLButtonElement>("consume").disabled = true;
  $<HTMLButtonElement>("stop").disabled = false;
  status(`consuming ${topic} as ${group}…`);
  current
    .run((message: ConsumedMessage) => {
      item("messages", `${message.topic}#${message.partition}@${message.offset}: ${message.text()}`);
    })
    .catch((err: unknown) => status(`consume failed: ${String(err)}`, true));
});

$("stop").addEventListener("click", () => {
  const current = consumer;
  consumer = undefined;
  $<HTMLButtonElement>("consume").disabled = false;
  $<HTMLButtonElement>("stop").disabled = true;
  void current?.close().then(() => status("stopped; offsets committed"));
});

function item(list: string, text: string): void {
  const li = document.createElement("li");
  li.textContent = text;
  $(list).append(li);
}

function status(text: string, error = false): void {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

// For tests and the console.
Object.assign(globalThis, {
  goulette: { events, stats: () => ({ producer: producer?.stats(), consumer: consumer?.stats() }) },
});
