import { readFileSync } from "node:fs";
import { InvalidArgumentError, errorMessage } from "../errors.js";

/** One message as the CLI read it: its value, and its key when the input carried one. */
export interface InputMessage {
  key?: string;
  value: string | Uint8Array;
}

/** `--header k=v` values → a header map (a later k wins); an entry without '=' is an error. */
export function parseHeaders(entries: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`--header must be key=value, got '${entry}'`);
    headers[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return headers;
}

/**
 * A line or argument as a message: with a key separator, the text before its first occurrence is the
 * key (kcat's -K); a line without it is an error naming the line, not a message without a key.
 */
export function splitKey(text: string, separator: string, where: string): InputMessage {
  if (separator === "") return { value: text };
  const at = text.indexOf(separator);
  if (at === -1) throw new InvalidArgumentError(`${where} has no key separator '${separator}'`);
  return { key: text.slice(0, at), value: text.slice(at + separator.length) };
}

/** Each --file is one message, its whole content as bytes (kcat -P with file arguments). */
export function readMessageFile(path: string): InputMessage {
  try {
    return { value: readFileSync(path) };
  } catch (err) {
    throw new InvalidArgumentError(`--file ${path}: ${errorMessage(err)}`);
  }
}
