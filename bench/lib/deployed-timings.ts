/**
 * The liveness timings of a deployed cluster — the sentinels' and brokers' own defaults — for the
 * benchmarks that measure what users get. The test helper's (KeepAlive every 300 ms, election lease
 * 2 s, replica lag bound 3 s) find failures fast in tests at the price of background work: an idle
 * cluster on them kept its sentinel at 5–7 % of a core and etcd at 3 %, against about 1 % each on
 * these (docs/benchmarks.md, "Tail latency: the cluster's own background").
 */
export const DEPLOYED_SENTINEL_ARGS: readonly string[] = ["--election-ttl", "5"];
export const DEPLOYED_BROKER_ARGS: readonly string[] = [
  "--keepalive-interval",
  "3000",
  "--replica-lag-max",
  "10000",
];
