/**
 * The example's proxy mode: passes the page's calls through to the cluster on the page's own origin.
 *
 *   POST /sentinel/<i>/<service>/<method>  to the i-th sentinel (Connect over HTTP/1.1)
 *   POST /broker/<host:port>/…             to that broker, only if the cluster lists it (no open proxy)
 *
 * Direct mode (CORS on the cluster) needs none of this. The proxy is for clusters whose token must not
 * reach the browser (it adds the token here) or whose broker addresses the browser cannot reach.
 */
import http from "node:http";
import { Admin, createNodeTransport } from "../../src/client/node.js";

export interface ClusterProxyOptions {
  /** Sentinel URLs of the cluster. */
  sentinels: string[];
  /** Bearer token for the cluster, if it requires one (added to every call passed through). */
  token?: string;
}

export interface ClusterProxy {
  /** What the page calls: the proxy path of each sentinel, and the prefix of a broker's. */
  readonly pageConfig: { sentinels: string[]; brokerPrefix: string };
  /** Passes the request through if its path is a proxy path; false when it is not one. */
  route(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean>;
  close(): Promise<void>;
}

/** How often the list of brokers the proxy may reach is refreshed, at most. */
const BROKER_REFRESH_MS = 1_000;

export function createClusterProxy(options: ClusterProxyOptions): ClusterProxy {
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

  /** Streams the request to host and the answer back (long polls included); cut when either side goes. */
  const pass = (req: http.IncomingMessage, res: http.ServerResponse, host: string, pathAndQuery: string) => {
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
      if (!res.headersSent) sendConnectError(res, 503, "unavailable", `${host}: ${err.message}`);
      else res.destroy();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  };

  return {
    pageConfig: { sentinels: sentinels.map((_, i) => `/sentinel/${i}`), brokerPrefix: "/broker/" },
    async route(req, res, url) {
      const sentinel = /^\/sentinel\/(\d+)(\/.*)$/.exec(url.pathname);
      if (sentinel) {
        const target = sentinels[Number(sentinel[1])];
        if (!target) sendConnectError(res, 404, "not_found", "no such sentinel");
        else pass(req, res, target.host, `${sentinel[2]}${url.search}`);
        return true;
      }
      const broker = /^\/broker\/([^/]+)(\/.*)$/.exec(url.pathname);
      if (broker) {
        const address = decodeURIComponent(broker[1] as string);
        if (!(await isKnownBroker(address))) {
          sendConnectError(res, 404, "not_found", `${address} is not a broker of this cluster`);
        } else {
          pass(req, res, address, `${broker[2] as string}${url.search}`);
        }
        return true;
      }
      return false;
    },
    async close() {
      await admin.close();
      transport.close();
    },
  };
}

/** A Connect error body: the page's client reads its code and message. */
export function sendConnectError(
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string,
): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify({ code, message }));
}

function splitHost(host: string): [string, number] {
  const i = host.lastIndexOf(":");
  return [host.slice(0, i).replace(/^\[|\]$/g, ""), Number(host.slice(i + 1))];
}
