import type http from "node:http";
import type http2 from "node:http2";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage } from "../errors.js";
import { loadStaticAssets } from "../server/static-assets.js";
import type { ClientTlsOptions, TlsFiles } from "../server/tls.js";
import { createConsoleProxy } from "./console-proxy.js";
import type { ControlPlane } from "./control-plane.js";

/** Where the console lives on every sentinel's port. */
export const CONSOLE_PATH = "/ui/";

export interface ConsoleRoutesOptions {
  /** The built console (default: dist/console next to this module's dist/src). */
  consoleDir?: string;
  /** The control plane once it runs (the pass-through knows no broker or sentinel before). */
  plane: () => ControlPlane | undefined;
  /** The sentinel's TLS: with it, brokers are dialled over https, with `clientTls`. */
  tls?: TlsFiles;
  clientTls?: ClientTlsOptions;
}

export type ConsoleRoutes = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => Promise<boolean>;

/** The web console's files under /ui/ and its pass-through to brokers and peers under /ui/api/. */
export function createConsoleRoutes(options: ConsoleRoutesOptions): ConsoleRoutes {
  const assets = loadStaticAssets(
    options.consoleDir ?? defaultConsoleDir(),
    CONSOLE_PATH,
    "the console is not built: run `npm run build` (it writes dist/console)",
  );
  const brokerAddresses = () => {
    const plane = options.plane();
    return plane ? plane.state.brokers().map((b) => b.address) : [];
  };
  const sentinelUrl = async (id: string) => {
    const plane = options.plane();
    const candidates = plane ? await plane.leadership.candidates().catch(() => []) : [];
    return candidates.find((c) => c.id === id)?.url;
  };
  const proxy = createConsoleProxy({
    prefix: `${CONSOLE_PATH}api/`,
    brokerAddresses,
    sentinelUrl,
    scheme: options.tls ? "https" : "http",
    ...(options.clientTls ? { tls: options.clientTls } : {}),
  });
  return async (req, res) => {
    try {
      return (await proxy.route(req, res)) || assets.serve(req, res);
    } catch (err) {
      // Never an unhandled rejection in the server's fallback: the request fails, the sentinel stays.
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end(`console route failed: ${errorMessage(err)}\n`);
      }
      return true;
    }
  };
}

/** dist/console, from this module at dist/src/sentinel. */
export function defaultConsoleDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../console");
}
