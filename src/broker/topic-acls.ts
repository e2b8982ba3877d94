import { AclSet, canonicalAclEntry } from "../fsm/acl.js";
import type { KeepAliveResponse } from "../gen/goulette/v1/sentinel_pb.js";
import type { Logger } from "../observability/logger.js";

/**
 * The cluster's topic ACLs as this broker last learned them from a KeepAlive answer. Until the first
 * answer they are unknown, and application calls are refused as Unavailable rather than let through
 * (see topicAccess). The beat sends the digest of the copy held, so an unchanged set costs the answer
 * one digest, not the list.
 */
export class BrokerAcls {
  #set: AclSet | undefined;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** The set in force; undefined before the first KeepAlive answer. */
  get current(): AclSet | undefined {
    return this.#set;
  }

  /** The digest the next KeepAlive sends ("" until known). */
  get heldDigest(): string {
    return this.#set?.digest ?? "";
  }

  /** Takes the ACL fields of a KeepAlive answer. */
  learn(answer: Pick<KeepAliveResponse, "acls" | "aclsDigest" | "aclsUnchanged">): void {
    if (answer.aclsUnchanged && this.#set) return;
    // A sentinel that predates ACLs sends no digest: its cluster has none.
    if (answer.aclsDigest === "") {
      this.#set = AclSet.EMPTY;
      return;
    }
    const entries = [];
    for (const e of answer.acls) {
      try {
        entries.push(canonicalAclEntry(e));
      } catch (err) {
        // Not from a sentinel of this version: dropping it can only take access away.
        this.#logger.warn(
          { err: err, principal: e.principal, resource: e.resource },
          "ignoring an ACL entry",
        );
      }
    }
    const next = new AclSet(entries);
    if (next.digest !== this.#set?.digest) {
      this.#logger.info({ entries: next.size, digest: next.digest.slice(0, 16) }, "topic ACLs updated");
    }
    this.#set = next;
  }
}
