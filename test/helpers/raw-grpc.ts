import http2 from "node:http2";

/** One gRPC envelope: the flags byte, the big-endian length, the bytes (any flags, for bad requests). */
export function grpcEnvelope(data: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

export interface RawGrpcAnswer {
  http: number;
  status: string;
  message: string;
}

/**
 * One raw gRPC call over its own HTTP/2 connection, with exactly the bytes given as its body: the HTTP
 * status, grpc-status and grpc-message (from the trailers, or the headers of a trailers-only answer).
 * Response messages are read and dropped.
 */
export async function rawGrpc(
  url: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<RawGrpcAnswer> {
  const session = http2.connect(url);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      let head: http2.IncomingHttpHeaders = {};
      const answer = (h: http2.IncomingHttpHeaders): RawGrpcAnswer => ({
        http: Number(h[":status"]),
        status: String(h["grpc-status"]),
        message: decodeURIComponent(String(h["grpc-message"] ?? "")),
      });
      req.on("response", (h) => (head = h));
      req.on("trailers", (t) => resolve(answer({ ...head, ...t })));
      req.on("error", reject);
      req.on("close", () => {
        if (head["grpc-status"] !== undefined) resolve(answer(head));
        reject(new Error("stream closed without a grpc-status"));
      });
      req.resume();
      req.end(body);
    });
  } finally {
    session.close();
  }
}
