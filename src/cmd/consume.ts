import { InvalidArgumentError } from "../errors.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import {
  AbortedError,
  Consumer,
  decodeText,
  type ClientEvent,
  type ConsumedMessage,
  type StartFrom,
  type TopicPartition,
} from "../client/node.js";
import { TLS_OPTIONS, printEvent, startProgress, transportOptions, type Progress } from "./produce.js";

const schema = {
  sentinel: option({
    kind: "list",
    description: "Sentinel URLs (comma-separated; any of them answers)",
    default: ["http://127.0.0.1:9090"],
  }),
  topic: option({
    kind: "list",
    description: "Topic to consume (required; several: comma-separated or --topic repeated)",
    default: [],
  }),
  group: option({
    kind: "string",
    description:
      "Consumer group to join: members share the partitions, resume at its commits (none: only read)",
    default: "",
  }),
  offset: option({
    kind: "string",
    description:
      "Start: earliest, latest (default) or an offset; with --group, where it has no committed offset",
    default: "",
  }),
  "from-beginning": option({
    kind: "boolean",
    description: "Same as --offset earliest",
    default: false,
  }),
  partition: option({
    kind: "list",
    description:
      "Only these partitions (comma-separated or repeated); with --group: read them without joining",
    default: [],
  }),
  partitions: option({ kind: "list", description: "Same as --partition", default: [] }),
  max: option({
    kind: "number",
    description: "Exit after this many messages (0: never)",
    default: 0,
    min: 0,
  }),
  "idle-timeout": option({
    kind: "number",
    description: "Exit when no message arrived for this many ms (0: wait forever)",
    default: 0,
    min: 0,
  }),
  json: option({ kind: "boolean", description: "Print one JSON object per message", default: false }),
  token: option({ kind: "string", description: "Bearer token (when the cluster requires one)", default: "" }),
  verbose: option({ kind: "boolean", description: "Print failovers and retries on stderr", default: false }),
  ...TLS_OPTIONS,
};

/** Flags that may be given several times; their values add up (the option loader keeps the last one). */
const REPEATABLE = ["topic", "partition", "partitions"];

const USAGE = `Usage: goulette consume --topic t [--group g] [--offset earliest|latest|n] [--max n] [options]

Prints each message's value as a line on stdout (--json: one object per message with topic, partition,
offset, key, value, timestamp, headers).

With --group g the consumer joins the group: the group's running consumers share the partitions of its
topics (run it in three terminals to split them three ways; partition changes are printed on stderr).
Offsets are committed for the group as messages are printed and on exit (Ctrl-C, --max, --idle-timeout),
so the next run of the group continues after them.

Without --group it only reads: from --offset (default latest) on every partition, or those of
--partition, and commits nothing.`;

export async function runConsume(argv: string[]): Promise<void> {
  const { values: o, help } = loadOptions(schema, { argv: mergeRepeated(argv, REPEATABLE) });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  const topics = [...new Set(o.topic)];
  if (topics.length === 0) throw new InvalidArgumentError("--topic is required (see --help)");
  const partitions = [...new Set([...o.partition, ...o.partitions].map(parsePartition))];
  const from = startFrom(o.offset, o.fromBeginning);
  const what = topics.join(",");
  let count = 0;
  const progress = startProgress(
    () => count,
    (n, perSecond) => `consumed ${n} from ${what} (${perSecond}/s)`,
  );
  const onEvent = (event: ClientEvent) => {
    if (!printGroupEvent(event, progress) && o.verbose) printEvent(event);
  };
  const consumer = new Consumer({
    sentinels: o.sentinel,
    topics,
    ...(o.group ? { group: o.group } : {}),
    from,
    ...(partitions.length > 0 ? { partitions } : {}),
    ...(o.token ? { token: o.token } : {}),
    onEvent,
    nodeTransport: transportOptions(o),
  });
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const started = Date.now();
  try {
    while (o.max === 0 || count < o.max) {
      let message: ConsumedMessage | undefined;
      try {
        message = await consumer.receive({
          signal: interrupt.signal,
          ...(o.idleTimeout > 0 ? { timeoutMs: o.idleTimeout } : {}),
        });
      } catch (err) {
        if (err instanceof AbortedError && interrupt.signal.aborted) break;
        throw err;
      }
      if (message === undefined) break;
      count++;
      process.stdout.write(`${o.json ? JSON.stringify(toJsonLine(message)) : message.text()}\n`);
    }
    // Every printed message counts as consumed.
    if (count > 0 && o.group) await consumer.commit();
  } finally {
    progress.stop();
    await consumer.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (process.stderr.isTTY || Date.now() - started > 1_000) {
    console.error(`consumed ${count} message${count === 1 ? "" : "s"} from ${what}`);
  }
}

/**
 * `--name a --name b` → `--name=a,b` (at the first occurrence) for the given flags, so the option
 * loader, which keeps a flag's last value, sees them all.
 */
export function mergeRepeated(argv: readonly string[], names: readonly string[]): string[] {
  const values = new Map<string, string[]>();
  const out: Array<string | { name: string }> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") ? arg.slice(2, eq === -1 ? undefined : eq) : "";
    if (!names.includes(name)) {
      out.push(arg);
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new InvalidArgumentError(`--${name} needs a value`);
    const list = values.get(name);
    if (list) list.push(value);
    else {
      values.set(name, [value]);
      out.push({ name });
    }
  }
  return out.map((arg) =>
    typeof arg === "string" ? arg : `--${arg.name}=${(values.get(arg.name) ?? []).join(",")}`,
  );
}

function parsePartition(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`--partition: '${text}' is not a partition`);
  }
  return n;
}

function startFrom(offset: string, fromBeginning: boolean): StartFrom {
  if (offset === "") return fromBeginning ? "earliest" : "latest";
  let from: StartFrom;
  if (offset === "earliest" || offset === "latest") from = offset;
  else {
    const n = Number(offset);
    if (offset.trim() === "" || !Number.isSafeInteger(n) || n < 0) {
      throw new InvalidArgumentError(`--offset must be earliest, latest or an offset ≥ 0, got '${offset}'`);
    }
    from = n;
  }
  if (fromBeginning && from !== "earliest") {
    throw new InvalidArgumentError(`--from-beginning contradicts --offset ${offset}`);
  }
  return from;
}

/** Group changes go to stderr in any case (the point of running several members); true when printed. */
function printGroupEvent(event: ClientEvent, progress: Progress): boolean {
  const list = (partitions: readonly TopicPartition[]) =>
    partitions.length === 0 ? "nothing" : partitions.map((p) => `${p.topic}/${p.partition}`).join(", ");
  let line: string;
  switch (event.type) {
    case "joined":
      line = `joined group ${event.group} as ${event.memberId}`;
      break;
    case "rejoined":
      line = `rejoined group ${event.group} as ${event.memberId} (${event.reason})`;
      break;
    case "assigned":
      line = `assigned ${list(event.partitions)} (generation ${event.generation})`;
      break;
    case "revoked":
      line = `released ${list(event.partitions)}${event.committed ? "" : " (commit failed)"}`;
      break;
    case "lost":
      line = `lost ${list(event.partitions)}: ${event.reason}`;
      break;
    case "uncoordinated":
      line = event.reason;
      break;
    default:
      return false;
  }
  progress.clear();
  console.error(`goulette: ${line}`);
  return true;
}

function toJsonLine(m: ConsumedMessage): Record<string, unknown> {
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    timestamp: m.timestamp,
    key: decodeText(m.key),
    value: m.text(),
    ...(m.headers.length > 0
      ? { headers: Object.fromEntries(m.headers.map((h) => [h.key, decodeText(h.value)])) }
      : {}),
  };
}
