import assert from "node:assert/strict";
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetBrokersRequestSchema, SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startRpcServer, type RpcServerLimits } from "../../src/server/rpc-server.js";
import { generateCerts } from "../helpers/certs.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
const GET_STATUS = "/goulette.v1.SentinelService/GetClusterStatus";

/** Request size, stream, connection and slow-client bounds of the RPC server (here: a sentinel's). */
describe("RPC server limits", () => {
  let etcd: TestEtcd;
  const started: InProcessSentinel[] = [];
  let prefixes = 0;

  /** A sentinel with its own key prefix (so each is its own leader) and the given limits. */
  const sentinel = async (limits?: RpcServerLimits) => {
    const s = await startInProcessSentinel(etcd, `limits-${prefixes}`, {
      etcdPrefix: `/limits-${prefixes++}`,
      ...(limits ? { rpcLimits: limits } : {}),
    });
    started.push(s);
    await waitFor(() => s.sentinel.plane.isLeader, { what: "leadership" });
    return s;
  };

  /** A valid call over each protocol answers within a second. */
  const assertServes = async (s: InProcessSentinel, what: string) => {
    const grpc = createClient(SentinelService, createGrpcTransport({ baseUrl: s.sentinel.url }));
    const connect = createClient(
      SentinelService,
      createConnectTransport({ baseUrl: s.sentinel.url, httpVersion: "1.1" }),
    );
    for (const [name, client] of [
      ["gRPC", grpc],
      ["Connect", connect],
    ] as const) {
      const t0 = Date.now();
      const status = await client.getClusterStatus({}, { timeoutMs: 2_000 });
      assert.equal(status.sentinelId, s.sentinel.id);
      assert.ok(Date.now() - t0 < 1_000, `${name} call took ${Date.now() - t0} ms ${what}`);
    }
  };

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await etcd.stop();
  });

  it("refuses a request over 4 MiB with ResourceExhausted on every protocol, changing nothing", async () => {
    const s = await sentinel();
    const headBefore = s.sentinel.plane.head;
    const topic = "t".repeat(4 * MiB + 100);
    const grpc = createClient(SentinelService, createGrpcTransport({ baseUrl: s.sentinel.url }));
    const err = await grpc.getBrokers({ topic, replicaCount: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(Code[err.code], "ResourceExhausted", err.rawMessage);
    assert.match(err.rawMessage, /larger than configured readMaxBytes 4194304/);

    for (const [type, body] of [
      ["application/json", JSON.stringify({ topic, replicaCount: 1 })],
      ["application/proto", toBinary(GetBrokersRequestSchema, create(GetBrokersRequestSchema, { topic }))],
    ] as const) {
      const res = await fetch(`${s.sentinel.url}/goulette.v1.SentinelService/GetBrokers`, {
        method: "POST",
        headers: { "content-type": type },
        body,
      });
      assert.equal(res.status, 429, `${type}: HTTP status`);
      const json = (await res.json()) as { code: string; message: string };
      assert.equal(json.code, "resource_exhausted", type);
    }
    assert.equal(s.sentinel.plane.head, headBefore, "no operation appended");
    await assertServes(s, "after oversized requests");
  });

  it("advertises 1000 concurrent streams per HTTP/2 connection by default", async () => {
    const s = await sentinel();
    const session = http2.connect(s.sentinel.url);
    try {
      const settings = await new Promise<http2.Settings>((resolve) =>
        session.once("remoteSettings", resolve),
      );
      assert.equal(settings.maxConcurrentStreams, 1000);
    } finally {
      session.close();
    }
  });

  it("cuts off a connection that opens more streams than advertised, serving other connections", async () => {
    const s = await sentinel({ maxConcurrentStreams: 3 });
    // A client that ignores the advertised limit: raw HTTP/2 frames, four requests whose bodies never end.
    const raw = await RawHttp2.connect(s.sentinel.port);
    try {
      await raw.handshake();
      const settings = raw.frames.find((f) => f.type === SETTINGS && !(f.flags & 0x1));
      assert.ok(settings && settingValue(settings.payload, MAX_CONCURRENT_STREAMS) === 3, "advertises 3");
      for (const id of [1, 3, 5]) raw.headers(id, GET_STATUS);
      await assertServes(s, "while one connection holds all its streams");
      assert.ok(!raw.closed, "three streams are within the limit");
      raw.headers(7, GET_STATUS);
      const goaway = await waitFor(() => raw.frames.find((f) => f.type === GOAWAY), {
        timeoutMs: 3_000,
        what: "GOAWAY after the fourth stream",
      });
      assert.equal(goaway.payload.readUInt32BE(0) & 0x7fffffff, 5, "the last stream accepted is the third");
      await waitFor(() => raw.closed, { what: "the connection to be closed" });
      await assertServes(s, "after cutting off the greedy connection");
    } finally {
      raw.destroy();
    }
  });

  it("closes slowloris connections after headersTimeout and keeps serving meanwhile", async () => {
    const s = await sentinel({ headersTimeoutMs: 1_000 });
    const request = `POST ${GET_STATUS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ${"z".repeat(40)}\r\n\r\n{}`;
    const t0 = Date.now();
    // 40 HTTP/1.1 clients sending headers a byte per 100 ms (10 s to finish), and 10 that dribble the
    // HTTP/2 preface: all must be cut off long before they finish.
    const slow = await Promise.all([
      ...Array.from({ length: 40 }, () => dribble(s.sentinel.port, request, 100)),
      ...Array.from({ length: 10 }, () => dribble(s.sentinel.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 150)),
    ]);
    try {
      for (let i = 0; i < 3; i++) await assertServes(s, "during a slowloris");
      await waitFor(() => slow.every((c) => c.closed), {
        timeoutMs: 4_000,
        what: "the server to close slow connections",
      });
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 4_500, `slow connections closed after ${elapsed} ms`);
      assert.ok(
        slow.every((c) => !c.finished),
        "no slow client got to send its whole request",
      );
      const http1 = slow.slice(0, 40);
      assert.ok(
        http1.every((c) => c.received.startsWith("HTTP/1.1 408")),
        `HTTP/1.1 clients get 408 Request Timeout: ${http1.find((c) => !c.received.startsWith("HTTP/1.1 408"))?.received ?? ""}`,
      );
      await assertServes(s, "after the slowloris");
    } finally {
      for (const c of slow) c.socket.destroy();
    }
  });

  it("keeps serving with 500 idle TCP connections open, and closes them after headersTimeout", async () => {
    const s = await sentinel({ headersTimeoutMs: 1_500 });
    const idle = await Promise.all(Array.from({ length: 500 }, () => openIdle(s.sentinel.port)));
    try {
      await assertServes(s, "with 500 idle connections open");
      await waitFor(() => idle.every((c) => c.closed), {
        timeoutMs: 5_000,
        what: "the server to close idle connections",
      });
      await assertServes(s, "after closing idle connections");
    } finally {
      for (const c of idle) c.socket.destroy();
    }
  });

  it("closes idle HTTP/2 and HTTP/1.1 keep-alive connections", async () => {
    const s = await sentinel({ idleTimeoutMs: 700, keepAliveTimeoutMs: 700 });
    const session = http2.connect(s.sentinel.url);
    session.on("error", () => undefined);
    let h2Closed = false;
    session.once("close", () => (h2Closed = true));
    const stream = session.request({ ":path": "/healthz" });
    stream.resume();
    await new Promise((resolve) => stream.once("close", resolve));
    const t0 = Date.now();
    await waitFor(() => h2Closed, { timeoutMs: 5_000, what: "the idle HTTP/2 connection to be closed" });
    assert.ok(Date.now() - t0 >= 500, "not closed before the idle timeout");

    const h1 = await openIdle(s.sentinel.port);
    h1.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => h1.received.includes("ok"), { what: "the /healthz answer" });
    await waitFor(() => h1.closed, { timeoutMs: 5_000, what: "the keep-alive connection to be closed" });
  });

  it("caps open connections at maxConnections, and serves again once idle ones are closed", async () => {
    const s = await sentinel({ maxConnections: 20, headersTimeoutMs: 1_500 });
    const conns = await Promise.all(Array.from({ length: 40 }, () => openIdle(s.sentinel.port)));
    try {
      // Connections over the cap are dropped at once, long before headersTimeout.
      await waitFor(() => conns.filter((c) => c.closed).length >= 20, {
        timeoutMs: 1_000,
        what: "drops over the cap",
      });
      assert.ok(conns.filter((c) => !c.closed).length <= 20, "at most 20 connections held");
      await waitFor(() => conns.every((c) => c.closed), { timeoutMs: 5_000, what: "idle ones to time out" });
      await assertServes(s, "after the cap was reached");
    } finally {
      for (const c of conns) c.socket.destroy();
    }
  });
});

describe("RPC server limits over TLS", () => {
  it("closes connections that never finish a TLS handshake, and slowloris requests inside TLS", async () => {
    const certs = await generateCerts();
    const server = await startRpcServer({
      address: "127.0.0.1:0",
      routes: () => undefined,
      fallback: (_req, res) => res.end("ok\n"),
      tls: { certFile: certs.nodeCert, keyFile: certs.nodeKey },
      limits: { headersTimeoutMs: 1_000 },
      logger: silentLogger(),
    });
    try {
      const t0 = Date.now();
      const silent = await Promise.all(Array.from({ length: 20 }, () => openIdle(server.port)));
      const slow = tls.connect({
        port: server.port,
        host: "127.0.0.1",
        ca: readFileSync(certs.caCert),
        ALPNProtocols: ["http/1.1"],
      });
      let received = "";
      let slowClosed = false;
      slow.on("data", (d: Buffer) => (received += d.toString()));
      slow.on("error", () => undefined);
      slow.on("close", () => (slowClosed = true));
      await new Promise((resolve) => slow.once("secureConnect", resolve));
      const request = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ${"z".repeat(60)}\r\n\r\n`;
      let i = 0;
      const timer = setInterval(
        () => (i < request.length && !slowClosed ? slow.write(request[i++] as string) : clearInterval(timer)),
        100,
      );
      try {
        await waitFor(() => silent.every((c) => c.closed) && slowClosed, {
          timeoutMs: 4_000,
          what: "the server to close silent and slow TLS connections",
        });
      } finally {
        clearInterval(timer);
      }
      assert.ok(Date.now() - t0 < 4_000);
      assert.ok(i < request.length, "the slow client never finished its headers");
      assert.match(received, /^HTTP\/1\.1 408/);
    } finally {
      await server.close();
      await certs.cleanup();
    }
  });
});

interface TrackedSocket {
  socket: net.Socket;
  closed: boolean;
  /** Everything the server sent. */
  received: string;
  /** The whole payload was written (dribble). */
  finished: boolean;
}

async function openIdle(port: number): Promise<TrackedSocket> {
  const socket = net.connect(port, "127.0.0.1");
  const tracked: TrackedSocket = { socket, closed: false, received: "", finished: false };
  socket.on("data", (d: Buffer) => (tracked.received += d.toString("latin1")));
  socket.on("error", () => undefined);
  socket.on("close", () => (tracked.closed = true));
  await new Promise<void>((resolve) => {
    socket.once("connect", resolve);
    socket.once("close", () => resolve());
  });
  return tracked;
}

/** Writes `payload` one byte per `everyMs`, stopping when the server closes the connection. */
async function dribble(port: number, payload: string, everyMs: number): Promise<TrackedSocket> {
  const tracked = await openIdle(port);
  let i = 0;
  const timer = setInterval(() => {
    if (tracked.closed || i >= payload.length) {
      clearInterval(timer);
      tracked.finished = i >= payload.length;
      return;
    }
    tracked.socket.write(payload[i++] as string);
  }, everyMs);
  tracked.socket.on("close", () => clearInterval(timer));
  return tracked;
}

const SETTINGS = 0x4;
const HEADERS = 0x1;
const GOAWAY = 0x7;
const MAX_CONCURRENT_STREAMS = 0x3;

/** The value of one setting in a SETTINGS payload (6-byte entries: 16-bit id, 32-bit value). */
function settingValue(payload: Buffer, id: number): number | undefined {
  for (let i = 0; i + 6 <= payload.length; i += 6) {
    if (payload.readUInt16BE(i) === id) return payload.readUInt32BE(i + 2);
  }
  return undefined;
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** Just enough HTTP/2 to open streams without obeying SETTINGS_MAX_CONCURRENT_STREAMS. */
class RawHttp2 {
  readonly frames: Frame[] = [];
  closed = false;
  #buffer = Buffer.alloc(0);

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 9) {
        const length = this.#buffer.readUIntBE(0, 3);
        if (this.#buffer.length < 9 + length) break;
        const frame = {
          type: this.#buffer[3] as number,
          flags: this.#buffer[4] as number,
          stream: this.#buffer.readUInt32BE(5) & 0x7fffffff,
          payload: this.#buffer.subarray(9, 9 + length),
        };
        this.#buffer = this.#buffer.subarray(9 + length);
        this.frames.push(frame);
        // Acknowledge the server's SETTINGS so that its limits are in force.
        if (frame.type === SETTINGS && !(frame.flags & 0x1)) this.#frame(SETTINGS, 0x1, 0, Buffer.alloc(0));
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => (this.closed = true));
  }

  static async connect(port: number): Promise<RawHttp2> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    return new RawHttp2(socket);
  }

  async handshake(): Promise<void> {
    this.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    this.#frame(SETTINGS, 0, 0, Buffer.alloc(0));
    await waitFor(() => this.frames.some((f) => f.type === SETTINGS && f.flags & 0x1), {
      what: "the server's SETTINGS ACK",
    });
  }

  /** HEADERS (END_HEADERS, no END_STREAM) for a gRPC POST, HPACK literals without Huffman coding. */
  headers(stream: number, path: string): void {
    const literal = (name: string, value: string) =>
      Buffer.concat([
        Buffer.from([0x00, name.length]),
        Buffer.from(name),
        Buffer.from([value.length]),
        Buffer.from(value),
      ]);
    const block = Buffer.concat([
      Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table)
      Buffer.from([0x04, path.length]), // :path, literal value
      Buffer.from(path),
      Buffer.from([0x01, 1]), // :authority "x"
      Buffer.from("x"),
      literal("content-type", "application/grpc"),
      literal("te", "trailers"),
    ]);
    this.#frame(HEADERS, 0x4, stream, block);
  }

  destroy(): void {
    this.socket.destroy();
  }

  #frame(type: number, flags: number, stream: number, payload: Buffer): void {
    const header = Buffer.alloc(9);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(stream, 5);
    this.socket.write(Buffer.concat([header, payload]));
  }
}
