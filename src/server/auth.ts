import { createHash, timingSafeEqual } from "node:crypto";
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { InvalidArgumentError, UnauthenticatedError } from "../errors.js";

export interface TokenAuthOptions {
  /** The bearer token; requests to protected methods must send `authorization: Bearer <token>`. */
  token: string;
  /** Method names that always need the token (e.g. writes and admin RPCs). */
  protectedMethods: ReadonlySet<string>;
  /**
   * For the other methods: whether this particular request needs the token (e.g. GetBrokers only when it
   * would create a topic). Returns a short reason for the error message, or undefined when it does not.
   */
  requires?: (req: UnaryRequest | StreamRequest) => string | undefined;
  /** What the token is called in error messages (default "the auth token"). */
  name?: string;
}

/** Servers present their token on outgoing calls with the same header the SDK sends. */
export { bearerHeaders } from "../common/bearer.js";

/**
 * Bearer-token check. The comparison is constant-time and independent of the token's length (both sides
 * are hashed first), so neither the token nor its length leaks through response timing.
 */
export function tokenAuth(options: TokenAuthOptions): Interceptor {
  if (options.token === "") throw new InvalidArgumentError("the auth token is empty");
  const expected = digest(options.token);
  const name = options.name ?? "the auth token";
  return (next) => async (req) => {
    const reason = options.protectedMethods.has(req.method.name)
      ? `${req.method.name} needs ${name}`
      : options.requires?.(req);
    if (reason !== undefined) checkBearer(req.header.get("authorization"), expected, reason, name);
    return next(req);
  };
}

function checkBearer(header: string | null, expected: Buffer, reason: string, name: string): void {
  if (header === null) {
    throw new UnauthenticatedError(`${reason}: send the header 'authorization: Bearer <token>'`);
  }
  const match = /^Bearer +(.+)$/i.exec(header.trim());
  if (!match || !timingSafeEqual(digest(match[1] as string), expected)) {
    throw new UnauthenticatedError(`${reason}; the bearer token sent is not ${name}`);
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
