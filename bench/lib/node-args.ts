/**
 * Extra `node` flags for the processes of a benchmark's cluster (sentinels and brokers), from
 * GOULETTE_BENCH_NODE_ARGS (space-separated, e.g. "--max-semi-space-size=64"): runtime settings are
 * measured side by side with the same code.
 */
export function benchNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.GOULETTE_BENCH_NODE_ARGS ?? "").split(/\s+/).filter((arg) => arg !== "");
}
