import { decodeText, type ConsumedMessage, type StartFrom } from "../client/node.js";
import { InvalidArgumentError } from "../errors.js";

/**
 * --format: a line per message from a template in kcat's spelling — %t topic, %p partition, %o offset,
 * %k key, %s value, %T timestamp (Unix ms), %h headers (k=v,k=v), %% a percent sign; \n and \t escapes.
 * Returns the formatter, or throws for an unknown %x (so that a typo is not printed literally).
 */
export function compileFormat(template: string): (m: ConsumedMessage) => string {
  const parts: Array<string | ((m: ConsumedMessage) => string)> = [];
  let text = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i] as string;
    const next = template[i + 1];
    if (c === "\\" && (next === "n" || next === "t" || next === "\\")) {
      text += next === "n" ? "\n" : next === "t" ? "\t" : "\\";
      i++;
      continue;
    }
    if (c !== "%") {
      text += c;
      continue;
    }
    if (next === "%") {
      text += "%";
      i++;
      continue;
    }
    const field = next === undefined ? undefined : FIELDS[next];
    if (!field) {
      throw new InvalidArgumentError(
        `--format: unknown '%${next ?? ""}' (use %t %p %o %k %s %T %h, or %% for a percent sign)`,
      );
    }
    if (text) parts.push(text);
    text = "";
    parts.push(field);
    i++;
  }
  if (text) parts.push(text);
  return (m) => parts.map((part) => (typeof part === "string" ? part : part(m))).join("");
}

const FIELDS: Record<string, (m: ConsumedMessage) => string> = {
  t: (m) => m.topic,
  p: (m) => String(m.partition),
  o: (m) => String(m.offset),
  k: (m) => decodeText(m.key),
  s: (m) => m.text(),
  T: (m) => String(m.timestamp),
  h: (m) => m.headers.map((h) => `${h.key}=${decodeText(h.value)}`).join(","),
};

/**
 * --offset earliest|latest|n|-n and --last n as a start: -n and --last n are the last n messages of each
 * partition (kcat's -o -n).
 */
export function parseStart(offset: string, last: number, fromBeginning: boolean): StartFrom {
  if (last > 0 && offset !== "") throw new InvalidArgumentError(`--last contradicts --offset ${offset}`);
  const from = last > 0 ? { last } : parseOffset(offset, fromBeginning);
  if (fromBeginning && from !== "earliest") {
    throw new InvalidArgumentError(
      `--from-beginning contradicts ${last > 0 ? "--last" : `--offset ${offset}`}`,
    );
  }
  return from;
}

function parseOffset(offset: string, fromBeginning: boolean): StartFrom {
  if (offset === "") return fromBeginning ? "earliest" : "latest";
  if (offset === "earliest" || offset === "latest") return offset;
  const n = Number(offset);
  if (offset.trim() === "" || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(
      `--offset must be earliest, latest or an offset ≥ 0, got '${offset}' (-n: the last n messages)`,
    );
  }
  return n < 0 ? { last: -n } : n;
}
