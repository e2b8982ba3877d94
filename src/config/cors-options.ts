import { InvalidArgumentError, errorMessage } from "../errors.js";
import { parseAllowedOrigins, type CorsPolicy } from "../server/cors.js";
import { envName, option, type OptionValues } from "./options.js";

/**
 * CORS on the RPC port, shared by `goulette sentinel` and `goulette broker` (spread into their
 * schemas): flags --cors-*, env GOULETTE_CORS_*, YAML cors-* keys. Off by default.
 */
export const corsOptions = {
  "cors-allowed-origins": option({
    kind: "list",
    description:
      "Origins (scheme://host[:port], comma-separated) whose web pages may call this server directly " +
      "(CORS); '*' allows any page (unsafe with tokens); empty: no CORS headers",
    default: [],
  }),
  "cors-max-age": option({
    kind: "number",
    description: "Seconds a browser may cache a CORS preflight answer",
    default: 600,
    min: 0,
    max: 86_400,
    integer: true,
  }),
};

export type CorsOptionValues = OptionValues<typeof corsOptions>;

/** The CorsPolicy these options ask for; undefined when off. Throws InvalidArgumentError naming the option. */
export function corsFromOptions(o: CorsOptionValues): CorsPolicy | undefined {
  let allowedOrigins: string[];
  try {
    allowedOrigins = parseAllowedOrigins(o.corsAllowedOrigins);
  } catch (err) {
    throw new InvalidArgumentError(
      `--cors-allowed-origins (${envName("cors-allowed-origins")}): ${errorMessage(err)}`,
    );
  }
  return allowedOrigins.length === 0 ? undefined : { allowedOrigins, maxAgeSeconds: o.corsMaxAge };
}
