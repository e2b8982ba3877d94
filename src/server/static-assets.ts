import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import type http from "node:http";
import type http2 from "node:http2";
import path from "node:path";

/** A built web app served under a path prefix: files read once at start, nothing read per request. */
export interface StaticAssets {
  /** The prefix with its trailing slash, e.g. "/ui/". */
  readonly prefix: string;
  /** Files served, by path below the prefix ("" is index.html). Empty when the directory was missing. */
  readonly files: ReadonlyMap<string, StaticFile>;
  /**
   * Answers the request when its path is the prefix or below it (true), else leaves it (false). A path
   * that names no file is a 404: only files present at start are ever served, so no path can reach
   * outside the directory.
   */
  serve(req: IncomingRequest, res: OutgoingResponse): boolean;
}

export interface StaticFile {
  body: Buffer;
  contentType: string;
  etag: string;
}

type IncomingRequest = http.IncomingMessage | http2.Http2ServerRequest;
type OutgoingResponse = http.ServerResponse | http2.Http2ServerResponse;

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * The page may load its own script, styles and images, and call its own origin; nothing inline, no
 * other origin, no framing (the console acts with an admin token the user typed in).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Files larger than this are not served (a built console is a few hundred KiB). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

/**
 * Loads every file of `dir` (recursively, known types only) to serve under `prefix`. A missing
 * directory serves a 404 that says how to build it, rather than failing the process that embeds it.
 */
export function loadStaticAssets(dir: string, prefix: string, missingHint: string): StaticAssets {
  const files = new Map<string, StaticFile>();
  for (const relative of listFiles(dir)) {
    const type = CONTENT_TYPES[path.extname(relative)];
    const full = path.join(dir, relative);
    if (!type || statSync(full).size > MAX_FILE_BYTES) continue;
    const body = readFileSync(full);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    files.set(relative.split(path.sep).join("/"), { body, contentType: type, etag });
  }
  const index = files.get("index.html");
  if (index) files.set("", index);
  const bare = prefix.replace(/\/$/, "");

  return {
    prefix,
    files,
    serve(req, res) {
      const urlPath = (req.url ?? "/").split("?", 1)[0] ?? "/";
      if (urlPath === bare) {
        // Relative URLs in the page resolve against the directory, so /ui must become /ui/.
        res.writeHead(308, { location: prefix, "content-type": "text/plain; charset=utf-8" });
        res.end(`see ${prefix}\n`);
        return true;
      }
      if (!urlPath.startsWith(prefix)) return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
        res.end("method not allowed\n");
        return true;
      }
      const file = files.get(urlPath.slice(prefix.length));
      if (!file) {
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        res.end(files.size === 0 ? `${missingHint}\n` : "not found\n");
        return true;
      }
      const headers = {
        "content-type": file.contentType,
        etag: file.etag,
        // Revalidated on every load (a 304 when unchanged): the file names carry no version, and an
        // upgraded sentinel must not keep serving the old script from caches.
        "cache-control": "no-cache",
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin",
      };
      if (req.headers["if-none-match"] === file.etag) {
        res.writeHead(304, headers);
        res.end();
        return true;
      }
      res.writeHead(200, { ...headers, "content-length": String(file.body.length) });
      if (req.method === "HEAD") res.end();
      else res.end(file.body);
      return true;
    },
  };
}

/** Relative paths of the regular files below dir; [] when dir does not exist. */
function listFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true, encoding: "utf8" });
  } catch {
    return [];
  }
  return entries.filter((entry) => statSync(path.join(dir, entry)).isFile()).sort();
}
