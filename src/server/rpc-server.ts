import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { readFileSync } from "node:fs";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "../observability/logger.js";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  caFile?: string;
}

export interface RpcServerOptions {
  /** host:port to listen on; port 0 picks a free one. */
  address: string;
  routes: (router: ConnectRouter) => void;
  interceptors?: Interceptor[];
  /** Plain HTTP handler for everything that is not an RPC (/healthz, /readyz, /metrics). */
  fallback: (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => void;
  /** Largest request message accepted, in bytes. */
  readMaxBytes?: number;
  tls?: TlsFiles;
  logger: Logger;
}

export interface RpcServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");

/**
 * One port for every client: gRPC over HTTP/2 (cleartext h2c, or TLS with ALPN), and Connect and
 * gRPC-web over HTTP/1.1 (browsers, curl). In cleartext the first bytes of each connection decide:
 * the HTTP/2 preface goes to the HTTP/2 server, anything else to the HTTP/1.1 server.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const handler = connectNodeAdapter({
    routes: options.routes,
    interceptors: options.interceptors ?? [],
    fallback: options.fallback as never,
    readMaxBytes: options.readMaxBytes ?? 4 * 1024 * 1024,
  });
  const [host, portText] = splitHostPort(options.address);
  const sockets = new Set<net.Socket>();
  let outer: net.Server;
  const h2Sessions = new Set<http2.ServerHttp2Session>();

  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        allowHTTP1: true,
        ...(options.tls.caFile
          ? { ca: readFileSync(options.tls.caFile), requestCert: true, rejectUnauthorized: true }
          : {}),
      },
      handler,
    );
    secure.on("session", (s) => {
      h2Sessions.add(s);
      s.on("close", () => h2Sessions.delete(s));
    });
    outer = secure;
  } else {
    const h2 = http2.createServer({}, handler);
    h2.on("session", (s) => {
      h2Sessions.add(s);
      s.on("close", () => h2Sessions.delete(s));
    });
    const h1 = http.createServer(handler);
    h1.keepAliveTimeout = 65_000;
    h1.headersTimeout = 10_000; // slow clients cannot hold a socket forever before sending headers
    h1.requestTimeout = 0; // long-poll and streaming RPCs may legitimately run long
    outer = net.createServer((socket) => {
      socket.once("readable", () => {
        const head = socket.read(HTTP2_PREFACE.length) as Buffer | null;
        if (head === null) {
          // Fewer bytes than the preface so far: an HTTP/1.1 request line is never that short.
          const rest = socket.read() as Buffer | null;
          if (rest) socket.unshift(rest);
          h1.emit("connection", socket);
          return;
        }
        socket.unshift(head);
        if (head.equals(HTTP2_PREFACE)) h2.emit("connection", socket);
        else h1.emit("connection", socket);
      });
    });
  }
  outer.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    outer.once("error", reject);
    outer.listen(Number(portText), host, () => {
      outer.off("error", reject);
      resolve();
    });
  });
  const bound = outer.address() as net.AddressInfo;
  options.logger.info(
    { address: `${host}:${bound.port}`, tls: Boolean(options.tls) },
    "serving gRPC (HTTP/2), Connect and gRPC-web (HTTP/1.1) on one port",
  );
  return {
    port: bound.port,
    host,
    async close() {
      await new Promise<void>((resolve) => {
        outer.close(() => resolve());
        for (const session of h2Sessions) session.close();
        // Give in-flight requests a moment, then cut what is left (long polls, idle keep-alives).
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 500).unref();
      });
    },
  };
}

export function splitHostPort(address: string): [string, string] {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!match) throw new Error(`listen address '${address}' is not host:port`);
  return [match[1] ?? (match[2] || "0.0.0.0"), match[3] as string];
}
