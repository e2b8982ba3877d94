import { InvalidArgumentError } from "../errors.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import { sentinelsOption } from "./cli-options.js";
import { compileFormat, parseStart } from "./consume-format.js";
import {
  AbortedError,
  Consumer,
  decodeText,
  type ClientEvent,
  type ConsumedMessage,
  type TopicPartition,
} from "../client/node.js";
import {
  CLIENT_OPTIONS,
  TLS_OPTIONS,
  optionalToken,
  printEvent,
  startProgress,
  transportOptions,
  type Progress,
} from "./produce.js";

const schema = {
  ...sentinelsOption(),
  topic: option({
    kind: "list",
    repeatable: true,
    description: "Topic to consume (required; several: comma-separated or --topic repeated)",
    default: [],
    short: "t",
  }),
  group: option({
    kind: "string",
    description:
      "Consumer group to join: members share the partitions, resume at its commits (none: only read)",
    default: "",
    short: "G",
  }),
  offset: option({
    kind: "string",
    description:
      "Start: earliest, latest (default), an offset, or -n: the last n messages of each partition; with --group, where it has no committed offset",
    default: "",
    short: "o",
  }),
  last: option({
    kind: "number",
    description: "Start at the last n messages of each partition (same as --offset -n)",
    default: 0,
    min: 0,
    integer: true,
  }),
  "from-beginning": option({
    kind: "boolean",
    description: "Same as --offset earliest",
    default: false,
  }),
  partition: option({
    kind: "list",
    repeatable: true,
    description:
      "Only these partitions (comma-separated or repeated); with --group: read them without joining",
    default: [],
    short: "p",
  }),
  partitions: option({ kind: "list", repeatable: true, description: "Same as --partition", default: [] }),
  max: option({
    kind: "number",
    description: "Exit after this many messages (0: never)",
    default: 0,
    min: 0,
    short: "c",
  }),
  "idle-timeout": option({
    kind: "number",
    description: "Exit when no message arrived for this many ms (0: wait forever)",
    default: 0,
    min: 0,
  }),
  json: option({
    kind: "boolean",
    description: "Print one JSON object per message",
    default: false,
    short: "J",
  }),
  format: option({
    kind: "string",
    description:
      "Print each message as this line: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp (ms), %h headers, %% percent; \\n \\t",
    default: "",
    short: "f",
  }),
  ...CLIENT_OPTIONS,
  ...TLS_OPTIONS,
};

export const consumeOptionSchema = schema;

const USAGE = `Usage: goulette consume --topic t [--group g] [--offset earliest|latest|n|-n] [--max n] [options]

Prints each message's value as a line on stdout (--json: one object per message with topic, partition,
offset, key, value, timestamp, headers; --format '%k %s': a line from a template, e.g.
--format '%t/%p@%o %k=%s %h').

With --group g the consumer joins the group: the group's running consumers share the partitions of its
topics (run it in three terminals to split them three ways; partition changes are printed on stderr).
Offsets are committed for the group as messages are printed and on exit (Ctrl-C, --max, --idle-timeout),
so the next run of the group continues after them.

Without --group it only reads: from --offset (default latest) on every partition, or those of
--partition, and commits nothing. --offset -n (or --last n) starts at the last n messages of each
partition.`;

export async function runConsume(argv: string[]): Promise<void> {
  const { values: o, help } = loadOptions(schema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  const topics = [...new Set(o.topic)];
  if (topics.length === 0) throw new InvalidArgumentError("--topic is required (see --help)");
  const partitions = [...new Set([...o.partition, ...o.partitions].map(parsePartition))];
  const from = parseStart(o.offset, o.last, o.fromBeginning);
  if (o.json && o.format) throw new InvalidArgumentError("--json and --format: give one");
  const format = o.format ? compileFormat(o.format) : undefined;
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
    sentinels: o.sentinels,
    topics,
    ...(o.group ? { group: o.group } : {}),
    from,
    ...(partitions.length > 0 ? { partitions } : {}),
    ...optionalToken(o),
    ...(o.listener ? { listener: o.listener } : {}),
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
      const line = format ? format(message) : o.json ? JSON.stringify(toJsonLine(message)) : message.text();
      process.stdout.write(`${line}\n`);
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

function parsePartition(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`--partition: '${text}' is not a partition`);
  }
  return n;
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
