import type http from "node:http";
import type http2 from "node:http2";
import type { Registry } from "prom-client";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

export interface HttpEndpointsOptions {
  /** /readyz answers 200 while this holds, else 503 with `notReadyReason`. */
  ready: () => boolean;
  notReadyReason: string;
  /** /metrics serves this registry. */
  registry: Registry;
  /** Refreshes gauges that are computed on demand, just before a scrape. */
  beforeScrape?: () => void;
  /** Other paths this port serves (the sentinel's web console): resolves true when it answered. */
  more?: { paths: string[]; serve: (req: Request, res: Response) => Promise<boolean> };
}

/**
 * The plain-HTTP side of a sentinel's or broker's port (everything that is not an RPC): /healthz (the
 * process answers), /readyz (it can serve), /metrics (Prometheus), then whatever `more` serves; anything
 * else is 404 with the list of what is served.
 */
export function httpEndpoints(options: HttpEndpointsOptions): (req: Request, res: Response) => void {
  const paths = ["/healthz", "/readyz", "/metrics", ...(options.more?.paths ?? [])];
  const notFound = `not found: this port serves goulette.v1 RPCs, ${paths.slice(0, -1).join(", ")} and ${paths[paths.length - 1]}\n`;
  const handle = async (req: Request, res: Response): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (req.method === "GET" && path === "/healthz") return send(200, "ok\n");
    if (req.method === "GET" && path === "/readyz")
      return options.ready() ? send(200, "ready\n") : send(503, `${options.notReadyReason}\n`);
    if (req.method === "GET" && path === "/metrics") {
      options.beforeScrape?.();
      return send(200, await options.registry.metrics(), options.registry.contentType);
    }
    if (options.more && (await options.more.serve(req, res))) return;
    send(404, notFound);
  };
  return (req, res) => void handle(req, res);
}
