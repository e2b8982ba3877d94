/**
 * Serves the browser example: the page, its script (app.ts, bundled by esbuild on start) and its config.
 *
 *   GET /, /app.js, /config.json
 *
 * Direct mode (the default): the page calls the sentinels and brokers at their own URLs, other origins
 * than this server's, so the cluster must allow this origin (--cors-allowed-origins). Browsers have no
 * full-duplex streams: the page produces with the brokers' unary ProduceBatches RPC (one call per broker
 * carrying a batch per partition).
 *
 * Proxy mode (--proxy): the page calls this server, which passes the calls through (proxy.ts); for a
 * cluster without CORS, one whose token must stay out of the browser, or brokers the browser cannot reach.
 *
 * Run it against a dev cluster (after `npm run build`):
 *   goulette dev --cors-allowed-origins http://127.0.0.1:8080
 *   node dist/examples/browser/server.js --sentinel http://127.0.0.1:9090,http://127.0.0.1:9091 --port 8080
 */
import http from "node:http";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { InvalidArgumentError } from "../../src/errors.js";
import { createClusterProxy, sendConnectError } from "./proxy.js";

export interface ExampleServerOptions {
  /** Sentinel URLs of the cluster. */
  sentinels: string[];
  /** Listen host (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 8080; 0 picks a free one). */
  port?: number;
  /** Pass the page's calls through this server instead of letting it call the cluster (default false). */
  proxy?: boolean;
  /** Bearer token for the cluster (proxy mode only: in direct mode every visitor would get it). */
  token?: string;
}

export interface ExampleServer {
  /** http://host:port of the page: its origin, which direct mode needs the cluster to allow. */
  readonly url: string;
  close(): Promise<void>;
}

/** What app.ts reads from /config.json. */
export type PageConfig =
  { mode: "direct"; sentinels: string[] } | { mode: "proxy"; sentinels: string[]; brokerPrefix: string };

export async function startExampleServer(options: ExampleServerOptions): Promise<ExampleServer> {
  if (options.token && !options.proxy) {
    throw new InvalidArgumentError(
      "a token needs --proxy: in direct mode the page would hand it to every visitor",
    );
  }
  const dir = sourceDir();
  const [html, bundle] = await Promise.all([
    readFile(path.join(dir, "index.html"), "utf8"),
    bundleApp(path.join(dir, "app.ts")),
  ]);
  const proxy = options.proxy
    ? createClusterProxy({ sentinels: options.sentinels, ...(options.token ? { token: options.token } : {}) })
    : undefined;
  const config: PageConfig = proxy
    ? { mode: "proxy", ...proxy.pageConfig }
    : { mode: "direct", sentinels: options.sentinels };

  const server = http.createServer((req, res) => {
    void route(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendConnectError(res, 500, "internal", String(err));
      else res.destroy();
    });
  });

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/index.html")) {
      return send(res, 200, "text/html; charset=utf-8", html);
    }
    if (req.method === "GET" && url.pathname === "/app.js") {
      return send(res, 200, "text/javascript; charset=utf-8", bundle);
    }
    if (req.method === "GET" && url.pathname === "/config.json") {
      return send(res, 200, "application/json", JSON.stringify(config));
    }
    if (proxy && (await proxy.route(req, res, url))) return;
    sendConnectError(res, 404, "not_found", `no route for ${req.method} ${url.pathname}`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => resolve());
  });
  const bound = server.address() as { port: number };
  const url = `http://${options.host ?? "127.0.0.1"}:${bound.port}`;
  return {
    url,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy?.close();
    },
  };
}

/** The example's source directory, from src (examples/browser) or from the build (dist/examples/browser). */
function sourceDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const dir of [here, path.resolve(here, "../../../examples/browser")]) {
    if (existsSync(path.join(dir, "app.ts"))) return dir;
  }
  throw new Error(`cannot find examples/browser/app.ts near ${here}`);
}

/** Bundles the page script and the SDK's web entry point for browsers. */
async function bundleApp(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error("esbuild produced no output");
  return output.text;
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

// Run as a script: node dist/examples/browser/server.js --sentinel URLS [--port N] [--host H]
// [--proxy [--token-file F]]. The proxy's token comes from a file or GOULETTE_TOKEN, never the command
// line (visible in ps).
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const proxy = args.includes("--proxy");
  const tokenFile = flag("token-file");
  const token = tokenFile ? (await readFile(tokenFile, "utf8")).trim() : process.env.GOULETTE_TOKEN;
  const server = await startExampleServer({
    sentinels: (
      flag("sentinel") ?? "http://127.0.0.1:9090,http://127.0.0.1:9091,http://127.0.0.1:9092"
    ).split(","),
    port: Number(flag("port") ?? 8080),
    host: flag("host") ?? "127.0.0.1",
    proxy,
    ...(token ? { token } : {}),
  });
  process.stdout.write(
    proxy
      ? `Goulette browser example (proxy mode): open ${server.url}\n`
      : `Goulette browser example: open ${server.url}\n` +
          `The page calls the cluster directly: start it with --cors-allowed-origins ${server.url}\n`,
  );
  const stop = () => void server.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
