import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { InvalidArgumentError, errorMessage } from "../errors.js";

/**
 * A small schema-driven option loader shared by every subcommand. Every option can come from, in
 * order of precedence: a command-line flag (`--etcd-endpoints a,b`), an environment variable
 * (`GOULETTE_ETCD_ENDPOINTS`), a YAML config file (`etcd-endpoints:` or `etcdEndpoints:`, file given by
 * `--config` or `GOULETTE_CONFIG`), or the documented default.
 */

export type OptionKind = "string" | "number" | "boolean" | "list";

type ValueOf<K extends OptionKind> = K extends "string"
  ? string
  : K extends "number"
    ? number
    : K extends "boolean"
      ? boolean
      : string[];

export interface OptionSpec<K extends OptionKind = OptionKind> {
  kind: K;
  /** One line for --help. */
  description: string;
  /** Used when no source sets the option. */
  default: ValueOf<K>;
  /** Smallest accepted value (numbers). */
  min?: number;
  /** Largest accepted value (numbers). */
  max?: number;
  /** Only whole numbers (numbers): counts, bytes, milliseconds. */
  integer?: boolean;
  /** Accepted values (strings). */
  choices?: readonly string[];
}

export type OptionSchema = Record<string, OptionSpec>;

/** The typed result: one property per option, named by the flag in camelCase. */
export type OptionValues<S extends OptionSchema> = {
  [N in keyof S as CamelCase<N & string>]: S[N] extends OptionSpec<infer K> ? ValueOf<K> : never;
};

type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

export function option<K extends OptionKind>(spec: OptionSpec<K>): OptionSpec<K> {
  return spec;
}

export interface LoadOptionsInput {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Positional arguments (anything that is not a flag) are returned here. */
  allowPositionals?: boolean;
}

export interface LoadedOptions<S extends OptionSchema> {
  values: OptionValues<S>;
  positionals: string[];
  /** Where each option's value came from, for a start-up log line. */
  sources: Record<string, "flag" | "env" | "file" | "default">;
  help: boolean;
}

export function toCamelCase(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function envName(flag: string): string {
  return `GOULETTE_${flag.replace(/-/g, "_").toUpperCase()}`;
}

export function loadOptions<S extends OptionSchema>(schema: S, input: LoadOptionsInput): LoadedOptions<S> {
  const env = input.env ?? process.env;
  const { flags, positionals, help } = parseArgv(schema, input.argv);
  if (positionals.length > 0 && !input.allowPositionals) {
    throw new InvalidArgumentError(`unexpected argument '${positionals[0]}' (see --help)`);
  }
  const configPath = flags.get("config") ?? env.GOULETTE_CONFIG;
  const file = configPath ? readConfigFile(configPath) : {};

  const values: Record<string, unknown> = {};
  const sources: Record<string, "flag" | "env" | "file" | "default"> = {};
  for (const [name, spec] of Object.entries(schema)) {
    const camel = toCamelCase(name);
    let raw: unknown;
    let source: "flag" | "env" | "file" | "default" = "default";
    if (flags.has(name)) {
      raw = flags.get(name);
      source = "flag";
    } else if (env[envName(name)] !== undefined) {
      raw = env[envName(name)];
      source = "env";
    } else if ((file[name] ?? file[camel]) !== undefined && (file[name] ?? file[camel]) !== null) {
      // An empty YAML value (`key:`) means "not set", not the string "null".
      raw = file[name] ?? file[camel];
      source = "file";
    }
    values[camel] = source === "default" ? spec.default : coerce(name, spec, raw, source);
    sources[camel] = source;
  }
  return { values: values as OptionValues<S>, positionals, sources, help };
}

function parseArgv(schema: OptionSchema, argv: readonly string[]) {
  const flags = new Map<string, string | boolean>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    const eq = arg.indexOf("=");
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let negated = false;
    const negatable = name.startsWith("no-") && Object.hasOwn(schema, name.slice(3));
    if (!Object.hasOwn(schema, name) && negatable && schema[name.slice(3)]?.kind === "boolean") {
      name = name.slice(3);
      negated = true;
      if (eq !== -1) throw new InvalidArgumentError(`--no-${name} takes no value`);
    }
    const spec = Object.hasOwn(schema, name) ? schema[name] : undefined;
    if (name === "config") {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new InvalidArgumentError("--config needs a file path");
      flags.set("config", value);
      continue;
    }
    if (!spec) throw new InvalidArgumentError(`unknown flag --${name} (see --help)`);
    if (spec.kind === "boolean") {
      flags.set(name, negated ? false : eq === -1 ? true : arg.slice(eq + 1));
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new InvalidArgumentError(`--${name} needs a value`);
    flags.set(name, value);
  }
  return {
    flags: flags as Map<string, string | boolean> & { get(k: "config"): string | undefined },
    positionals,
    help,
  };
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new InvalidArgumentError(`cannot read config file ${path}: ${errorMessage(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new InvalidArgumentError(`config file ${path} is not valid YAML: ${errorMessage(err)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`config file ${path} must be a YAML mapping of option names to values`);
  }
  return parsed as Record<string, unknown>;
}

function coerce(name: string, spec: OptionSpec, raw: unknown, source: string): unknown {
  const where =
    source === "flag" ? `--${name}` : source === "env" ? envName(name) : `'${name}' in the config file`;
  switch (spec.kind) {
    case "string": {
      if (typeof raw !== "string" && typeof raw !== "number")
        throw new InvalidArgumentError(`${where} must be a string`);
      const value = String(raw);
      if (spec.choices && !spec.choices.includes(value)) {
        throw new InvalidArgumentError(`${where} must be one of ${spec.choices.join(", ")}, got '${value}'`);
      }
      return value;
    }
    case "number": {
      const value = typeof raw === "number" ? raw : Number(String(raw).trim());
      if (String(raw).trim() === "" || !Number.isFinite(value)) {
        throw new InvalidArgumentError(`${where} must be a number, got '${String(raw)}'`);
      }
      if (spec.integer && !Number.isInteger(value)) {
        throw new InvalidArgumentError(`${where} must be a whole number, got '${String(raw)}'`);
      }
      if (spec.min !== undefined && value < spec.min) {
        throw new InvalidArgumentError(`${where} must be ≥ ${spec.min}, got ${value}`);
      }
      if (spec.max !== undefined && value > spec.max) {
        throw new InvalidArgumentError(`${where} must be ≤ ${spec.max}, got ${value}`);
      }
      return value;
    }
    case "boolean": {
      if (typeof raw === "boolean") return raw;
      const text = String(raw).trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(text)) return true;
      if (["false", "0", "no", "off", ""].includes(text)) return false;
      throw new InvalidArgumentError(`${where} must be true or false, got '${String(raw)}'`);
    }
    case "list": {
      if (Array.isArray(raw)) return raw.map((item) => String(item).trim()).filter((item) => item !== "");
      return String(raw)
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");
    }
  }
}

/** --help text: one line per option with its env var and default. */
export function formatHelp(usage: string, schema: OptionSchema): string {
  const lines = [usage, "", "Options (flag / environment variable / default):"];
  for (const [name, spec] of Object.entries(schema)) {
    const def = Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default);
    lines.push(`  --${name}${spec.kind === "boolean" ? "" : " <" + spec.kind + ">"}`);
    lines.push(`      ${spec.description}`);
    lines.push(`      env ${envName(name)}, default: ${def === "" ? '""' : def}`);
  }
  lines.push("  --config <file>", "      YAML file with any of the options above (env GOULETTE_CONFIG)");
  return lines.join("\n");
}
