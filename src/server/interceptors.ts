import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { toConnectError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { RpcMetrics } from "../observability/metrics.js";

/** Translates every error leaving a handler into a ConnectError, once, at the boundary. */
export function errorTranslation(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const connectError = toConnectError(err);
      if (connectError.code === Code.Internal) {
        logger.error({ err, method: req.method.name }, "internal error in RPC handler");
      }
      throw connectError;
    }
  };
}

/** Counts and times every unary RPC (streams are counted when they are opened). */
export function rpcMetrics(metrics: RpcMetrics): Interceptor {
  return (next) => async (req) => {
    const labels = { service: req.service.name, method: req.method.name };
    const started = process.hrtime.bigint();
    let code = "ok";
    try {
      return await next(req);
    } catch (err) {
      code = Code[ConnectError.from(err).code] ?? "unknown";
      throw err;
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ ...labels, code });
      metrics.duration.observe({ ...labels, code }, seconds);
    }
  };
}
