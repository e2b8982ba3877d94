import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { MAX_TOPIC_NAME_LENGTH } from "./validation.js";

/**
 * Per-topic access control for applications: entries kept in the operation log (putAcl, deleteAcl),
 * applied by the state machine and enforced by sentinels and brokers. An entry grants, never denies:
 * an application may do what any entry naming it (or `*`) grants on a matching topic.
 *
 * Default: while the cluster holds no entry at all, applications keep the access they had before ACLs
 * existed (every topic), so an upgrade breaks nobody; once any entry exists, an application may do
 * only what some entry grants it.
 */
export type AclPermission = "read" | "write";

export const ACL_PERMISSIONS: readonly AclPermission[] = ["read", "write"];

/** A type, not an interface: operations' data must be assignable to a plain record. */
export type AclEntry = {
  /** `application:<name>`, or `*` for every application. */
  principal: string;
  /** A topic name, or a prefix ending in `*` (`orders.*`; `*` alone: every topic). */
  resource: string;
  /** Sorted, without duplicates, not empty. */
  permissions: AclPermission[];
};

const NAME = /^[A-Za-z0-9._-]{1,253}$/;
const TOPIC_CHARS = /^[A-Za-z0-9._-]*$/;

/** `application:<name>` (also written `app:<name>`) or `*`, in its canonical form. */
export function canonicalAclPrincipal(text: string): string {
  if (text === "*") return "*";
  const at = text.indexOf(":");
  const kind = at < 0 ? text : text.slice(0, at);
  const name = at < 0 ? "" : text.slice(at + 1);
  if ((kind === "app" || kind === "application") && NAME.test(name)) return `application:${name}`;
  throw new InvalidArgumentError(
    `ACL principal ${JSON.stringify(text.slice(0, 80))} is not 'app:<name>' (or 'application:<name>') ` +
      "or '*': ACLs apply to applications (admins and sentinels are never limited by them)",
  );
}

/** A topic name, or a prefix of topic-name characters followed by `*`. */
export function validateAclResource(resource: string): void {
  const prefix = resource.endsWith("*") ? resource.slice(0, -1) : undefined;
  const name = prefix ?? resource;
  const ok =
    name.length <= MAX_TOPIC_NAME_LENGTH &&
    TOPIC_CHARS.test(name) &&
    (prefix !== undefined || (name !== "" && name !== "." && name !== ".."));
  if (!ok) {
    throw new InvalidArgumentError(
      `ACL topic ${JSON.stringify(resource.slice(0, 80))} is neither a topic name nor a prefix ending in '*' ` +
        "(letters, digits, '.', '_' and '-', e.g. 'orders' or 'orders.*')",
    );
  }
}

/** The permissions as a sorted set; at least one, each `read` or `write`. */
export function canonicalPermissions(permissions: readonly string[]): AclPermission[] {
  if (permissions.length === 0) throw new InvalidArgumentError("an ACL needs a permission: read, write");
  for (const p of permissions) {
    if (!ACL_PERMISSIONS.includes(p as AclPermission)) {
      throw new InvalidArgumentError(
        `ACL permission ${JSON.stringify(p.slice(0, 40))} is unknown: use read and/or write`,
      );
    }
  }
  return ACL_PERMISSIONS.filter((p) => permissions.includes(p));
}

/** An entry in canonical form; throws InvalidArgumentError naming what is wrong. */
export function canonicalAclEntry(entry: {
  principal: string;
  resource: string;
  permissions: readonly string[];
}): AclEntry {
  validateAclResource(entry.resource);
  return {
    principal: canonicalAclPrincipal(entry.principal),
    resource: entry.resource,
    permissions: canonicalPermissions(entry.permissions),
  };
}

function matches(resource: string, topic: string): boolean {
  return resource.endsWith("*") ? topic.startsWith(resource.slice(0, -1)) : resource === topic;
}

function keyOf(principal: string, resource: string): string {
  return `${principal}\n${resource}`;
}

/**
 * An immutable set of entries, at most one per (principal, resource). Lookups scan only the entries
 * of the application and of `*`; the digest (SHA-256 of the sorted entries) tells brokers whether
 * their copy is current.
 */
export class AclSet {
  static readonly EMPTY = new AclSet([]);
  readonly #entries: readonly AclEntry[];
  readonly #byPrincipal = new Map<string, AclEntry[]>();
  #digest: string | undefined;

  /** Entries in canonical form (the state machine and the KeepAlive answer keep them so). */
  constructor(entries: readonly AclEntry[]) {
    const unique = new Map<string, AclEntry>();
    for (const e of entries) unique.set(keyOf(e.principal, e.resource), e);
    this.#entries = [...unique.values()].sort(
      (a, b) => compareText(a.principal, b.principal) || compareText(a.resource, b.resource),
    );
    for (const e of this.#entries) {
      const list = this.#byPrincipal.get(e.principal) ?? [];
      list.push(e);
      this.#byPrincipal.set(e.principal, list);
    }
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Sorted by principal, then resource. */
  entries(): readonly AclEntry[] {
    return this.#entries;
  }

  get(principal: string, resource: string): AclEntry | undefined {
    return this.#byPrincipal.get(principal)?.find((e) => e.resource === resource);
  }

  with(entry: AclEntry): AclSet {
    const rest = this.#entries.filter(
      (e) => !(e.principal === entry.principal && e.resource === entry.resource),
    );
    return new AclSet([...rest, entry]);
  }

  without(principal: string, resource: string): AclSet {
    if (!this.get(principal, resource)) return this;
    return new AclSet(this.#entries.filter((e) => !(e.principal === principal && e.resource === resource)));
  }

  /** May application `name` do `permission` on `topic`? Everything while the set is empty (see above). */
  allows(name: string, topic: string, permission: AclPermission): boolean {
    if (this.#entries.length === 0) return true;
    const grants = (e: AclEntry) => e.permissions.includes(permission) && matches(e.resource, topic);
    return (
      (this.#byPrincipal.get(`application:${name}`)?.some(grants) ?? false) ||
      (this.#byPrincipal.get("*")?.some(grants) ?? false)
    );
  }

  /** Hex SHA-256 of the sorted entries: equal sets, equal digests, on every sentinel and version. */
  get digest(): string {
    const rows = this.#entries.map((e) => [e.principal, e.resource, e.permissions]);
    this.#digest ??= createHash("sha256").update(JSON.stringify(rows)).digest("hex");
    return this.#digest;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
