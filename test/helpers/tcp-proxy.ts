import net from "node:net";

/**
 * What the proxy does with traffic:
 * - `forward`: pass bytes both ways (optionally delayed, see `delayMs`);
 * - `drop`: reset every open connection and every new one (the peer sees ECONNRESET at once);
 * - `blackhole`: accept connections but never pass a byte either way (the peer sees timeouts, like a
 *   partition that loses packets). Leaving `blackhole` resets the connections it swallowed bytes of,
 *   since their streams are corrupt; clients reconnect, as they would after a real partition.
 */
export type ProxyMode = "forward" | "drop" | "blackhole";

export interface TcpProxyOptions {
  /** host:port to forward to. */
  target: string;
  /** Listen port on 127.0.0.1; a free one when omitted. */
  port?: number;
}

export interface TcpProxy {
  /** 127.0.0.1:port the proxy listens on. */
  readonly address: string;
  readonly port: number;
  readonly mode: ProxyMode;
  setMode(mode: ProxyMode): void;
  /**
   * The mode of connections from one source address (e.g. "127.0.0.12": a broker whose outgoing
   * connections leave from its own loopback address), over the proxy's mode; `undefined` clears it.
   * This cuts one peer off while every other client still gets through.
   */
  setSourceMode(source: string, mode: ProxyMode | undefined): void;
  /** Extra latency of every chunk in each direction while forwarding (0 = none). */
  setDelay(ms: number): void;
  /** Open client connections. */
  readonly connections: number;
  /** Client connections forwarded since the proxy started (open or closed; not those dropped). */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pair {
  /** The client's address ("127.0.0.12"). */
  source: string;
  client: net.Socket;
  upstream: net.Socket;
  /** Bytes were swallowed by a blackhole: the streams are corrupt once forwarding resumes. */
  tainted: boolean;
}

/** A TCP proxy on loopback for partition tests, in the spirit of etcd3's test proxy. */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const [host, portText] = splitHostPort(options.target);
  const targetPort = Number(portText);
  let mode: ProxyMode = "forward";
  let delayMs = 0;
  let accepted = 0;
  const pairs = new Set<Pair>();
  const sourceModes = new Map<string, ProxyMode>();
  const modeOf = (source: string): ProxyMode => sourceModes.get(source) ?? mode;

  const pipe = (pair: Pair, from: net.Socket, to: net.Socket) => {
    // Chunks leave in arrival order even with a delay: one timer chain per direction.
    let tail = Promise.resolve();
    from.on("data", (chunk: Buffer) => {
      const now = modeOf(pair.source);
      if (now === "blackhole") {
        pair.tainted = true;
        return;
      }
      if (now === "drop") return;
      if (delayMs === 0) {
        to.write(chunk);
        return;
      }
      const wait = delayMs;
      tail = tail.then(
        () =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              if (!to.destroyed) to.write(chunk);
              resolve();
            }, wait),
          ),
      );
    });
  };

  const destroy = (pair: Pair, reset = false) => {
    if (!pairs.delete(pair)) return;
    // resetAndDestroy on a socket that is already closed would throw; only reset live ones.
    if (reset && !pair.client.destroyed && !pair.client.connecting) pair.client.resetAndDestroy();
    pair.client.destroy();
    // Destroying a socket while its connect is in flight can leave a live handle behind (seen on Node
    // 20: the process never exits); let the connect finish first.
    if (pair.upstream.connecting) pair.upstream.once("connect", () => pair.upstream.destroy());
    else pair.upstream.destroy();
  };

  const server = net.createServer((client) => {
    const source = (client.remoteAddress ?? "").replace(/^::ffff:/, "");
    if (modeOf(source) === "drop") {
      client.resetAndDestroy();
      return;
    }
    accepted++;
    const upstream = net.connect({ host, port: targetPort });
    const pair: Pair = { source, client, upstream, tainted: false };
    pairs.add(pair);
    pipe(pair, client, upstream);
    pipe(pair, upstream, client);
    const end = () => destroy(pair);
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    address: `127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    setMode(next) {
      const previous = mode;
      mode = next;
      if (next === "drop") {
        for (const pair of [...pairs]) destroy(pair, true);
      }
      if (previous === "blackhole" && next === "forward") {
        for (const pair of [...pairs]) if (pair.tainted) destroy(pair);
      }
    },
    setSourceMode(source, next) {
      if (next === undefined) sourceModes.delete(source);
      else sourceModes.set(source, next);
      const now = modeOf(source);
      for (const pair of [...pairs]) {
        if (pair.source !== source) continue;
        if (now === "drop") destroy(pair, true);
        else if (now === "forward" && pair.tainted) destroy(pair);
      }
    },
    setDelay(ms) {
      delayMs = ms;
    },
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    async close() {
      for (const pair of [...pairs]) destroy(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function splitHostPort(address: string): [string, string] {
  const at = address.lastIndexOf(":");
  if (at < 0) throw new Error(`expected host:port, got '${address}'`);
  return [address.slice(0, at), address.slice(at + 1)];
}
