import type { Spread } from "./stats.js";

/** A result table: printed as Markdown (so it can be pasted into docs/benchmarks.md) and kept in the JSON. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** What limits these figures, how they were measured: printed under the table. */
  notes?: string[];
}

/** "median (min–max)" with a fixed number of significant digits. */
export function fmtSpread(s: Spread, digits = 3, unit = ""): string {
  if (s.runs.length === 0 || Number.isNaN(s.median)) return "—";
  if (s.runs.length === 1) return `${fmt(s.median, digits)}${unit}`;
  return `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** A number with about `digits` significant digits, thousands separated, no exponent notation. */
export function fmt(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

export function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${fmt(bytes / (1024 * 1024))} MiB`;
  if (bytes >= 1024) return `${fmt(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

export function renderTable(table: Table): string {
  const widths = table.columns.map((c, i) =>
    Math.max(c.length, ...table.rows.map((r) => (r[i] ?? "").length)),
  );
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const out = [
    `**${table.title}**`,
    "",
    line(table.columns),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...table.rows.map((r) => line(table.columns.map((_, i) => r[i] ?? ""))),
  ];
  if (table.notes && table.notes.length > 0) out.push("", ...table.notes.map((n) => `- ${n}`));
  return out.join("\n");
}
