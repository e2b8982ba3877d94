import type http from "node:http";
import type http2 from "node:http2";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadStaticAssets } from "../server/static-assets.js";
import type { ClientTlsOptions } from "../server/tls.js";
import { createConsoleProxy } from "./console-proxy.js";

/** Where the console lives on every sentinel's port. */
export const CONSOLE_PATH = "/ui/";

export interface ConsoleRoutesOptions {
  /** The built console (default: dist/console next to this module's dist/src). */
  dir?: string;
  brokerAddresses: () => Iterable<string>;
  sentinelUrl: (id: string) => Promise<string | undefined>;
  scheme: "http" | "https";
  tls?: ClientTlsOptions;
}

export type ConsoleRoutes = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => Promise<boolean>;

/** The web console's files under /ui/ and its pass-through to brokers and peers under /ui/api/. */
export function createConsoleRoutes(options: ConsoleRoutesOptions): ConsoleRoutes {
  const assets = loadStaticAssets(
    options.dir ?? defaultConsoleDir(),
    CONSOLE_PATH,
    "the console is not built: run `npm run build` (it writes dist/console)",
  );
  const proxy = createConsoleProxy({
    prefix: `${CONSOLE_PATH}api/`,
    brokerAddresses: options.brokerAddresses,
    sentinelUrl: options.sentinelUrl,
    scheme: options.scheme,
    ...(options.tls ? { tls: options.tls } : {}),
  });
  return async (req, res) => (await proxy.route(req, res)) || assets.serve(req, res);
}

/** dist/console, from this module at dist/src/sentinel. */
export function defaultConsoleDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../console");
}
