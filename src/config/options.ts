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
  /** One-letter form (`-k value`, `-kvalue`), for flags that kcat users type short. */
  short?: string;
  /**
   * Former names, still read (flag, environment variable, config key) with a deprecation notice on
   * stderr; --help names them.
   */
  aliases?: readonly string[];
  /**
   * Lists: split each value on commas (default true). Off for values that may hold commas (headers);
   * the flag is then given once per value.
   */
  split?: boolean;
  /**
   * Lists: a repeated flag adds its values to the earlier ones (`--topic a --topic b`). Off by default:
   * like every other flag, a list given twice keeps the last value, so a wrapper can override a
   * default by appending the flag again.
   */
  repeatable?: boolean;
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
  /** Where deprecation notices go (default: a line on stderr). */
  warn?: (message: string) => void;
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

/** A flag's canonical name for each name it may be given by (its own and its aliases). */
function nameIndex(schema: OptionSchema): { long: Map<string, string>; short: Map<string, string> } {
  const long = new Map<string, string>();
  const short = new Map<string, string>();
  for (const [name, spec] of Object.entries(schema)) {
    long.set(name, name);
    for (const alias of spec.aliases ?? []) long.set(alias, name);
    if (spec.short) short.set(spec.short, name);
  }
  return { long, short };
}

export function loadOptions<S extends OptionSchema>(schema: S, input: LoadOptionsInput): LoadedOptions<S> {
  const env = input.env ?? process.env;
  const warn = input.warn ?? ((message: string) => process.stderr.write(`goulette: ${message}\n`));
  const { flags, positionals, help, used } = parseArgv(schema, input.argv);
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
    const aliases = spec.aliases ?? [];
    const envAlias = aliases.find((alias) => env[envName(alias)] !== undefined);
    const fileKey = [name, camel, ...aliases.flatMap((a) => [a, toCamelCase(a)])].find(
      // An empty YAML value (`key:`) means "not set", not the string "null".
      (key) => file[key] !== undefined && file[key] !== null,
    );
    if (flags.has(name)) {
      raw = flags.get(name);
      source = "flag";
      const alias = used.get(name);
      if (alias !== undefined) warn(`--${alias} is deprecated; use --${name}`);
    } else if (env[envName(name)] !== undefined) {
      raw = env[envName(name)];
      source = "env";
    } else if (envAlias !== undefined) {
      raw = env[envName(envAlias)];
      source = "env";
      warn(`${envName(envAlias)} is deprecated; use ${envName(name)}`);
    } else if (fileKey !== undefined) {
      raw = file[fileKey];
      source = "file";
      if (fileKey !== name && fileKey !== camel)
        warn(`'${fileKey}' in the config file is deprecated; use '${name}'`);
    }
    values[camel] = source === "default" ? spec.default : coerce(name, spec, raw, source);
    sources[camel] = source;
  }
  return { values: values as OptionValues<S>, positionals, sources, help };
}

function parseArgv(schema: OptionSchema, argv: readonly string[]) {
  const index = nameIndex(schema);
  const flags = new Map<string, string | boolean | string[]>();
  /** The deprecated alias a flag was given by, if any. */
  const used = new Map<string, string>();
  const positionals: string[] = [];
  let help = false;
  const set = (name: string, value: string | boolean) => {
    const spec = schema[name] as OptionSpec;
    const previous = flags.get(name);
    // A repeatable list flag adds up (`--topic a --topic b`); any other flag keeps its last value.
    if (spec.kind === "list" && typeof value === "string") {
      const earlier = spec.repeatable && Array.isArray(previous) ? previous : [];
      flags.set(name, [...earlier, ...splitList(spec, value)]);
    } else flags.set(name, value);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("-") && !arg.startsWith("--") && arg.length > 1) {
      // -k value, -kvalue; an unknown letter is an error rather than a message.
      const letter = arg[1] as string;
      const name = index.short.get(letter);
      if (name === undefined) throw new InvalidArgumentError(`unknown flag -${letter} (see --help)`);
      const spec = schema[name] as OptionSpec;
      if (spec.kind === "boolean") {
        if (arg.length > 2) throw new InvalidArgumentError(`-${letter} takes no value (got '${arg}')`);
        set(name, true);
        continue;
      }
      const value = arg.length > 2 ? arg.slice(2) : argv[++i];
      if (value === undefined) throw new InvalidArgumentError(`-${letter} (--${name}) needs a value`);
      set(name, value);
      continue;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const given = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (given === "config") {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new InvalidArgumentError("--config needs a file path");
      flags.set("config", value);
      continue;
    }
    let name = index.long.get(given);
    let negated = false;
    if (name === undefined && given.startsWith("no-")) {
      const base = index.long.get(given.slice(3));
      if (base !== undefined && schema[base]?.kind === "boolean") {
        name = base;
        negated = true;
        if (eq !== -1) throw new InvalidArgumentError(`--${given} takes no value`);
      } else if (base !== undefined) {
        throw new InvalidArgumentError(`unknown flag --${given} (see --help)`);
      }
    }
    if (name === undefined) throw new InvalidArgumentError(`unknown flag --${given} (see --help)`);
    const spec = schema[name] as OptionSpec;
    const alias = negated ? given.slice(3) : given;
    if (alias !== name) used.set(name, alias);
    if (spec.kind === "boolean") {
      set(name, negated ? false : eq === -1 ? true : arg.slice(eq + 1));
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new InvalidArgumentError(`--${given} needs a value`);
    set(name, value);
  }
  return {
    flags: flags as Map<string, string | boolean | string[]> & { get(k: "config"): string | undefined },
    positionals,
    help,
    used,
  };
}

function splitList(spec: OptionSpec, text: string): string[] {
  const items = spec.split === false ? [text] : text.split(",");
  return items.map((item) => item.trim()).filter((item) => item !== "");
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
      return splitList(spec, String(raw));
    }
  }
}

/** --help text: one line per option with its env var and default. */
export function formatHelp(usage: string, schema: OptionSchema): string {
  const lines = [usage, "", "Options (flag / environment variable / default):"];
  for (const [name, spec] of Object.entries(schema)) {
    const def = Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default);
    const short = spec.short ? `-${spec.short}, ` : "";
    const repeat = spec.kind === "list" && spec.repeatable ? " (repeatable)" : "";
    lines.push(`  ${short}--${name}${spec.kind === "boolean" ? "" : " <" + spec.kind + ">"}${repeat}`);
    lines.push(`      ${spec.description}`);
    if (spec.aliases?.length) {
      lines.push(`      deprecated spelling: ${spec.aliases.map((a) => `--${a}`).join(", ")}`);
    }
    lines.push(`      env ${envName(name)}, default: ${def === "" ? '""' : def}`);
  }
  lines.push("  --config <file>", "      YAML file with any of the options above (env GOULETTE_CONFIG)");
  return lines.join("\n");
}
