import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { UnauthenticatedError } from "../../src/errors.js";
import {
  Authenticator,
  loadTokens,
  parsePrincipalName,
  principalOfCertificate,
} from "../../src/server/identity.js";

describe("identities", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-identity-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("parses principal names, and refuses brokers and applications without a name", () => {
    assert.deepEqual(parsePrincipalName("broker:b-1"), { kind: "broker", name: "b-1" });
    assert.deepEqual(parsePrincipalName("sentinel"), { kind: "sentinel", name: "" });
    assert.deepEqual(parsePrincipalName("app:orders"), { kind: "application", name: "orders" });
    assert.deepEqual(parsePrincipalName("admin.ops", "."), { kind: "admin", name: "ops" });
    for (const bad of ["broker", "app", "root:x", "broker:a b", "goulette-node", ""]) {
      assert.equal(parsePrincipalName(bad), undefined, bad);
    }
  });

  it("reads a tokens file and a Secret-like directory, and names the line of a mistake", async () => {
    const file = path.join(dir, "tokens");
    await writeFile(file, "# comment\n\nsentinel s-token\nbroker:b1   b1-token\n");
    assert.deepEqual(
      [...loadTokens(file)],
      [
        ["s-token", { kind: "sentinel", name: "" }],
        ["b1-token", { kind: "broker", name: "b1" }],
      ],
    );
    const secret = path.join(dir, "secret");
    await mkdir(path.join(secret, "..2026_data"), { recursive: true });
    await writeFile(path.join(secret, "..2026_data", "broker.b2"), "b2-token\n");
    await symlink("..2026_data/broker.b2", path.join(secret, "broker.b2"));
    await writeFile(path.join(secret, "app.billing"), "app-token");
    assert.deepEqual([...loadTokens(secret)].sort(), [
      ["app-token", { kind: "application", name: "billing" }],
      ["b2-token", { kind: "broker", name: "b2" }],
    ]);
    await writeFile(file, "sentinel a\nbroker b\n");
    assert.throws(() => loadTokens(file), /tokens line 2: 'broker' is not a principal/);
    await writeFile(file, "sentinel a\nadmin a\n");
    assert.throws(() => loadTokens(file), /line 2: the same token is given twice/);
    await writeFile(file, "sentinel\n");
    assert.throws(() => loadTokens(file), /line 1: expected '<principal> <token>'/);
    assert.throws(() => loadTokens(path.join(dir, "missing")), /cannot read the tokens file/);
  });

  it("accepts a token given as its sha256 digest, and only the token itself, not the digest", () => {
    const digest = createHash("sha256").update("b1-token").digest("hex");
    const auth = new Authenticator({
      tokens: new Map([[`sha256:${digest}`, { kind: "broker" as const, name: "b1" }]]),
    });
    const h = (value: string) => new Headers({ authorization: value });
    assert.deepEqual(auth.resolve(h("Bearer b1-token")), {
      kind: "broker",
      name: "b1",
      trusted: false,
      via: "token",
    });
    assert.throws(() => auth.resolve(h(`Bearer sha256:${digest}`)), UnauthenticatedError);
    assert.throws(() => auth.resolve(h(`Bearer ${digest}`)), UnauthenticatedError);
  });

  it("resolves a token, the shared token, a certificate, or anonymous; an unknown token is refused", () => {
    const auth = new Authenticator({
      tokens: new Map([["b1-token", { kind: "broker" as const, name: "b1" }]]),
      sharedToken: "shared",
      certificates: true,
    });
    const h = (value?: string) => new Headers(value ? { authorization: value } : {});
    assert.equal(auth.resolve(h("Bearer b1-token")).name, "b1");
    assert.equal(auth.resolve(h("bearer   shared")).trusted, true);
    assert.throws(() => auth.resolve(h("Bearer other")), UnauthenticatedError);
    assert.throws(() => auth.resolve(h("Basic b1-token")), /not 'Bearer <token>'/);
    const cert = { subject: { CN: "sentinel:s0" } };
    assert.deepEqual(
      auth.resolve(h(), () => cert),
      { kind: "sentinel", name: "s0", trusted: false, via: "certificate" },
    );
    assert.equal(auth.resolve(h()).kind, "anonymous");
    assert.equal(auth.resolve(h()).trusted, false);
    assert.equal(new Authenticator({ allowAnonymous: true }).resolve(h()).trusted, true);
    assert.equal(
      principalOfCertificate({ subject: { CN: "node" }, subjectaltname: "DNS:x, URI:urn:goulette:app:web" })
        ?.name,
      "web",
    );
  });
});
