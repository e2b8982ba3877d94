import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/observability/logger.js";

/** A warn-level logger that keeps what it logs, so a benchmark can notice (and report) a failing retry loop. */
export interface CapturedLogger {
  logger: Logger;
  /** Messages logged so far, with their err field when there is one. */
  readonly lines: { msg: string; err?: string }[];
  /** Called on every line (e.g. to stop a component that keeps retrying). */
  onLine?: (line: { msg: string; err?: string }) => void;
}

export function captureLogger(): CapturedLogger {
  const captured: CapturedLogger = {
    lines: [],
    logger: undefined as unknown as Logger,
  };
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split("\n")) {
        if (!text) continue;
        try {
          const parsed = JSON.parse(text) as { msg?: string; err?: unknown };
          const line = {
            msg: parsed.msg ?? "",
            ...(parsed.err !== undefined
              ? { err: typeof parsed.err === "string" ? parsed.err : JSON.stringify(parsed.err) }
              : {}),
          };
          captured.lines.push(line);
          captured.onLine?.(line);
        } catch {
          captured.lines.push({ msg: text });
        }
      }
      callback();
    },
  });
  captured.logger = createLogger({ level: "warn", destination });
  return captured;
}
