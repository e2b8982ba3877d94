import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import { InvalidArgumentError, UnauthenticatedError, errorMessage } from "../errors.js";

/**
 * Who is calling, resolved from the request's headers and its TLS peer certificate only (never from
 * the body), so that it can be decided before a request body is read.
 *
 * - `sentinel`, `broker` (name = the broker id), `admin`, `application` (name = the application):
 *   a credential of the tokens table, or a client certificate named `<kind>:<name>` under mutual TLS;
 * - `anonymous`: no credential.
 *
 * `trusted` marks a caller allowed everything, as every caller was before identities: the legacy
 * shared token (`--admin-token` / `--auth-token`), and anonymous callers of a node started with
 * `--allow-anonymous` (the dev cluster). For them a broker's id is what the request says.
 */
export type PrincipalKind = "sentinel" | "broker" | "admin" | "application" | "anonymous";

export interface Principal {
  readonly kind: PrincipalKind;
  /** The broker id (brokers), the application's or admin's name; may be empty for sentinels and admins. */
  readonly name: string;
  readonly trusted: boolean;
  /** How it was established, for error messages and logs. */
  readonly via: "token" | "certificate" | "shared-token" | "none";
}

export const ANONYMOUS: Principal = { kind: "anonymous", name: "", trusted: false, via: "none" };
const ANONYMOUS_TRUSTED: Principal = { kind: "anonymous", name: "", trusted: true, via: "none" };

/** Names `kind[:name]` (the tokens file, certificate CNs); `kind.name` in a tokens directory. */
const KIND_ALIASES: Record<string, Exclude<PrincipalKind, "anonymous">> = {
  sentinel: "sentinel",
  broker: "broker",
  admin: "admin",
  app: "application",
  application: "application",
};
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,253}$/;

/** Parses `sentinel`, `sentinel:s0`, `broker:<id>`, `admin[:name]`, `app:<name>` (or `application:`). */
export function parsePrincipalName(
  text: string,
  separator = ":",
): Omit<Principal, "via" | "trusted"> | undefined {
  const at = text.indexOf(separator);
  const kind = KIND_ALIASES[at < 0 ? text : text.slice(0, at)];
  const name = at < 0 ? "" : text.slice(at + 1);
  if (!kind) return undefined;
  if (name !== "" && !NAME_PATTERN.test(name)) return undefined;
  // A broker's identity is its id; an application's, its name (ACLs name it).
  if (name === "" && (kind === "broker" || kind === "application")) return undefined;
  return { kind, name };
}

/** How a principal is written in messages: `broker:b1`, `sentinel`, `anonymous`. */
export function describePrincipal(p: Principal): string {
  return p.name ? `${p.kind}:${p.name}` : p.kind;
}

export interface IdentityOptions {
  /** token → principal (see loadTokens). */
  tokens?: ReadonlyMap<string, Omit<Principal, "via" | "trusted">>;
  /** The legacy single shared token: its holder is trusted as every component. */
  sharedToken?: string;
  /** Callers without a credential are trusted (dev clusters); otherwise they are `anonymous`. */
  allowAnonymous?: boolean;
  /** Mutual TLS is on: a client certificate named as a principal identifies its holder. */
  certificates?: boolean;
}

/** The peer certificate of a request's connection, looked up only when asked (rpc-server sets it). */
export type PeerCertificateLookup = () =>
  { subject?: { CN?: string | string[] }; subjectaltname?: string } | undefined;

export const peerCertificateKey = createContextKey<PeerCertificateLookup | undefined>(undefined, {
  description: "the TLS peer certificate of the request's connection",
});

const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "the caller, as the authorization interceptor resolved it",
});

/** The caller of a request, once the authorization interceptor ran (undefined before, or without one). */
export function principalOf(values: ContextValues): Principal | undefined {
  return values.get(principalKey);
}

export function setPrincipal(values: ContextValues, principal: Principal): void {
  values.set(principalKey, principal);
}

/** The lookup rpc-server registers: a verified client certificate of a TLS connection, else none. */
export function peerCertificateOf(socket: unknown): PeerCertificateLookup {
  return () => {
    const tls = socket as Partial<TLSSocket> | undefined;
    if (!tls || tls.authorized !== true || typeof tls.getPeerCertificate !== "function") return undefined;
    const cert = tls.getPeerCertificate(false);
    return cert && Object.keys(cert).length > 0 ? cert : undefined;
  };
}

/**
 * Resolves the caller of a request. A bearer token wins over a certificate (the console pass-through
 * dials with the sentinel's certificate but carries the browser's token); an unknown token is refused,
 * never taken for anonymous.
 */
export class Authenticator {
  readonly #tokens = new Map<string, Principal>();
  readonly #shared: Buffer | undefined;
  readonly #options: IdentityOptions;

  constructor(options: IdentityOptions) {
    this.#options = options;
    if (options.sharedToken === "") throw new InvalidArgumentError("the auth token is empty");
    this.#shared = options.sharedToken === undefined ? undefined : digest(options.sharedToken);
    for (const [token, p] of options.tokens ?? []) {
      this.#tokens.set(tokenDigestHex(token), { ...p, trusted: false, via: "token" });
    }
  }

  /** Whether any credential can be presented at all (else every caller is anonymous). */
  get hasCredentials(): boolean {
    return this.#shared !== undefined || this.#tokens.size > 0 || this.#options.certificates === true;
  }

  resolve(header: Headers, peer?: PeerCertificateLookup): Principal {
    const authorization = header.get("authorization");
    if (authorization !== null) return this.#byToken(authorization);
    if (this.#options.certificates) {
      const fromCert = principalOfCertificate(peer?.());
      if (fromCert) return fromCert;
    }
    return this.#options.allowAnonymous ? ANONYMOUS_TRUSTED : ANONYMOUS;
  }

  #byToken(authorization: string): Principal {
    const match = /^Bearer +(.+)$/i.exec(authorization.trim());
    if (!match) throw new UnauthenticatedError("the authorization header is not 'Bearer <token>'");
    // Hashed first: the lookup and the comparison leak neither the token nor its length.
    const sent = digest(match[1] as string);
    if (this.#shared && timingSafeEqual(sent, this.#shared)) {
      return { kind: "admin", name: "", trusted: true, via: "shared-token" };
    }
    const known = this.#tokens.get(sent.toString("hex"));
    if (known) return known;
    throw new UnauthenticatedError("the bearer token sent is not a credential this node knows");
  }
}

/** A certificate's principal: its CN, else its first URI SAN `urn:goulette:<kind>[:<name>]`. */
export function principalOfCertificate(cert: ReturnType<PeerCertificateLookup>): Principal | undefined {
  if (!cert) return undefined;
  const cn = cert.subject?.CN;
  const candidates = [...(Array.isArray(cn) ? cn : cn ? [cn] : [])];
  for (const entry of (cert.subjectaltname ?? "").split(/,\s*/)) {
    if (entry.startsWith("URI:urn:goulette:")) candidates.push(entry.slice("URI:urn:goulette:".length));
  }
  for (const candidate of candidates) {
    const parsed = parsePrincipalName(candidate);
    if (parsed) return { ...parsed, trusted: false, via: "certificate" };
  }
  return undefined;
}

/**
 * Reads the tokens table: a file of `<principal> <token>` lines (`#` comments, blank lines), or a
 * directory with one file per principal, named `<kind>.<name>` (Kubernetes Secret keys allow no `:`)
 * and holding the token. Hidden entries (a mounted Secret's `..data`) are skipped. A token may be
 * given as its digest, `sha256:<64 lowercase hex>` (see tokenDigestHex).
 */
export function loadTokens(source: string): Map<string, Omit<Principal, "via" | "trusted">> {
  const entries: [string, string, string][] = []; // [principal text, token, where]
  let isDir: boolean;
  try {
    isDir = statSync(source).isDirectory();
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the tokens file '${source}': ${errorMessage(err)}`);
  }
  if (isDir) {
    for (const name of readdirSync(source).sort()) {
      if (name.startsWith(".")) continue;
      const file = path.join(source, name);
      if (!statSync(file).isFile()) continue;
      entries.push([name, readFileSync(file, "utf8").trim(), file]);
    }
  } else {
    readFileSync(source, "utf8")
      .split("\n")
      .forEach((line, i) => {
        const text = line.trim();
        if (text === "" || text.startsWith("#")) return;
        const [who, token, ...rest] = text.split(/\s+/);
        const where = `${source} line ${i + 1}`;
        if (token === undefined || rest.length > 0) {
          throw new InvalidArgumentError(`${where}: expected '<principal> <token>'`);
        }
        entries.push([who as string, token, where]);
      });
  }
  const tokens = new Map<string, Omit<Principal, "via" | "trusted">>();
  for (const [who, token, where] of entries) {
    const principal = parsePrincipalName(who, isDir ? "." : ":");
    if (!principal) {
      throw new InvalidArgumentError(
        `${where}: '${who}' is not a principal (sentinel, broker${isDir ? "." : ":"}<id>, admin, app${isDir ? "." : ":"}<name>)`,
      );
    }
    if (token === "") throw new InvalidArgumentError(`${where}: the token is empty`);
    if (tokens.has(token)) throw new InvalidArgumentError(`${where}: the same token is given twice`);
    tokens.set(token, principal);
  }
  return tokens;
}

/** The token this process presents on its own calls: a file's trimmed content. */
export function readTokenFile(file: string): string {
  try {
    const token = readFileSync(file, "utf8").trim();
    if (token === "") throw new InvalidArgumentError(`the token file '${file}' is empty`);
    return token;
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`cannot read the token file '${file}': ${errorMessage(err)}`);
  }
}

/**
 * A table entry written `sha256:<64 hex>` is the token's digest rather than the token, so that a node
 * can check credentials without holding them (the chart gives each pod only its own token).
 */
const DIGEST_ENTRY = /^sha256:([0-9a-f]{64})$/;

function tokenDigestHex(entry: string): string {
  return DIGEST_ENTRY.exec(entry)?.[1] ?? digest(entry).toString("hex");
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
