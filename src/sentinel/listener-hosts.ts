import { InvalidArgumentError } from "../errors.js";
import { DEFAULT_LISTENER, validateListenerName } from "../fsm/listeners.js";

/**
 * The sentinel's --listener-hosts: `name=host` or `name=host:port` entries saying that a request sent to
 * that host (its Host header or HTTP/2 :authority) came in through listener `name`, so a client that
 * names no listener gets the brokers' addresses on it. An entry with a port matches that port only.
 * Returns the lookup from a request URL; undefined when the URL's host is in no entry.
 */
export function listenerHostsLookup(entries: readonly string[]): (url: string) => string | undefined {
  const byHost = new Map<string, string>();
  for (const entry of entries) {
    const at = entry.indexOf("=");
    const name = at < 0 ? "" : entry.slice(0, at);
    const host = at < 0 ? "" : entry.slice(at + 1).toLowerCase();
    if (name === "" || host === "" || /[/\s]/.test(host)) {
      throw new InvalidArgumentError(
        `--listener-hosts entry ${JSON.stringify(entry.slice(0, 100))} is not name=host or name=host:port`,
      );
    }
    validateListenerName(name);
    if (name === DEFAULT_LISTENER) {
      throw new InvalidArgumentError(
        `--listener-hosts: requests reach '${DEFAULT_LISTENER}' by default; list the other listeners' hosts only`,
      );
    }
    const other = byHost.get(host);
    if (other !== undefined && other !== name) {
      throw new InvalidArgumentError(`--listener-hosts gives ${host} to both '${other}' and '${name}'`);
    }
    byHost.set(host, name);
  }
  if (byHost.size === 0) return () => undefined;
  return (url) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
    return byHost.get(`${parsed.hostname}:${port}`) ?? byHost.get(parsed.hostname);
  };
}
