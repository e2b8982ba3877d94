import { brokerOptionSchema } from "../config/broker-options.js";
import { corsOptions } from "../config/cors-options.js";
import { toCamelCase, type OptionSchema } from "../config/options.js";
import { rpcLimitOptions } from "../config/rpc-limit-options.js";
import { sentinelOptionSchema } from "../config/sentinel-options.js";

/**
 * The sentinel and broker options `goulette dev` accepts and hands to its children. Left out on purpose:
 * what dev sets itself (ids, addresses, ports, data directories, etcd endpoints, --sentinels, --fsync,
 * --log-level) and what has no meaning on a loopback cluster with an embedded etcd (etcd TLS/auth,
 * advertised addresses, server TLS, tokens, Kubernetes).
 */
export const SENTINEL_PASSTHROUGH = [
  "heartbeat-ttl",
  "election-ttl",
  "virtual-nodes",
  "default-partitions",
  "snapshot-every",
  "forward-timeout",
  "probe-timeout",
] as const;

export const BROKER_PASSTHROUGH = [
  "fsync-interval",
  "interval-sync",
  "segment-bytes",
  "retention-hours",
  "retention-bytes",
  "max-message-bytes",
  "keepalive-interval",
  "replica-lag-max",
  "min-insync-replicas",
] as const;

/** The RPC server bounds (--rpc-*): both kinds of process have them; the same values go to both. */
export const RPC_PASSTHROUGH = Object.keys(rpcLimitOptions) as (keyof typeof rpcLimitOptions)[];

/** CORS (--cors-*): the same allow-list for every sentinel and broker, so a page reaches them all. */
export const CORS_PASSTHROUGH = Object.keys(corsOptions) as (keyof typeof corsOptions)[];

function pick<S extends OptionSchema, K extends keyof S>(schema: S, keys: readonly K[]): Pick<S, K> {
  return Object.fromEntries(keys.map((key) => [key, schema[key]])) as Pick<S, K>;
}

/** Dev's schema entries for them: the very specs (help, defaults, bounds) of the sentinel and broker. */
export const passthroughSchema = {
  ...pick(sentinelOptionSchema, SENTINEL_PASSTHROUGH),
  ...pick(brokerOptionSchema, BROKER_PASSTHROUGH),
  ...rpcLimitOptions,
  ...corsOptions,
};

/**
 * The flags that hand the named options to a child process: only those set on dev (flag, env or config
 * file), so a child's own defaults stay its own and its start-up log still says which were set.
 */
export function passthroughArgs(
  names: readonly string[],
  values: Readonly<Record<string, unknown>>,
  sources: Readonly<Record<string, string>>,
): string[] {
  return names.flatMap((name) => {
    const key = toCamelCase(name);
    const value = values[key];
    if (sources[key] === "default" || sources[key] === undefined || value === undefined) return [];
    if (typeof value === "boolean") return [value ? `--${name}` : `--no-${name}`];
    return [`--${name}`, Array.isArray(value) ? value.join(",") : String(value)];
  });
}
