import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CONTENT_SECURITY_POLICY, loadStaticAssets } from "../../src/server/static-assets.js";

/** A raw HTTP/1.1 request (fetch would normalise `..` away before sending it). */
function get(port: number, urlPath: string, method = "GET", headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: urlPath, method, headers }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    },
  );
}

describe("static assets (the console's files)", () => {
  let root: string;
  let server: http.Server;
  let port: number;
  let missingPort: number;
  let missing: http.Server;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "goulette-assets-"));
    const dir = path.join(root, "app");
    await mkdir(path.join(dir, "sub"), { recursive: true });
    await writeFile(path.join(dir, "index.html"), "<!doctype html><title>x</title>");
    await writeFile(path.join(dir, "app.js"), "console.log(1)");
    await writeFile(path.join(dir, "sub", "style.css"), "body{}");
    await writeFile(path.join(dir, "notes.bin"), "not a served type");
    await writeFile(path.join(root, "secret.txt"), "outside the directory");
    const serve = (assetsDir: string) => {
      const assets = loadStaticAssets(assetsDir, "/ui/", "build me first");
      return http.createServer((req, res) => {
        if (!assets.serve(req, res)) {
          res.writeHead(418);
          res.end("elsewhere");
        }
      });
    };
    server = serve(dir);
    missing = serve(path.join(root, "nope"));
    for (const s of [server, missing])
      await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    missingPort = (missing.address() as AddressInfo).port;
  });
  after(async () => {
    server?.close();
    missing?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("serves index.html at the prefix and files below it with their types and a strict CSP", async () => {
    const index = await get(port, "/ui/");
    assert.equal(index.status, 200);
    assert.equal(index.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(index.headers["content-security-policy"], CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'none'/);
    assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
    assert.equal(index.headers["x-content-type-options"], "nosniff");
    assert.equal(index.headers["cache-control"], "no-cache");
    assert.equal(index.body, "<!doctype html><title>x</title>");
    assert.equal((await get(port, "/ui/app.js")).headers["content-type"], "text/javascript; charset=utf-8");
    const css = await get(port, "/ui/sub/style.css?v=1");
    assert.equal(css.headers["content-type"], "text/css; charset=utf-8");
    assert.equal(css.body, "body{}");
  });

  it("redirects the bare prefix and leaves other paths to the caller", async () => {
    const bare = await get(port, "/ui");
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, "/ui/");
    assert.equal((await get(port, "/metrics")).status, 418);
    assert.equal((await get(port, "/uix")).status, 418);
  });

  it("serves nothing outside the files it loaded: no traversal, no unknown types", async () => {
    for (const p of [
      "/ui/../secret.txt",
      "/ui/%2e%2e/secret.txt",
      "/ui/sub/../../secret.txt",
      "/ui/notes.bin",
      "/ui/nope.js",
    ]) {
      const res = await get(port, p);
      assert.equal(res.status, 404, p);
      assert.doesNotMatch(res.body, /outside/);
    }
  });

  it("answers 304 to a matching ETag, HEAD without a body, and 405 to other methods", async () => {
    const first = await get(port, "/ui/app.js");
    const again = await get(port, "/ui/app.js", "GET", { "if-none-match": first.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, "");
    const head = await get(port, "/ui/app.js", "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "14");
    assert.equal(head.body, "");
    const post = await get(port, "/ui/app.js", "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  it("says how to build the files when the directory is missing", async () => {
    const res = await get(missingPort, "/ui/");
    assert.equal(res.status, 404);
    assert.equal(res.body, "build me first\n");
  });
});
