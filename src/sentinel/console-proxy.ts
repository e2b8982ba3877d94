import http from "node:http";
import type http2 from "node:http2";
import https from "node:https";
import { errorMessage } from "../errors.js";
import { clientTlsOptions, type ClientTlsOptions } from "../server/tls.js";
import { toBaseUrl } from "../server/transport-pool.js";

/**
 * The console's way to the rest of the cluster, through the sentinel that served it: a browser behind
 * `kubectl port-forward` reaches this sentinel only. Requests pass through unchanged (the browser's
 * own authorization header included; the sentinel adds no credential of its own) and only to:
 *
 *   POST <prefix>broker/<host:port>/goulette.v1.BrokerService/<read or console method>
 *        a registered broker's default address
 *   POST <prefix>sentinel/<id>/goulette.v1.SentinelService/GetClusterStatus
 *        a campaigning sentinel (its own view: applied id, digest)
 *
 * Anything else is a 404, so this is no open proxy.
 */
export interface ConsoleProxyOptions {
  /** Path prefix, e.g. "/ui/api/". */
  prefix: string;
  /** The registered brokers' default addresses now. */
  brokerAddresses: () => Iterable<string>;
  /** The campaigning sentinels' URLs by id now. */
  sentinelUrl: (id: string) => Promise<string | undefined>;
  /** Scheme of bare broker addresses ("https" in a cluster with TLS). */
  scheme: "http" | "https";
  /** CA and client certificate for https upstreams. */
  tls?: ClientTlsOptions;
  /** An upstream call silent for this long is cut (default 60 s; long polls are bounded by the page). */
  idleTimeoutMs?: number;
}

type IncomingRequest = http.IncomingMessage | http2.Http2ServerRequest;
type OutgoingResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * BrokerService methods the console uses: reads, its test produce (the web producer's ProduceBatches,
 * Produce against older brokers), group offset resets, and deleting a topic's records.
 */
export const CONSOLE_BROKER_METHODS: ReadonlySet<string> = new Set([
  "Health",
  "FetchMessages",
  "GetCommittedOffset",
  "ProduceBatches",
  "Produce",
  "CommitOffset",
  "DeleteCommittedOffset",
  "DeleteRecords",
]);

const SENTINEL_METHODS: ReadonlySet<string> = new Set(["GetClusterStatus"]);

/** Request headers passed upstream: the RPC's own (content, protocol, deadline, compression, auth). */
const REQUEST_HEADER =
  /^(content-type|content-length|content-encoding|accept-encoding|authorization|connect-[a-z-]+|grpc-[a-z-]+|x-grpc-web|x-user-agent)$/;
/** Response headers passed back (Connect sends unary trailers as trailer-* headers). */
const RESPONSE_HEADER =
  /^(content-type|content-length|content-encoding|connect-[a-z-]+|grpc-[a-z-]+|trailer-[a-z0-9-]+)$/;

export interface ConsoleProxy {
  /** Passes the request on when its path is below the prefix (true), else leaves it (false). */
  route(req: IncomingRequest, res: OutgoingResponse): Promise<boolean>;
}

export function createConsoleProxy(options: ConsoleProxyOptions): ConsoleProxy {
  // Only what an https request needs from the TLS files: trust and the client certificate.
  const { ca, cert, key } = options.tls ? clientTlsOptions(options.tls) : {};
  const tls: https.RequestOptions = {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
  const idleMs = options.idleTimeoutMs ?? 60_000;

  async function target(rest: string): Promise<URL | string> {
    const match = /^(broker|sentinel)\/([^/]+)\/(goulette\.v1\.[A-Za-z]+)\/([A-Za-z]+)$/.exec(rest);
    if (!match) return "no such console route";
    const [, kind, rawName, service, method] = match as unknown as [string, string, string, string, string];
    let name: string;
    try {
      name = decodeURIComponent(rawName);
    } catch {
      return "malformed address";
    }
    if (kind === "broker") {
      if (service !== "goulette.v1.BrokerService" || !CONSOLE_BROKER_METHODS.has(method))
        return `${service}/${method} is not passed to brokers`;
      if (![...options.brokerAddresses()].includes(name)) return `${name} is not a broker of this cluster`;
      return new URL(`${toBaseUrl(name, options.scheme)}/${service}/${method}`);
    }
    if (service !== "goulette.v1.SentinelService" || !SENTINEL_METHODS.has(method))
      return `${service}/${method} is not passed to sentinels`;
    const url = await options.sentinelUrl(name);
    if (!url) return `sentinel '${name}' is not campaigning`;
    return new URL(`${url.replace(/\/$/, "")}/${service}/${method}`);
  }

  return {
    async route(req, res) {
      const urlPath = (req.url ?? "/").split("?", 1)[0] ?? "/";
      if (!urlPath.startsWith(options.prefix)) return false;
      if (req.method !== "POST") {
        sendConnectError(res, 405, "unimplemented", "console RPCs are POST requests");
        return true;
      }
      const upstreamUrl = await target(urlPath.slice(options.prefix.length));
      if (typeof upstreamUrl === "string") {
        sendConnectError(res, 404, "not_found", upstreamUrl);
        return true;
      }
      pass(req, res, upstreamUrl);
      return true;
    },
  };

  function pass(req: IncomingRequest, res: OutgoingResponse, url: URL): void {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && REQUEST_HEADER.test(name)) headers[name] = value;
    }
    const secure = url.protocol === "https:";
    const upstream = (secure ? https : http).request(url, {
      method: "POST",
      headers,
      ...(secure ? tls : {}),
    });
    upstream.setTimeout(idleMs, () => upstream.destroy(new Error(`no answer for ${idleMs} ms`)));
    upstream.on("response", (answer) => {
      const back: http.OutgoingHttpHeaders = { "cache-control": "no-store" };
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && RESPONSE_HEADER.test(name)) back[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, back);
      answer.pipe(res as NodeJS.WritableStream);
      answer.on("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) sendConnectError(res, 503, "unavailable", `${url.host}: ${errorMessage(err)}`);
      else res.destroy();
    });
    // The page went away (or cancelled a long poll): stop the upstream call too.
    res.on("close", () => upstream.destroy());
    req.on("error", () => upstream.destroy());
    req.pipe(upstream);
  }
}

/** A Connect error body: the page's client reads its code and message. */
function sendConnectError(res: OutgoingResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify({ code, message }));
}
