import { InvalidArgumentError } from "../errors.js";
import { canonicalListeners, validateListenerName, type ListenerAddress } from "../fsm/listeners.js";
import { validateAddress } from "../fsm/validation.js";

/**
 * The broker's --advertise-listeners: its addresses besides --advertise-address, each on a named
 * listener. An entry is `name=host:port`, for this broker, or `name@broker-id=host:port`, for the broker
 * of that id only, so one value can serve every pod of a StatefulSet (the chart lists each pod's
 * external address that way). Returns this broker's listeners, sorted by name.
 *
 *   external=lb.example.com:9094                                  every broker given the value
 *   external@goulette-broker-0=203.0.113.10:9094,external@goulette-broker-1=203.0.113.11:9094
 */
export function advertisedListeners(entries: readonly string[], brokerId: string): ListenerAddress[] {
  const mine: ListenerAddress[] = [];
  /** Listener → the brokers that entries name for it, when this broker has no entry of its own. */
  const others = new Map<string, string[]>();
  for (const entry of entries) {
    const match = /^([^=@]*)(?:@([^=]*))?=(.*)$/.exec(entry);
    if (!match) {
      throw new InvalidArgumentError(
        `--advertise-listeners entry ${JSON.stringify(entry.slice(0, 100))} is not name=host:port or name@broker-id=host:port`,
      );
    }
    const [, name = "", target, address = ""] = match;
    validateListenerName(name);
    validateAddress(address);
    if (target === undefined || target === brokerId) {
      mine.push({ name, address });
    } else {
      others.set(name, [...(others.get(name) ?? []), target]);
    }
  }
  for (const [name, brokers] of others) {
    if (!mine.some((l) => l.name === name)) {
      throw new InvalidArgumentError(
        `--advertise-listeners gives listener '${name}' to ${brokers.join(", ")} but not to this broker ` +
          `('${brokerId}'): add ${name}@${brokerId}=host:port (one entry per broker)`,
      );
    }
  }
  return canonicalListeners(mine);
}
