import type { ConnectError } from "@connectrpc/connect";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import { OverloadedError, toConnectError } from "../errors.js";

/** How long a client refused for want of budget is told to wait before it retries (ms). */
export const INFLIGHT_RETRY_AFTER_MS = 200;

export interface InflightLimits {
  /** Request bytes (read, and decoded) held at once by the whole process. */
  processBytes: number;
  /** Request bytes held at once for the calls of one connection. */
  connectionBytes: number;
}

interface Account {
  used: number;
}

/**
 * The in-flight byte budget: what requests hold in memory (the bytes read of a body not yet answered,
 * then the estimated size of its decoded message) is charged as it is read, to the process and to
 * the connection the request came on, and released when the call is answered. A charge that would
 * take either over its limit is refused with ResourceExhausted and a retry hint, before the bytes are
 * kept: however many connections send however large requests, what the server holds for them stays
 * within processBytes. Pure bookkeeping; the request guard does the charging.
 */
export class InflightBudget {
  readonly #process: Account = { used: 0 };
  readonly #connections = new WeakMap<object, Account>();

  constructor(readonly limits: InflightLimits) {}

  /** Bytes held by the whole process now. */
  get used(): number {
    return this.#process.used;
  }

  /** A ledger for one call arriving on `connection` (any object that identifies it). */
  ledger(connection: object): RequestLedger {
    let account = this.#connections.get(connection);
    if (!account) {
      account = { used: 0 };
      this.#connections.set(connection, account);
    }
    return new RequestLedger(this.limits, this.#process, account);
  }
}

/** What one call holds; charge() as bytes are kept, release() as they are let go, close() at the end. */
export class RequestLedger {
  #held = 0;
  #closed = false;

  constructor(
    private readonly limits: InflightLimits,
    private readonly process: Account,
    private readonly connection: Account,
  ) {}

  get held(): number {
    return this.#held;
  }

  /** Charges `bytes`; throws ResourceExhausted (ConnectError, with a retry hint) when over a limit. */
  charge(bytes: number): void {
    if (bytes <= 0 || this.#closed) return;
    if (this.connection.used + bytes > this.limits.connectionBytes) {
      throw overBudget(
        `this connection has ${mib(this.connection.used)} of requests in flight; ` +
          `${mib(bytes)} more would pass its budget of ${mib(this.limits.connectionBytes)} ` +
          "(--rpc-max-connection-inflight-bytes): wait for answers, or spread requests over connections",
      );
    }
    if (this.process.used + bytes > this.limits.processBytes) {
      throw overBudget(
        `the server has ${mib(this.process.used)} of requests in flight; ${mib(bytes)} more would pass ` +
          `its budget of ${mib(this.limits.processBytes)} (--rpc-max-inflight-bytes)`,
      );
    }
    this.process.used += bytes;
    this.connection.used += bytes;
    this.#held += bytes;
  }

  release(bytes: number): void {
    const n = Math.min(bytes, this.#held);
    if (n <= 0) return;
    this.process.used -= n;
    this.connection.used -= n;
    this.#held -= n;
  }

  /** The call is over: everything it held is released, and later charges are ignored. */
  close(): void {
    this.release(this.#held);
    this.#closed = true;
  }
}

function overBudget(reason: string): ConnectError {
  return toConnectError(
    new OverloadedError(`${reason}; retry after ${INFLIGHT_RETRY_AFTER_MS} ms`, INFLIGHT_RETRY_AFTER_MS),
  );
}

function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : `${bytes} bytes`;
}

const ledgerKey = createContextKey<RequestLedger | undefined>(undefined, {
  description: "the in-flight bytes one call holds",
});

/** Records the call's ledger in its context values (done by the RPC server per request). */
export function setRequestLedger(values: ContextValues, ledger: RequestLedger): void {
  values.set(ledgerKey, ledger);
}

export function requestLedger(values: ContextValues | undefined): RequestLedger | undefined {
  return values?.get(ledgerKey);
}
