import type http from "node:http";
import type http2 from "node:http2";
import { cors } from "@connectrpc/connect";
import { LEADER_ADDRESS_HEADER, LEADER_ID_HEADER } from "../broker/errors.js";
import { InvalidArgumentError } from "../errors.js";

/**
 * CORS for the RPC routes, so that a page from another origin can call a sentinel or broker directly.
 * Only the listed origins get CORS headers; the browser blocks every other page. CORS is not
 * authentication: curl or a server ignores it (docs/security.md).
 */
export interface CorsPolicy {
  /** Exact origins (scheme://host[:port]), or ["*"] for any. Empty: CORS off. */
  allowedOrigins: readonly string[];
  /** How long a browser may cache a preflight answer, in seconds. */
  maxAgeSeconds: number;
}

/** What browsers may call with: Connect (POST, and GET for side-effect-free methods) and gRPC-web. */
export const CORS_ALLOWED_METHODS: readonly string[] = cors.allowedMethods;

/** Request headers a page may send: Connect's and gRPC-web's, plus the bearer token. */
export const CORS_ALLOWED_HEADERS: readonly string[] = [...cors.allowedHeaders, "authorization"];

/**
 * Response headers a page may read: gRPC-web's status and error details, and the partition leader a
 * broker names when it does not lead (a Connect unary error carries its metadata as headers).
 */
export const CORS_EXPOSED_HEADERS: readonly string[] = [
  ...cors.exposedHeaders,
  LEADER_ID_HEADER,
  LEADER_ADDRESS_HEADER,
];

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Decorates an RPC response with CORS headers, or answers a preflight. Returns true when it answered
 * (the request goes no further).
 */
export type CorsHandler = (req: NodeRequest, res: NodeResponse) => boolean;

/**
 * The allow-list as given (flag, env, YAML), checked and normalised to the form browsers send in
 * `Origin` (lower-case host, no default port). Throws InvalidArgumentError naming the bad entry.
 */
export function parseAllowedOrigins(entries: readonly string[]): string[] {
  if (entries.includes("*")) {
    if (entries.length > 1) throw new InvalidArgumentError(`'*' allows every origin: give it alone`);
    return ["*"];
  }
  return [...new Set(entries.map(parseOrigin))];
}

function parseOrigin(entry: string): string {
  const form = "scheme://host[:port], e.g. https://app.example.com";
  if (entry.includes("*")) {
    throw new InvalidArgumentError(`'${entry}': wildcards are not supported; list each origin (${form})`);
  }
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new InvalidArgumentError(`'${entry}' is not an origin (${form})`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`'${entry}' is not an http or https origin (${form})`);
  }
  // An origin has no user, path, query or fragment; a trailing "/" is tolerated.
  if (url.username || url.password || url.search || url.hash || !/^[a-z]+:\/\/[^/]+\/?$/i.test(entry)) {
    throw new InvalidArgumentError(`'${entry}' is not an origin: no path, query or user (${form})`);
  }
  return url.origin;
}

/** The handler of a policy; undefined when CORS is off (no allowed origin). */
export function createCorsHandler(policy: CorsPolicy | undefined): CorsHandler | undefined {
  const origins = parseAllowedOrigins(policy?.allowedOrigins ?? []);
  if (!policy || origins.length === 0) return undefined;
  const any = origins[0] === "*";
  const allowed = new Set(origins);
  const allowMethods = CORS_ALLOWED_METHODS.join(", ");
  const allowHeaders = CORS_ALLOWED_HEADERS.join(", ");
  const exposeHeaders = CORS_EXPOSED_HEADERS.join(", ");
  const maxAge = String(policy.maxAgeSeconds);

  return (req, res) => {
    // With a list the answer depends on Origin, so caches must keep one copy per origin.
    if (!any) res.setHeader("vary", "Origin");
    const origin = headerOf(req, "origin");
    if (origin === undefined) return false; // not from a browser page: no CORS involved
    const ok = any || allowed.has(origin);
    const allowOrigin = any ? "*" : origin;
    if (req.method === "OPTIONS" && headerOf(req, "access-control-request-method") !== undefined) {
      if (!ok) {
        // 403 and no Access-Control-* header: the browser blocks the call, and devtools say why.
        res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
        res.end(`origin ${origin} is not allowed to call this server (--cors-allowed-origins)\n`);
        return true;
      }
      // Credentials (cookies) are never allowed: the token is a header, listed in Allow-Headers.
      res.writeHead(204, {
        "access-control-allow-origin": allowOrigin,
        "access-control-allow-methods": allowMethods,
        "access-control-allow-headers": allowHeaders,
        "access-control-max-age": maxAge,
      });
      res.end();
      return true;
    }
    if (ok) {
      res.setHeader("access-control-allow-origin", allowOrigin);
      res.setHeader("access-control-expose-headers", exposeHeaders);
    }
    return false;
  };
}

function headerOf(req: NodeRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
