import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/** Where Debian's `prometheus` package puts the server. */
export const PROMETHEUS_BIN = "/usr/bin/prometheus";

/** One scrape target on loopback, with the labels Kubernetes service discovery would add. */
export interface ScrapeTarget {
  /** host:port serving /metrics. */
  address: string;
  /** Target labels, e.g. { namespace: "ns", pod: "goulette-sentinel-0" }. */
  labels?: Record<string, string>;
}

export interface ScrapeJob {
  /** The `job` label (in Kubernetes: the headless Service's name). */
  job: string;
  targets: ScrapeTarget[];
}

export interface PrometheusOptions {
  jobs: ScrapeJob[];
  /** Rules files to load (absolute paths), evaluated every `intervalSeconds`. */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval in seconds (default 1). */
  intervalSeconds?: number;
  /** The binary; default /usr/bin/prometheus, else `prometheus` on PATH. */
  binary?: string;
}

/** One sample of an instant query (a scalar result is one sample without labels). */
export interface PromSample {
  labels: Record<string, string>;
  /** Evaluation (or, with timestamp(), sample) time in seconds since the epoch. */
  time: number;
  /** Parsed value: NaN and ±Inf are kept as such. */
  value: number;
}

export interface PromAlert {
  labels: Record<string, string>;
  state: "pending" | "firing" | "inactive";
  activeAt?: string;
  value: string;
}

export interface PromRule {
  name: string;
  query: string;
  type: "alerting" | "recording";
  /** Alerting rules only. */
  state?: "inactive" | "pending" | "firing";
  health: string;
  lastError?: string;
  /** When the rule was last evaluated (RFC 3339). */
  lastEvaluation?: string;
  alerts?: PromAlert[];
}

export interface PromTarget {
  labels: Record<string, string>;
  health: "up" | "down" | "unknown";
  lastError: string;
  lastScrape: string;
}

/** The query API answered with an error: `errorType` is "bad_data" for a PromQL parse error. */
export class PromQueryError extends Error {
  constructor(
    readonly expr: string,
    readonly errorType: string,
    readonly detail: string,
  ) {
    super(`Prometheus rejected ${JSON.stringify(expr)}: ${errorType}: ${detail}`);
    this.name = "PromQueryError";
  }
}

/** A real Prometheus server on a free loopback port, with a temporary config and TSDB. */
export interface TestPrometheus {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Instant query through /api/v1/query; throws PromQueryError when Prometheus rejects it. */
  query(expr: string): Promise<PromSample[]>;
  /** Every rule Prometheus loaded, with its state (/api/v1/rules). */
  rules(): Promise<PromRule[]>;
  /** The active scrape targets (/api/v1/targets). */
  targets(): Promise<PromTarget[]>;
  /** Last lines Prometheus logged, for failure messages. */
  logTail(): string;
  /** SIGTERM (SIGKILL after 5 s) and removes the temporary directory. */
  stop(): Promise<void>;
}

/** The Prometheus binary, or undefined when none is installed. */
export function findPrometheus(): string | undefined {
  if (isExecutable(PROMETHEUS_BIN)) return PROMETHEUS_BIN;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "prometheus");
    if (dir && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Starts Prometheus and waits until it is ready and has loaded every rule file. */
export async function startPrometheus(options: PrometheusOptions): Promise<TestPrometheus> {
  const binary = options.binary ?? findPrometheus();
  if (!binary) {
    throw new Error(
      `prometheus is not installed (looked for ${PROMETHEUS_BIN} and on PATH): ` +
        "apt-get install prometheus (scripts/setup.sh installs it, CI has it)",
    );
  }
  const interval = `${options.intervalSeconds ?? 1}s`;
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-prometheus-"));
  const configFile = path.join(dir, "prometheus.yml");
  // JSON is YAML: no serializer needed, and the values need no quoting rules.
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: options.jobs.map((job) => ({
      job_name: job.job,
      metrics_path: "/metrics",
      static_configs: job.targets.map((t) => ({ targets: [t.address], labels: t.labels ?? {} })),
    })),
  };
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    "--log.level=warn",
  ];
  const setpriv = parentDeathSignalWrapper();
  const child = setpriv
    ? spawn(setpriv, ["--pdeathsig", "KILL", "--", binary, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    : spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // A test process that dies without running `after` must not leave Prometheus behind.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const logTail = () => log.split("\n").slice(-15).join("\n");

  const stop = async () => {
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const api = async <T>(pathAndQuery: string, expr = ""): Promise<T> => {
    const res = await fetch(`${url}${pathAndQuery}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { status: string; data: T; errorType?: string; error?: string };
    if (body.status !== "success") {
      throw new PromQueryError(expr, body.errorType ?? `HTTP ${res.status}`, body.error ?? "");
    }
    return body.data;
  };

  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null)
          throw new Error(`prometheus exited with ${child.exitCode}:\n${logTail()}`);
        return (await fetch(`${url}/-/ready`)).ok;
      },
      { timeoutMs: 20_000, what: "prometheus to become ready" },
    );
    const expected = countRules(options.ruleFiles ?? []);
    await waitFor(
      async () => {
        const data = await api<{ groups: { rules: unknown[] }[] }>("/api/v1/rules");
        return data.groups.reduce((n, g) => n + g.rules.length, 0) === expected;
      },
      { timeoutMs: 10_000, what: `prometheus to load ${expected} rules` },
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url,
    port,
    dir,
    process: child,
    logTail,
    stop,
    async query(expr) {
      const data = await api<{ resultType: string; result: unknown }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}`,
        expr,
      );
      return toSamples(expr, data);
    },
    async rules() {
      const data = await api<{ groups: { rules: PromRule[] }[] }>("/api/v1/rules");
      return data.groups.flatMap((g) => g.rules);
    },
    async targets() {
      const data = await api<{ activeTargets: PromTarget[] }>("/api/v1/targets?state=active");
      return data.activeTargets;
    },
  };
}

type RawSample = { metric: Record<string, string>; value: [number, string] };

function toSamples(expr: string, data: { resultType: string; result: unknown }): PromSample[] {
  const sample = (labels: Record<string, string>, [time, value]: [number, string]): PromSample => ({
    labels,
    time,
    value: parsePromNumber(value),
  });
  switch (data.resultType) {
    case "vector":
      return (data.result as RawSample[]).map((s) => sample(s.metric, s.value));
    case "scalar":
      return [sample({}, data.result as [number, string])];
    default:
      // Dashboards and alerts evaluate to instant vectors or scalars; anything else is a mistake.
      throw new PromQueryError(expr, "unexpected_result", `result type ${data.resultType}`);
  }
}

/** Prometheus' number syntax: "NaN", "+Inf", "-Inf" or a decimal. */
export function parsePromNumber(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/** Rules in the given files (a cheap count of `- alert:` / `- record:` entries, to wait for the load). */
function countRules(files: string[]): number {
  return files.reduce(
    (n, file) => n + (readFileSync(file, "utf8").match(/^\s*-\s*(alert|record):/gm)?.length ?? 0),
    0,
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let setprivProbe: string | null | undefined;

/** util-linux setpriv when it can set a parent-death signal (Linux), so Prometheus dies with the test. */
function parentDeathSignalWrapper(): string | undefined {
  if (setprivProbe === undefined) {
    setprivProbe = null;
    if (process.platform === "linux") {
      const probe = spawnSync("setpriv", ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" });
      if (probe.status === 0) setprivProbe = "setpriv";
    }
  }
  return setprivProbe ?? undefined;
}

// ---------------------------------------------------------------------------------------------------
// Grafana dashboards: the PromQL their panels send, and Grafana's variable substitution.

/** One query of one dashboard panel. */
export interface DashboardQuery {
  /** Title of the row the panel sits under ("" before the first row). */
  row: string;
  panel: string;
  panelId: number;
  refId: string;
  /** The expression as written in the dashboard, variables unsubstituted. */
  expr: string;
}

interface GrafanaPanel {
  id?: number;
  type?: string;
  title?: string;
  panels?: GrafanaPanel[];
  targets?: { refId?: string; expr?: string }[];
}

/** Every panel query of a dashboard JSON (rows collapsed or not), in display order. */
export function dashboardQueries(dashboard: { panels?: GrafanaPanel[] }): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  let row = "";
  const visit = (panel: GrafanaPanel) => {
    for (const target of panel.targets ?? []) {
      queries.push({
        row,
        panel: panel.title ?? "",
        panelId: panel.id ?? -1,
        refId: target.refId ?? "",
        expr: target.expr ?? "",
      });
    }
  };
  for (const panel of dashboard.panels ?? []) {
    if (panel.type === "row") {
      row = panel.title ?? "";
      for (const inner of panel.panels ?? []) visit(inner);
    } else {
      visit(panel);
    }
  }
  return queries;
}

/** The variable references of an expression: `$name`, `${name}`, `${name:format}`, `[[name]]`. */
const VARIABLE = /\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w-]+)?\]\]/g;

/** Names of the variables an expression uses (Grafana built-ins included, e.g. `__rate_interval`). */
export function variablesOf(expr: string): string[] {
  return [...expr.matchAll(VARIABLE)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

/**
 * Replaces variables the way Grafana does for a Prometheus query; throws on a variable without a
 * value (a panel using a variable the dashboard does not define).
 */
export function substituteVariables(expr: string, values: Record<string, string>): string {
  return expr.replace(VARIABLE, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c) as string;
    const value = values[name];
    if (value === undefined) throw new Error(`no value for variable ${whole} in ${JSON.stringify(expr)}`);
    return value;
  });
}
