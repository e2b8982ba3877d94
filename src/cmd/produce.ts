import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { InvalidArgumentError, errorMessage } from "../errors.js";
import { formatHelp, loadOptions, option } from "../config/options.js";
import { sentinelsOption } from "./cli-options.js";
import { parseHeaders, readMessageFile, splitKey, type InputMessage } from "./produce-input.js";
import { Producer, type ClientEvent, type NodeTransportOptions, type ProduceAck } from "../client/node.js";
import { ownToken } from "../config/identity-options.js";

/** TLS flags shared with consume (https sentinel URLs; brokers are then dialled over TLS too). */
export const TLS_OPTIONS = {
  "tls-ca": option({
    kind: "string",
    description: "CA (PEM) the cluster's certificates chain to; default: Node's trust store",
    default: "",
  }),
  "tls-cert": option({
    kind: "string",
    description: "Client certificate (PEM), for mutual TLS",
    default: "",
  }),
  "tls-key": option({ kind: "string", description: "Key (PEM) of --tls-cert", default: "" }),
};

/** --listener, shared with consume and admin. */
export const LISTENER_OPTION = {
  listener: option({
    kind: "string",
    description:
      "Dial the brokers' addresses on this listener (e.g. external, from outside Kubernetes); default: the sentinels choose",
    default: "",
  }),
};

/** A client's credential: a file, or GOULETTE_TOKEN (a command line shows in `ps`). */
export const TOKEN_OPTIONS = {
  "token-file": option({
    kind: "string",
    description: "File holding the bearer token (when the cluster requires one)",
    default: "",
  }),
  token: option({
    kind: "string",
    description: "Bearer token; set it through GOULETTE_TOKEN or use --token-file, not the command line",
    default: "",
  }),
};

/** `{ token }` when the options name one, for spreading into client options. */
export function optionalToken(o: { tokenFile: string; token: string }): { token?: string } {
  const token = ownToken(o);
  return token ? { token } : {};
}

/** --token-file/--token, --verbose and --listener: every produce/consume client has them. */
export const CLIENT_OPTIONS = {
  ...TOKEN_OPTIONS,
  verbose: option({
    kind: "boolean",
    description: "Print failovers and retries on stderr",
    default: false,
    short: "v",
  }),
  ...LISTENER_OPTION,
};

/** The Node transport options for the TLS flags: TLS when a sentinel URL is https or a CA is given. */
export function transportOptions(o: {
  sentinels: string[];
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
}): NodeTransportOptions {
  const tls = o.tlsCa !== "" || o.sentinels.some((url) => url.startsWith("https://"));
  if (!tls) return {};
  return {
    tls: true,
    tlsOptions: {
      ...(o.tlsCa ? { ca: readFileSync(o.tlsCa) } : {}),
      ...(o.tlsCert ? { cert: readFileSync(o.tlsCert) } : {}),
      ...(o.tlsKey ? { key: readFileSync(o.tlsKey) } : {}),
    },
  };
}

const schema = {
  ...sentinelsOption(),
  topic: option({ kind: "string", description: "Topic to produce to (required)", default: "", short: "t" }),
  key: option({
    kind: "string",
    description: "Key of every message (same key, same partition); none: see --partitioner",
    default: "",
    short: "k",
  }),
  "key-separator": option({
    kind: "string",
    description: "Each line (or argument) is key<separator>value, e.g. ':' for user1:hello",
    default: "",
    short: "K",
  }),
  header: option({
    kind: "list",
    repeatable: true,
    description: "Header key=value on every message (repeat for several)",
    default: [],
    short: "H",
    split: false,
  }),
  file: option({
    kind: "list",
    repeatable: true,
    description: "Produce each file's whole content as one message (repeat for several)",
    default: [],
    short: "F",
    split: false,
  }),
  partition: option({
    kind: "number",
    description: "Produce to this partition only (-1: by key)",
    default: -1,
    short: "p",
  }),
  partitioner: option({
    kind: "string",
    description:
      "Messages without key: sticky fills one partition's batch, then the next; round-robin: each message to the next partition",
    default: "sticky",
    choices: ["sticky", "round-robin"],
  }),
  partitions: option({
    kind: "number",
    description: "Partitions if this creates the topic (0: the sentinel's default)",
    default: 0,
    min: 0,
  }),
  replicas: option({
    kind: "number",
    description: "Replicas per partition if this creates the topic (0: 3, or fewer healthy brokers)",
    default: 0,
    min: 0,
  }),
  acks: option({
    kind: "string",
    description: "all: every in-sync replica has it; leader: the leader has it",
    default: "all",
    choices: ["all", "leader"],
  }),
  json: option({
    kind: "boolean",
    description: "Print one JSON ack per message on stdout",
    default: false,
    short: "J",
  }),
  ...CLIENT_OPTIONS,
  ...TLS_OPTIONS,
};

export const produceOptionSchema = schema;

const USAGE = `Usage: goulette produce --topic t [--key k | --key-separator s] [--header k=v]… [options] [message…]

Produces each message argument, or each --file (its whole content), or else each line of stdin, in
order. With --key-separator ':' a line 'user1:hello' is key user1, value hello (a line without ':'
fails). Acks go to stdout with --json; a progress line and a summary go to stderr. Exits 1 when any
message failed. Arguments that start with '-' are flags: put messages like '-1' after --.`;

export async function runProduce(argv: string[]): Promise<void> {
  const { values: o, positionals, help } = loadOptions(schema, { argv, allowPositionals: true });
  if (help) {
    console.log(formatHelp(USAGE, schema));
    return;
  }
  if (!o.topic) throw new InvalidArgumentError("--topic is required (see --help)");
  if (o.partition < -1 || !Number.isInteger(o.partition)) {
    throw new InvalidArgumentError(`--partition must be -1 or a partition number, got ${o.partition}`);
  }
  if (o.key && o.keySeparator) throw new InvalidArgumentError("--key and --key-separator: give one");
  if (o.file.length > 0 && positionals.length > 0) {
    throw new InvalidArgumentError("--file and message arguments: give one");
  }
  const headers = parseHeaders(o.header);
  // Read before connecting: a missing file fails the run before anything is sent.
  const files = o.file.map(readMessageFile);
  const producer = new Producer({
    sentinels: o.sentinels,
    topic: o.topic,
    createTopic: {
      ...(o.partitions > 0 ? { partitions: o.partitions } : {}),
      ...(o.replicas > 0 ? { replicas: o.replicas } : {}),
    },
    acks: o.acks === "leader" ? "leader" : "all",
    partitioner: o.partitioner === "round-robin" ? "round-robin" : "sticky",
    ...optionalToken(o),
    ...(o.listener ? { listener: o.listener } : {}),
    ...(o.verbose ? { onEvent: printEvent } : {}),
    nodeTransport: transportOptions(o),
  });
  const started = Date.now();
  let sent = 0;
  let acked = 0;
  let failed = 0;
  const progress = startProgress(
    () => acked,
    (n, perSecond) =>
      `produced ${n}/${sent} to ${o.topic}${failed ? `, ${failed} failed` : ""} (${perSecond}/s)`,
  );
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const send = (input: string | InputMessage) => {
    const number = ++sent;
    let message: InputMessage;
    try {
      message = typeof input === "string" ? splitKey(input, o.keySeparator, `message ${number}`) : input;
    } catch (err) {
      failed++;
      progress.clear();
      console.error(`goulette produce: ${errorMessage(err)}`);
      return;
    }
    const key = message.key ?? o.key;
    producer
      .send({
        value: message.value,
        ...(key ? { key } : {}),
        ...(Object.keys(headers).length > 0 ? { headers } : {}),
        ...(o.partition >= 0 ? { partition: o.partition } : {}),
      })
      .then(
        (ack: ProduceAck) => {
          acked++;
          if (o.json) process.stdout.write(`${JSON.stringify(ack)}\n`);
        },
        (err: unknown) => {
          failed++;
          progress.clear();
          console.error(`goulette produce: message ${number} failed: ${errorMessage(err)}`);
        },
      );
  };

  try {
    if (files.length > 0 || positionals.length > 0) {
      for (const message of files.length > 0 ? files : positionals) {
        if (interrupt.signal.aborted) break;
        await producer.waitForRoom(interrupt.signal);
        send(message);
      }
    } else {
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      interrupt.signal.addEventListener("abort", () => lines.close(), { once: true });
      for await (const line of lines) {
        await producer.waitForRoom(interrupt.signal);
        send(line);
      }
    }
  } catch (err) {
    if (!interrupt.signal.aborted) throw err;
  } finally {
    // Flushes: every message read is acknowledged (or failed) before the summary.
    await producer.close();
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  const seconds = (Date.now() - started) / 1000;
  console.error(
    `produced ${acked} message${acked === 1 ? "" : "s"} to ${o.topic} in ${seconds.toFixed(1)} s` +
      (failed > 0 ? ` (${failed} failed)` : ""),
  );
  if (failed > 0) process.exitCode = 1;
}

/** Client events on stderr (--verbose). */
export function printEvent(event: ClientEvent): void {
  switch (event.type) {
    case "broker-unreachable":
      console.error(
        `goulette: broker ${event.brokerId} (${event.address}) unreachable: ${event.error.message}`,
      );
      return;
    case "assignment":
      console.error(
        `goulette: ${event.topic} assignment v${event.version}: leaders ${event.leaders.join(",")}` +
          (event.reported.length ? ` (reported unreachable: ${event.reported.join(",")})` : ""),
      );
      return;
    case "sentinel-failover":
      console.error(`goulette: sentinel ${event.from} failed (${event.error.message}); using ${event.to}`);
      return;
    case "retry":
      console.error(
        `goulette: retrying ${event.records} records of ${event.topic}#${event.partition}: ${event.reason}`,
      );
      return;
    case "offset-reset":
      console.error(
        `goulette: ${event.topic}#${event.partition} position ${event.from} → ${event.to}: ${event.reason}`,
      );
      return;
    case "error":
      console.error(`goulette: ${event.what} of ${event.topic} failed: ${event.error.message}`);
      return;
  }
}

export interface Progress {
  /** Erases the progress line (before printing something else to stderr). */
  clear(): void;
  stop(): void;
}

/**
 * A progress line on stderr for runs longer than a second: rewritten in place on a terminal; on other
 * stderr (logs), a line every 5 s while the count moves.
 */
export function startProgress(
  count: () => number,
  describe: (count: number, perSecond: number) => string,
): Progress {
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let shown = false;
  let lastLine = 0;
  let lastCount = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - started < 1_000) return;
    const n = count();
    const line = describe(n, Math.round(n / ((now - started) / 1000)));
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      shown = true;
    } else if (now - lastLine >= 5_000 && n !== lastCount) {
      lastLine = now;
      lastCount = n;
      process.stderr.write(`${line}\n`);
    }
  }, 250);
  timer.unref();
  const clear = () => {
    if (shown) process.stderr.write("\r\x1b[2K");
    shown = false;
  };
  return {
    clear,
    stop() {
      clearInterval(timer);
      clear();
    },
  };
}
