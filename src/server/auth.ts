import { timingSafeEqual } from "node:crypto";
import type { Interceptor } from "@connectrpc/connect";
import { UnauthenticatedError } from "../errors.js";

export interface TokenAuthOptions {
  /** The bearer token; requests to protected methods must send `authorization: Bearer <token>`. */
  token: string;
  /** Method names that need the token (e.g. writes and admin RPCs). */
  protectedMethods: ReadonlySet<string>;
}

/** Bearer-token check for protected methods, constant-time. */
export function tokenAuth(options: TokenAuthOptions): Interceptor {
  const expected = Buffer.from(`Bearer ${options.token}`);
  return (next) => async (req) => {
    if (options.protectedMethods.has(req.method.name)) {
      const given = Buffer.from(req.header.get("authorization") ?? "");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new UnauthenticatedError(
          `${req.method.name} needs a valid admin token (authorization: Bearer …)`,
        );
      }
    }
    return next(req);
  };
}
