import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

/** A rendered Kubernetes object: only the fields every object has are typed. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface HelmResult {
  /** Exit code (null when killed by the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A helm run that exited non-zero; the message carries helm's stderr. */
export class HelmFailedError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: HelmResult,
  ) {
    super(`helm ${args.join(" ")} exited with ${result.code}: ${result.stderr.trim()}`);
    this.name = "HelmFailedError";
  }
}

export interface HelmValuesOptions {
  /** Values, written to a temporary file and passed with -f (nested objects, as in values.yaml). */
  values?: Record<string, unknown>;
  /** Extra `--set` expressions, applied after `values` (e.g. "sentinel.replicas=abc"). */
  set?: readonly string[];
  /** Release name; default "gt". */
  releaseName?: string;
  /** Release namespace; default "goulette-test". */
  namespace?: string;
  /** Chart directory; default charts/goulette of this repository. */
  chartDir?: string;
}

/** The repository root: the nearest ancestor of this file with the goulette package.json. */
export const repoRoot: string = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The chart under test. */
export const chartDir: string = path.join(repoRoot, "charts", "goulette");

export const DEFAULT_RELEASE = "gt";
export const DEFAULT_NAMESPACE = "goulette-test";

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (existsSync(pkg)) {
      const parsed = JSON.parse(readFileSync(pkg, "utf8")) as { name?: unknown };
      if (parsed.name === "goulette") return dir;
    }
    if (path.dirname(dir) === dir) throw new Error(`no goulette package.json above ${start}`);
  }
}

/**
 * The helm binary: .tools/bin/helm (extracted by scripts/setup.sh, since Debian has no helm), else
 * the first `helm` on PATH; undefined when there is none.
 */
export function findHelm(): string | undefined {
  const candidates = [path.join(repoRoot, ".tools", "bin", "helm")];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "") candidates.push(path.join(dir, "helm"));
  }
  return candidates.find(isExecutable);
}

/** The first executable named `name` on PATH, or undefined (for optional tools such as promtool). */
export function findOnPath(name: string): string | undefined {
  return (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => path.join(dir, name))
    .find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command with a deadline; never throws on a non-zero exit (the caller decides). */
export function run(command: string, args: readonly string[], timeoutMs = 60_000): Promise<HelmResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      [...args],
      { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err && typeof err.code === "string") {
          reject(new Error(`cannot run ${command}: ${err.message}`));
          return;
        }
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function requireHelm(): string {
  const helm = findHelm();
  if (!helm) throw new Error("helm not found: run `bash scripts/setup.sh` (it extracts .tools/bin/helm)");
  return helm;
}

/** Runs helm with the values of `options` (a temporary values file plus --set flags). */
async function runWithValues(subcommand: string[], options: HelmValuesOptions): Promise<HelmResult> {
  const helm = requireHelm();
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-helm-"));
  try {
    const args = [...subcommand];
    if (options.values) {
      const file = path.join(dir, "values.json");
      // JSON is YAML: no second serializer needed.
      await writeFile(file, JSON.stringify(options.values));
      args.push("-f", file);
    }
    for (const expr of options.set ?? []) args.push("--set", expr);
    return await run(helm, args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `helm lint --strict` of the chart with these values. */
export function helmLint(options: HelmValuesOptions = {}): Promise<HelmResult> {
  const chart = options.chartDir ?? chartDir;
  return runWithValues(
    ["lint", "--strict", chart, "--namespace", options.namespace ?? DEFAULT_NAMESPACE],
    options,
  );
}

/** `helm template` without parsing; for checking failures and their messages. */
export function helmTemplateRaw(options: HelmValuesOptions = {}): Promise<HelmResult> {
  const chart = options.chartDir ?? chartDir;
  return runWithValues(
    [
      "template",
      options.releaseName ?? DEFAULT_RELEASE,
      chart,
      "--namespace",
      options.namespace ?? DEFAULT_NAMESPACE,
    ],
    options,
  );
}

/** `helm template` parsed into objects; throws HelmFailedError when helm fails. */
export async function helmTemplate(options: HelmValuesOptions = {}): Promise<KubeObject[]> {
  const result = await helmTemplateRaw(options);
  if (result.code !== 0) throw new HelmFailedError(["template"], result);
  return parseManifests(result.stdout);
}

/** Parses a multi-document YAML stream; empty documents are dropped, malformed ones throw. */
export function parseManifests(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0)
      throw new Error(`invalid YAML in rendered manifests: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isKubeObject(value)) {
      throw new Error(`rendered document is not a Kubernetes object: ${JSON.stringify(value).slice(0, 200)}`);
    }
    objects.push(value);
  }
  return objects;
}

function isKubeObject(value: unknown): value is KubeObject {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const metadata = v.metadata as Record<string, unknown> | undefined;
  return (
    typeof v.apiVersion === "string" &&
    typeof v.kind === "string" &&
    typeof metadata === "object" &&
    metadata !== null &&
    typeof metadata.name === "string"
  );
}
