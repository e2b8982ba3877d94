/** How the message browser shows bytes: as UTF-8 text, pretty JSON (when it parses), or hex. */
export type Format = "text" | "json" | "hex";

const decoder = new TextDecoder("utf-8");

export function formatBytes(bytes: Uint8Array, format: Format): string {
  if (format === "hex") {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  }
  const text = decoder.decode(bytes);
  if (format === "json") {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return `${text}  (not JSON)`;
    }
  }
  return text;
}
