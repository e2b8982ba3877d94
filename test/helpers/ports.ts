import net from "node:net";

/**
 * Ports are drawn below Linux's ephemeral range (32768–60999): a port the OS picked for us there may be
 * taken by any outgoing connection (etcd clients, HTTP/2 sessions of specs running alongside) between
 * the probe and the listen that needs it, which made specs fail with EADDRINUSE.
 */
const LOW = 20_000;
const HIGH = 32_767;
/** Handed out by this process already: never twice, even once the first user closed it. */
const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago, and that this process never handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (handedOut.has(port)) continue;
    if (await listenable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port on 127.0.0.1 between ${LOW} and ${HIGH} after 200 tries`);
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
