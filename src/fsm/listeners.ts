/**
 * Listeners, as in Kafka: a broker has its default address (--advertise-address, the one other brokers
 * and the sentinels dial, named "internal") and may advertise more, each under a name
 * (--advertise-listeners external=lb-0.example.com:9094). A client names the listener it came in on and
 * gets every broker's address on that listener. The names and addresses are recorded with the broker in
 * the operation log, so every sentinel answers the same.
 */

import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { validateAddress } from "./validation.js";

/** The name of a broker's default address. */
export const DEFAULT_LISTENER = "internal";

/** Listeners one broker may advertise besides its default address. */
export const MAX_LISTENERS = 16;

/** One named address of a broker. */
export interface ListenerAddress {
  name: string;
  /** host:port */
  address: string;
}

const LISTENER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export function validateListenerName(name: string): void {
  if (!LISTENER_NAME.test(name)) {
    throw new InvalidArgumentError(
      `listener name ${JSON.stringify(name.slice(0, 80))} is invalid: ` +
        "use 1-32 lowercase letters, digits or '-', starting with a letter",
    );
  }
}

/**
 * Checks a broker's listener list (names valid and unique, not "internal", addresses host:port) and
 * returns it sorted by name: the canonical form kept in the log and compared on KeepAlive.
 */
export function canonicalListeners(listeners: readonly ListenerAddress[]): ListenerAddress[] {
  if (listeners.length > MAX_LISTENERS) {
    throw new InvalidArgumentError(
      `a broker advertises at most ${MAX_LISTENERS} listeners, got ${listeners.length}`,
    );
  }
  const seen = new Set<string>();
  for (const { name, address } of listeners) {
    validateListenerName(name);
    if (name === DEFAULT_LISTENER) {
      throw new InvalidArgumentError(
        `listener '${DEFAULT_LISTENER}' is the default address (--advertise-address); name the others differently`,
      );
    }
    if (seen.has(name)) throw new InvalidArgumentError(`listener '${name}' is given twice`);
    seen.add(name);
    validateAddress(address);
  }
  return listeners
    .map(({ name, address }) => ({ name, address }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Equal lists (both canonical: sorted by name). */
export function sameListeners(
  a: readonly ListenerAddress[] | undefined,
  b: readonly ListenerAddress[] | undefined,
): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((l, i) => l.name === y[i]?.name && l.address === y[i]?.address);
}

/** What a broker record needs to answer for a listener. */
interface Addressed {
  brokerId: string;
  address: string;
  listeners?: readonly ListenerAddress[];
}

/**
 * The broker's address on `listener` ("" or "internal": the default address). A broker without that
 * listener is a FailedPreconditionError naming the listeners it has, never an empty address: a client
 * asking for it could not dial the broker anyway.
 */
export function addressOn(broker: Addressed, listener: string): string {
  if (listener === "" || listener === DEFAULT_LISTENER) return broker.address;
  const found = broker.listeners?.find((l) => l.name === listener);
  if (found) return found.address;
  const has = [DEFAULT_LISTENER, ...(broker.listeners ?? []).map((l) => l.name)].join(", ");
  throw new FailedPreconditionError(
    `broker '${broker.brokerId}' has no listener '${listener}' (it advertises: ${has}); ` +
      "check the client's listener option and the broker's --advertise-listeners",
  );
}
