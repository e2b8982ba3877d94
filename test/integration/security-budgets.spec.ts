import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { MessageRequestSchema } from "../../src/gen/goulette/v1/broker_pb.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { brokerClient, startBrokerProcess, type BrokerProcess } from "../helpers/broker-process.js";
import { waitFor } from "../helpers/wait.js";

const TOKEN = "budgets-spec-token";
const MIB = 1024 * 1024;
/** The broker's request size with default flags (the larger of 16 MiB and 4 × (1 MiB + 64 KiB)). */
const MAX_REQUEST = 16 * MIB;
/**
 * The ceiling docs/security.md states: peak RSS of a broker (default flags, auth on) under the attack
 * below (1.5 GiB sent; the in-flight budget is 128 MiB). Measured at 336–349 MiB on Node 20 when
 * written, 325–416 MiB over five runs of one build later (when the collector runs decides the peak):
 * the ceiling sits above that spread, so what it catches is memory that grows with what is sent.
 */
const RSS_CEILING = 480 * MIB;
const CONNECTIONS = 8;
const SERVICE = "/goulette.v1.BrokerService";

/** A gRPC envelope around `message`. */
function envelope(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** Field `number` (length-delimited) holding `length` zero bytes: unknown to every request schema. */
function unknownField(number: number, length: number): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return Buffer.from(out);
  };
  const head = Buffer.concat([varint((number << 3) | 2), varint(length)]);
  return Buffer.concat([head, Buffer.alloc(length)]);
}

/** `count` empty sub-messages in repeated field 1 (tag 0x0a) or 5 (0x2a): 2 wire bytes each. */
function emptySubmessages(tag: number, count: number): Buffer {
  const out = Buffer.alloc(2 * count);
  for (let i = 0; i < out.length; i += 2) out[i] = tag;
  return out;
}

interface RawAnswer {
  /** grpc-status (from the headers of a trailers-only answer, or the trailers). */
  status: number | undefined;
  message: string;
  /** RST_STREAM code when the server reset the stream. */
  rstCode: number;
  ms: number;
}

/**
 * One gRPC call on `session` with `body` (undefined: the headers only, and the request left open).
 * The response is read and discarded; resolves when the stream closes.
 */
function rawCall(
  session: http2.ClientHttp2Session,
  method: string,
  body: Buffer | undefined,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": `${SERVICE}/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let status: number | undefined;
    let message = "";
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ status, message, rstCode: stream.rstCode ?? 0, ms: performance.now() - started });
    };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
      if (h["grpc-status"] === undefined) return;
      status = Number(h["grpc-status"]);
      // Answered: the rest of a large body need not be sent.
      finish();
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("error", () => undefined);
    stream.on("close", finish);
    // Bounded: a call the server neither answers nor closes in time is given up (status undefined).
    setTimeout(() => {
      finish();
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, 5_000).unref();
    stream.resume();
    if (body !== undefined) stream.end(body);
  });
}

function connect(address: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** Current and peak resident set size of a process, from /proc. */
async function rssOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { rss: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024 };
}

describe("budgets before work (broker process, auth on)", () => {
  let dir: string;
  let broker: BrokerProcess;
  const sessions: http2.ClientHttp2Session[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "goulette-budgets-"));
    broker = await startBrokerProcess({
      id: "budget-b1",
      // No sentinel: the broker serves Health and answers produce with per-record errors meanwhile.
      sentinels: ["http://127.0.0.1:9"],
      dataDir: dir,
      waitReady: false,
      env: { GOULETTE_AUTH_TOKEN: TOKEN },
      args: ["--unread-responses-timeout", "1500", "--log-level", "warn"],
    });
    await waitFor(() => broker.client.health({}).then(() => true), {
      what: "the broker to answer Health",
      timeoutMs: 60_000,
    });
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    await broker?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  const session = async () => {
    const s = await connect(broker.address);
    sessions.push(s);
    return s;
  };

  it("answers a call without credentials from its headers, before reading its body", async () => {
    const s = await session();
    for (const method of ["Produce", "SetTopicRoles", "RemoveTopic"]) {
      // Announces 16 MiB and sends none of it: the answer cannot wait for the body.
      const answer = await Promise.race([
        rawCall(s, method, undefined),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000).unref()),
      ]);
      assert.ok(answer, `${method}: no answer within 5 s to a request whose body was never sent`);
      assert.equal(answer.status, 16, `${method}: grpc-status ${answer.status} ${answer.message}`);
      assert.match(answer.message, new RegExp(`${method} needs the credential of: `));
    }
  });

  it("refuses a repeated-empty-submessage bomb before decoding it", async () => {
    const s = await session();
    // 200,000 empty PartitionRefs: 400 KB on the wire, ~15 MB once decoded.
    const tooMany = await rawCall(s, "Health", envelope(emptySubmessages(0x0a, 200_000)));
    assert.equal(tooMany.status, 3, `grpc-status ${tooMany.status} ${tooMany.message}`);
    assert.match(tooMany.message, /more than 100000 elements in repeated fields \(crossed in 'partitions'\)/);
    // Under the element cap: decoded normally.
    const fine = await rawCall(s, "Health", envelope(emptySubmessages(0x0a, 1_000)));
    assert.equal(fine.status, 0, fine.message);
  });

  it("keeps its memory and its Health probe within bounds under the largest requests from 8 connections", async () => {
    const anonymous = await Promise.all(Array.from({ length: CONNECTIONS }, () => session()));
    const largest = MAX_REQUEST - 16;
    // The largest request of every RPC, as the attack sends it: repeated fields filled with empty
    // sub-messages where there are some, an unknown field elsewhere.
    const requests: [string, Buffer][] = [
      ["Health", envelope(emptySubmessages(0x0a, largest / 2))],
      ["Produce", envelope(emptySubmessages(0x2a, largest / 2))],
      ["SendMessage", envelope(emptySubmessages(0x2a, largest / 2))],
      ["SetTopicRoles", envelope(emptySubmessages(0x0a, largest / 2))],
      ["FetchMessages", envelope(unknownField(1000, largest - 8))],
      ["PullMessage", envelope(unknownField(1000, largest - 8))],
      ["GetCommittedOffset", envelope(unknownField(1000, largest - 8))],
      ["CommitOffset", envelope(unknownField(1000, largest - 8))],
      ["ReplicateSession", envelope(emptySubmessages(0x12, largest / 2))],
      ["Replicate", envelope(unknownField(1000, largest - 8))],
      ["RemoveTopic", envelope(unknownField(1000, largest - 8))],
      ["DeleteCommittedOffset", envelope(unknownField(1000, largest - 8))],
    ];
    const probe = brokerClient(broker.address);
    let slowest = 0;
    let peakSampled = 0;
    let attacking = true;
    const monitor = (async () => {
      while (attacking) {
        const started = performance.now();
        await probe.health({}, { timeoutMs: 10_000 });
        slowest = Math.max(slowest, performance.now() - started);
        peakSampled = Math.max(peakSampled, (await rssOf(broker.process.pid as number)).rss);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const codes = new Map<string, Set<number | undefined>>();
    try {
      // Every connection sends every RPC's largest request, all connections at once.
      for (let round = 0; round < 1; round++) {
        await Promise.all(
          anonymous.map(async (s, c) => {
            for (let i = 0; i < requests.length; i++) {
              const [method, body] = requests[(i + c) % requests.length] as [string, Buffer];
              const answer = await rawCall(s, method, body);
              const seen = codes.get(method) ?? new Set();
              seen.add(answer.status);
              codes.set(method, seen);
            }
          }),
        );
      }
    } finally {
      attacking = false;
      await monitor;
    }
    const { peak } = await rssOf(broker.process.pid as number);
    console.log(
      `broker RSS peak ${(peak / MIB).toFixed(0)} MiB (sampled ${(peakSampled / MIB).toFixed(0)} MiB), ` +
        `slowest Health ${slowest.toFixed(0)} ms; codes ${JSON.stringify([...codes].map(([m, s]) => [m, [...s]]))}`,
    );
    assert.ok(broker.alive, `the broker died: ${broker.logTail()}`);
    assert.ok(
      peak < RSS_CEILING,
      `RSS peaked at ${(peak / MIB).toFixed(0)} MiB, over ${RSS_CEILING / MIB} MiB`,
    );
    assert.ok(slowest < 1_000, `a Health probe took ${slowest.toFixed(0)} ms under the attack`);
    // Nothing was accepted: protected methods refused (Unauthenticated, or their streams reset when
    // the connection's unprocessed data passed HTTP/2's session memory), the rest refused as malformed.
    for (const [method, seen] of codes) assert.ok(!seen.has(0), `${method} accepted: ${[...seen].join(",")}`);
  });

  it("pauses a SendMessage whose client never reads its responses, then ends it with ResourceExhausted", async () => {
    const s = await session();
    const stream = s.request({
      ":method": "POST",
      ":path": `${SERVICE}/SendMessage`,
      "content-type": "application/grpc",
      te: "trailers",
      ...bearerHeaders(TOKEN),
    });
    stream.on("error", () => undefined);
    // Never read: no 'data' listener, so HTTP/2 flow control stops the broker's writes.
    stream.pause();
    const closed = new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? 0)));
    const request = envelope(
      toBinary(
        MessageRequestSchema,
        create(MessageRequestSchema, {
          topic: "never-read",
          producerId: "p".repeat(200),
          records: [{ messageId: 1n, payload: new Uint8Array(10) }],
        }),
      ),
    );
    // Writes until the broker stops reading (a write waits for 'drain' that does not come), bounded.
    let sent = 0;
    let stalled = false;
    for (; sent < 200_000 && !stream.closed; sent++) {
      if (stream.write(request)) continue;
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => stream.once("drain", () => resolve(true))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000).unref()),
      ]);
      if (!drained) {
        stalled = true;
        break;
      }
    }
    assert.ok(
      stalled || stream.closed,
      `the broker read all ${sent} requests of a client that reads nothing`,
    );
    const rstCode = await Promise.race([
      closed,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000).unref()),
    ]);
    assert.equal(
      rstCode,
      http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
      "the stream was not ended with ENHANCE_YOUR_CALM (ResourceExhausted)",
    );
    // The broker goes on serving.
    const started = performance.now();
    await broker.client.health({}, { timeoutMs: 5_000 });
    assert.ok(performance.now() - started < 1_000);
    assert.ok((await rssOf(broker.process.pid as number)).rss < RSS_CEILING);
  });
});
