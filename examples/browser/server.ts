/**
 * Serves the browser example and stands between the page and the cluster, on one origin:
 *
 *   GET  /, /app.js, /config.json          the page, its script (bundled by esbuild on start), its config
 *   POST /sentinel/<i>/<service>/<method>  passed through to the i-th sentinel (Connect over HTTP/1.1)
 *   POST /broker/<host:port>/…             passed through to that broker (Produce, FetchMessages,
 *                                          CommitOffset…)
 *
 * Why a proxy: the sentinels and brokers send no CORS headers, so a page can only call them from their
 * own origin. Browsers have no full-duplex streams: the page produces with the brokers' unary Produce
 * RPC (one call per batch), passed through like every other call.
 *
 * Run it against a dev cluster (after `npm run build`):
 *   node dist/examples/browser/server.js --sentinel http://127.0.0.1:9090,http://127.0.0.1:9091 --port 8080
 */
import http from "node:http";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Admin, createNodeTransport } from "../../src/client/node.js";

export interface ExampleServerOptions {
  /** Sentinel URLs of the cluster. */
  sentinels: string[];
  /** Listen host (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 8080; 0 picks a free one). */
  port?: number;
  /** Bearer token for the cluster, if it requires one (added to proxied calls). */
  token?: string;
}

export interface ExampleServer {
  /** http://host:port of the page. */
  readonly url: string;
  close(): Promise<void>;
}

/** How often the list of brokers the proxy may reach is refreshed, at most. */
const BROKER_REFRESH_MS = 1_000;

export async function startExampleServer(options: ExampleServerOptions): Promise<ExampleServer> {
  const dir = sourceDir();
  const [html, bundle] = await Promise.all([
    readFile(path.join(dir, "index.html"), "utf8"),
    bundleApp(path.join(dir, "app.ts")),
  ]);
  const sentinels = options.sentinels.map((url) => new URL(url));
  const transport = createNodeTransport();
  const admin = new Admin({
    sentinels: options.sentinels,
    transport,
    ...(options.token ? { token: options.token } : {}),
  });
  const authorization: Record<string, string> = options.token
    ? { authorization: `Bearer ${options.token}` }
    : {};

  // Only brokers the cluster knows may be reached through /broker/<address> (no open proxy).
  let knownBrokers = new Set<string>();
  let refreshedAt = 0;
  let refreshing: Promise<void> | undefined;
  const isKnownBroker = async (address: string) => {
    if (knownBrokers.has(address)) return true;
    if (!refreshing && Date.now() - refreshedAt >= BROKER_REFRESH_MS) {
      refreshing = admin
        .clusterStatus()
        .then(
          (status) => void (knownBrokers = new Set(status.brokers.map((b) => b.address))),
          () => undefined,
        )
        .finally(() => {
          refreshedAt = Date.now();
          refreshing = undefined;
        });
    }
    await refreshing;
    return knownBrokers.has(address);
  };

  const server = http.createServer((req, res) => {
    void route(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, "internal", String(err));
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
      const config = { sentinels: sentinels.map((_, i) => `/sentinel/${i}`), brokerPrefix: "/broker/" };
      return send(res, 200, "application/json", JSON.stringify(config));
    }
    const sentinel = /^\/sentinel\/(\d+)(\/.*)$/.exec(url.pathname);
    if (sentinel) {
      const target = sentinels[Number(sentinel[1])];
      if (!target) return sendError(res, 404, "not_found", "no such sentinel");
      return pass(req, res, target.host, `${sentinel[2]}${url.search}`);
    }
    const broker = /^\/broker\/([^/]+)(\/.*)$/.exec(url.pathname);
    if (broker) {
      const address = decodeURIComponent(broker[1] as string);
      const rest = broker[2] as string;
      if (!(await isKnownBroker(address))) {
        return sendError(res, 404, "not_found", `${address} is not a broker of this cluster`);
      }
      return pass(req, res, address, `${rest}${url.search}`);
    }
    sendError(res, 404, "not_found", `no route for ${req.method} ${url.pathname}`);
  }

  /** Streams the request to host and the answer back (long polls included); cut when either side goes. */
  function pass(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    host: string,
    pathAndQuery: string,
  ): void {
    const [hostname, port] = splitHost(host);
    const headers = { ...req.headers, ...authorization, host };
    delete headers.connection;
    const upstream = http.request(
      { hostname, port, method: req.method, path: pathAndQuery, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent) sendError(res, 503, "unavailable", `${host}: ${err.message}`);
      else res.destroy();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
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
      await admin.close();
      transport.close();
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

/** A Connect error body: the page's client reads its code and message. */
function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  send(res, status, "application/json", JSON.stringify({ code, message }));
}

function splitHost(host: string): [string, number] {
  const i = host.lastIndexOf(":");
  return [host.slice(0, i).replace(/^\[|\]$/g, ""), Number(host.slice(i + 1))];
}

// Run as a script: node dist/examples/browser/server.js --sentinel URLS [--port N] [--host H]
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const server = await startExampleServer({
    sentinels: (
      flag("sentinel") ?? "http://127.0.0.1:9090,http://127.0.0.1:9091,http://127.0.0.1:9092"
    ).split(","),
    port: Number(flag("port") ?? 8080),
    host: flag("host") ?? "127.0.0.1",
    ...(flag("token") ? { token: flag("token") as string } : {}),
  });
  process.stdout.write(`Goulette browser example: open ${server.url}\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
