import { InvalidArgumentError } from "../errors.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import { AbortedError, Consumer, decodeText, type ConsumedMessage } from "../client/node.js";
import { TLS_OPTIONS, printEvent, startProgress, transportOptions } from "./produce.js";

const schema = {
  sentinel: option({
    kind: "list",
    description: "Sentinel URLs (comma-separated; any of them answers)",
    default: ["http://127.0.0.1:9090"],
  }),
  topic: option({ kind: "string", description: "Topic to consume (required)", default: "" }),
  group: option({
    kind: "string",
    description: "Consumer group: consumption resumes at its committed offsets (required)",
    default: "",
  }),
  "from-beginning": option({
    kind: "boolean",
    description:
      "Where the group has no committed offset, start at the oldest message (default: new ones only)",
    default: false,
  }),
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
  partitions: option({
    kind: "list",
    description: "Only these partitions (comma-separated; default: all)",
    default: [],
  }),
  json: option({ kind: "boolean", description: "Print one JSON object per message", default: false }),
  token: option({ kind: "string", description: "Bearer token (when the cluster requires one)", default: "" }),
  verbose: option({ kind: "boolean", description: "Print failovers and retries on stderr", default: false }),
  ...TLS_OPTIONS,
};

const USAGE = `Usage: goulette consume --topic t --group g [--from-beginning] [--max n] [options]

Prints each message's value as a line on stdout (--json: one object per message with partition, offset,
key, value, timestamp). Offsets are committed for the group as messages are printed and on exit
(Ctrl-C, --max, --idle-timeout), so the next run of the same group continues after them.`;

export async function runConsume(argv: string[]): Promise<void> {
  const { values: o, help } = loadOptions(schema, { argv });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  if (!o.topic) throw new InvalidArgumentError("--topic is required (see --help)");
  if (!o.group) throw new InvalidArgumentError("--group is required (see --help)");
  const partitions = o.partitions.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`--partitions: '${p}' is not a partition`);
    return n;
  });
  const consumer = new Consumer({
    sentinels: o.sentinel,
    topic: o.topic,
    group: o.group,
    from: o.fromBeginning ? "earliest" : "latest",
    ...(partitions.length > 0 ? { partitions } : {}),
    ...(o.token ? { token: o.token } : {}),
    ...(o.verbose ? { onEvent: printEvent } : {}),
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
  let count = 0;
  const progress = startProgress(
    () => count,
    (n, perSecond) => `consumed ${n} from ${o.topic} (${perSecond}/s)`,
  );
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
    if (count > 0) await consumer.commit();
  } finally {
    progress.stop();
    await consumer.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (process.stderr.isTTY || Date.now() - started > 1_000) {
    console.error(`consumed ${count} message${count === 1 ? "" : "s"} from ${o.topic}`);
  }
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
