import { option } from "../config/options.js";

/**
 * --sentinels, the one spelling of the sentinel URL list on every command (the broker's too); the
 * CLI's former --sentinel is still read, with a deprecation notice.
 */
export function sentinelsOption(description = "Sentinel URLs (comma-separated; any of them answers)") {
  return {
    sentinels: option({
      kind: "list",
      description,
      default: ["http://127.0.0.1:9090"],
      short: "s",
      aliases: ["sentinel"],
    }),
  };
}
