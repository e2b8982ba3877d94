import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** pino level; "silent" turns logging off (tests). */
  level?: LevelWithSilent;
  /** Bound to every line, e.g. the node id. */
  base?: Record<string, string>;
  /** Where lines go; defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/** The root logger of a process: JSON lines, ISO timestamps, the level as a word. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: options.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? process.stdout,
  );
}

/** A logger that drops everything (tests, libraries used without a logger). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
