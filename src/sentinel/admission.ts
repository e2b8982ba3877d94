import { OverloadedError } from "../errors.js";

export interface CreationAdmissionOptions {
  /** Creations waiting for their commit at once, at most (--max-pending-topic-creations). */
  maxPending: number;
  /** Role changes not yet delivered to brokers (RoleNotifier.backlog); absent: not considered. */
  roleBacklog?: () => number;
  /** Refuse creations while roleBacklog() is above this (--max-pending-role-pushes). */
  maxRoleBacklog?: number;
  /** The hint given with a refusal (ms, default 250); clients add backoff and jitter. */
  retryAfterMs?: number;
}

/**
 * Admission of topic creations on the leader (docs/architecture.md, "Overload"). Creations are committed
 * in group commits, many per etcd transaction; at most `maxPending` wait for theirs at once, and none is
 * taken while the brokers have more than `maxRoleBacklog` role changes still to receive. One more is
 * refused with OverloadedError (ResourceExhausted, retryable, with a retry hint) instead of queueing: a
 * burst is taken at the rate the control plane commits and the brokers apply, and the work that keeps
 * the cluster alive (heartbeats, lease renewals) never competes with an unbounded queue of creations.
 */
export class CreationAdmission {
  #pending = 0;

  constructor(private readonly options: CreationAdmissionOptions) {}

  get pending(): number {
    return this.#pending;
  }

  /** Takes a place in the queue, or throws OverloadedError; call the returned function once done. */
  admit(what: string): () => void {
    const retryAfterMs = this.options.retryAfterMs ?? 250;
    const refuse = (why: string) =>
      new OverloadedError(`${why}; ${what} was not created, retry in about ${retryAfterMs} ms`, retryAfterMs);
    if (this.#pending >= this.options.maxPending) {
      throw refuse(
        `the sentinel leader is already creating ${this.#pending} topics ` +
          `(--max-pending-topic-creations ${this.options.maxPending})`,
      );
    }
    const backlog = this.options.roleBacklog?.() ?? 0;
    const maxBacklog = this.options.maxRoleBacklog ?? Infinity;
    if (backlog > maxBacklog) {
      throw refuse(
        `the brokers have ${backlog} role changes still to apply (--max-pending-role-pushes ${maxBacklog})`,
      );
    }
    this.#pending++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#pending--;
    };
  }
}
