import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isBrokenCircuitError } from "cockatiel";
import { isRecoverableError } from "etcd3";
import { UnavailableError, errorMessage, toConnectError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { RpcMetrics } from "../observability/metrics.js";

/**
 * Translates every error leaving a handler into a ConnectError, once, at the boundary: thrown by a
 * unary handler, or by a streaming one before or while its responses are read.
 */
export function errorTranslation(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const translate = (err: unknown): ConnectError => {
      const connectError = toConnectError(etcdUnavailable(err) ?? err);
      if (connectError.code === Code.Internal) {
        logger.error({ err, method: req.method.name }, "internal error in RPC handler");
      }
      return connectError;
    };
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: translateErrors(res.message, translate) } : res;
    } catch (err) {
      throw translate(err);
    }
  };
}

async function* translateErrors<T>(
  stream: AsyncIterable<T>,
  translate: (err: unknown) => ConnectError,
): AsyncIterable<T> {
  try {
    yield* stream;
  } catch (err) {
    throw translate(err);
  }
}

/**
 * An etcd call that failed for want of etcd (unreachable, too slow, or refused by the client's circuit
 * breaker after such failures) is Unavailable, which clients retry, not an internal error.
 */
function etcdUnavailable(err: unknown): UnavailableError | undefined {
  if (!(err instanceof Error) || err instanceof ConnectError) return undefined;
  if (!isBrokenCircuitError(err) && !isRecoverableError(err)) return undefined;
  return new UnavailableError(`etcd is unavailable or overloaded, retry: ${errorMessage(err)}`, {
    cause: err,
  });
}

type RpcLabels = Record<"service" | "method" | "code", string>;

/** Counts and times every unary RPC (streams are counted when they are opened). */
export function rpcMetrics(metrics: RpcMetrics): Interceptor {
  // One label object per (service, method, code), made once: this runs on every request, and
  // building label objects per call showed in the GetBrokers profile (docs/benchmarks.md).
  const labelCache = new Map<string, RpcLabels>();
  const labelsOf = (service: string, method: string, code: string): RpcLabels => {
    const key = `${service}/${method}/${code}`;
    let labels = labelCache.get(key);
    if (!labels) {
      labels = { service, method, code };
      labelCache.set(key, labels);
    }
    return labels;
  };
  return (next) => async (req) => {
    const started = performance.now();
    let code = "ok";
    try {
      return await next(req);
    } catch (err) {
      // Errors reach here before errorTranslation (outside this one) has turned them into ConnectErrors:
      // a handler's NotFoundError is NotFound, not Unknown.
      code = Code[toConnectError(err).code] ?? "unknown";
      throw err;
    } finally {
      const labels = labelsOf(req.service.name, req.method.name, code);
      metrics.requests.inc(labels);
      metrics.duration.observe(labels, (performance.now() - started) / 1000);
    }
  };
}
