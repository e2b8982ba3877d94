import type { Interceptor } from "@connectrpc/connect";

/**
 * Which server path served each call, in order: "fast" when the gRPC fast path (its frames are on the
 * stack only when it served the call) ran the handler, else "connect". Install `interceptor` on the
 * server; read `servedBy`.
 */
export function servedByRecorder(): { servedBy: string[]; interceptor: Interceptor } {
  const servedBy: string[] = [];
  const interceptor: Interceptor = (next) => (req) => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 50;
    const stack = new Error().stack ?? "";
    Error.stackTraceLimit = limit;
    servedBy.push(stack.includes("/src/server/grpc-fast-path.js") ? "fast" : "connect");
    return next(req);
  };
  return { servedBy, interceptor };
}
