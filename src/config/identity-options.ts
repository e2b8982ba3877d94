import { InvalidArgumentError } from "../errors.js";
import { loadTokens, readTokenFile, type IdentityOptions } from "../server/identity.js";
import { option, type OptionValues } from "./options.js";

/**
 * Identities, shared by `goulette sentinel` and `goulette broker` (spread into their schemas). Secrets
 * come from files or the environment: `--tokens-file`/`--token-file` name files, and `token` is meant
 * for GOULETTE_TOKEN (a command line shows in `ps`).
 */
export const identityOptions = {
  "tokens-file": option({
    kind: "string",
    description:
      "Credentials this node accepts: a file of '<principal> <token>' lines, or a directory of files " +
      "named '<kind>.<name>' holding the token (principals: sentinel, broker:<id>, admin[:name], app:<name>)",
    default: "",
  }),
  "token-file": option({
    kind: "string",
    description: "File holding the token this node presents on its own calls (its own credential)",
    default: "",
  }),
  token: option({
    kind: "string",
    description:
      "The token this node presents on its own calls; set it through GOULETTE_TOKEN, not the command line",
    default: "",
  }),
  "allow-anonymous": option({
    kind: "boolean",
    description:
      "Trust callers that present no credential with everything (development clusters only; goulette dev sets it)",
    default: false,
  }),
};

export type IdentityOptionValues = OptionValues<typeof identityOptions>;

export interface ResolvedIdentity {
  identity: Pick<IdentityOptions, "tokens" | "allowAnonymous">;
  /** This node's own credential, when it has one of its own. */
  token?: string;
}

/**
 * The credential `--token-file` or `--token` (GOULETTE_TOKEN) names, if any: the node's own on servers,
 * the caller's on the CLI clients. Both at once is refused.
 */
export function ownToken(o: { tokenFile: string; token: string }): string | undefined {
  if (o.tokenFile && o.token) {
    throw new InvalidArgumentError("--token-file and --token (GOULETTE_TOKEN) both name the token: keep one");
  }
  return o.tokenFile ? readTokenFile(o.tokenFile) : o.token || undefined;
}

/**
 * The identity configuration these options ask for. A node that could authenticate nobody (no tokens
 * table, no legacy shared token, no mutual TLS) must be told so with --allow-anonymous: it never runs
 * open by omission.
 */
export function identityFromOptions(
  o: IdentityOptionValues,
  legacy: { sharedToken: string; sharedFlag: string; mutualTls: boolean },
): ResolvedIdentity {
  const tokens = o.tokensFile ? loadTokens(o.tokensFile) : undefined;
  const token = ownToken(o);
  if (!o.allowAnonymous && !tokens && !legacy.sharedToken && !legacy.mutualTls) {
    throw new InvalidArgumentError(
      `no credentials configured: give --tokens-file (per-component tokens), ${legacy.sharedFlag} (one shared ` +
        "token), or --tls-ca (mutual TLS); or --allow-anonymous to let anyone do anything (development only)",
    );
  }
  if (tokens && !token && !legacy.sharedToken && !legacy.mutualTls) {
    throw new InvalidArgumentError(
      "--tokens-file is set but this node has no credential of its own (--token-file, or GOULETTE_TOKEN): " +
        "the other nodes would refuse its calls",
    );
  }
  return {
    identity: { ...(tokens ? { tokens } : {}), allowAnonymous: o.allowAnonymous },
    ...(token ? { token } : {}),
  };
}
