import http2 from "node:http2";
import type net from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

/** An in-process Connect server (HTTP/2 without TLS) on a free loopback port, for fakes in tests. */
export interface ConnectTestServer {
  url: string;
  /** host:port, as brokers are addressed. */
  address: string;
  /** Closes the server, its open sessions first. */
  close(): Promise<void>;
}

export async function serveConnect(routes: (router: ConnectRouter) => void): Promise<ConnectTestServer> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
