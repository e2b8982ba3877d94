import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";

import { CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES } from "../../src/client/http2-window.js";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { TransportPool } from "../../src/server/transport-pool.js";
import { waitFor } from "../helpers/wait.js";

/**
 * What a plain HTTP/2 server on loopback sees of a pool's first request (`observe` reads it off the
 * stream); the request is then answered Unimplemented.
 */
async function firstRequestSeenBy<T>(
  pool: TransportPool,
  observe: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => Promise<T>,
): Promise<T> {
  const server = http2.createServer();
  const seen = new Promise<T>((resolve) => {
    server.on("stream", (stream, headers) => {
      void observe(stream, headers).then((value) => {
        resolve(value);
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "12" }));
        stream.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const client = createClient(BrokerService, pool.get(`127.0.0.1:${port}`));
    await client.health({}).catch(() => undefined); // Unimplemented: only the request matters
    return await seen;
  } finally {
    pool.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The receive windows a pool's client advertises: the stream window from its SETTINGS (they precede any
 * stream), the connection window once `settled` holds for it (raised by a WINDOW_UPDATE that may land
 * after the stream opens).
 */
function windowsSeenBy(
  pool: TransportPool,
  settled: (connectionWindow: number) => boolean = () => true,
): Promise<{ stream: number; connection: number }> {
  return firstRequestSeenBy(pool, async (stream) => {
    const session = stream.session as http2.ServerHttp2Session;
    const connection = await waitFor(
      () => {
        const size = session.state.remoteWindowSize ?? 0;
        return settled(size) ? size : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 5, what: "the client's connection window" },
    );
    return { stream: session.remoteSettings.initialWindowSize ?? 65_535, connection };
  });
}

/** The grpc-accept-encoding header of a pool's request. */
function acceptEncodingSeenBy(pool: TransportPool): Promise<string | undefined> {
  return firstRequestSeenBy(pool, (_stream, headers) =>
    Promise.resolve(headers["grpc-accept-encoding"] as string | undefined),
  );
}

describe("TransportPool", () => {
  it("accepts no compressed answers: traffic between the cluster's nodes is not gzipped", async () => {
    const accepted = await acceptEncodingSeenBy(new TransportPool({ wideWindows: true }));
    assert.ok(!/gzip|br/.test(accepted ?? ""), `grpc-accept-encoding: ${accepted}`);
  });

  it("receives with wide HTTP/2 windows when asked (replication answers are up to 1 MiB)", async () => {
    // Fails by timing out when the connection window never reaches the wide size.
    const seen = await windowsSeenBy(
      new TransportPool({ wideWindows: true }),
      (window) => window >= CONNECTION_WINDOW_BYTES - 65_535,
    );
    assert.equal(seen.stream, STREAM_WINDOW_BYTES);
  });

  it("keeps HTTP/2's default windows otherwise", async () => {
    const seen = await windowsSeenBy(new TransportPool());
    assert.equal(seen.stream, 65_535);
  });
});
