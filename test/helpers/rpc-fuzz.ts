import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import {
  ScalarType,
  fromJson,
  toBinary,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type JsonValue,
} from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code } from "@connectrpc/connect";

/**
 * Property test of an RPC server's request decoding and validation: seeded random and malformed
 * requests over gRPC (HTTP/2, hand-written 5-byte frame headers), Connect binary and Connect JSON
 * (HTTP/1.1). A table of targets (one per service) makes it reusable for every Goulette service.
 */

export type Protocol = "grpc" | "connect-proto" | "connect-json";
export const PROTOCOLS: readonly Protocol[] = ["grpc", "connect-proto", "connect-json"];

/** Codes a server may answer to bad input: what the request did wrong, never "the server broke". */
export const BAD_INPUT_CODES: readonly Code[] = [
  Code.InvalidArgument,
  Code.ResourceExhausted,
  Code.Unimplemented,
  Code.NotFound,
  Code.FailedPrecondition,
];

export interface FuzzTarget {
  /** Shown in failure messages. */
  name: string;
  service: DescService;
  /** http://host:port of the server. */
  baseUrl: string;
  /** Method names to fuzz (default: every method with a single request message; see fuzzableMethods). */
  methods?: string[];
  /** Strings that pass validation (existing topics, broker ids, addresses), to reach deeper checks. */
  stringSeeds?: string[];
  /** Codes a method may answer besides BAD_INPUT_CODES (e.g. Unauthenticated, or DeadlineExceeded of a long poll). */
  extraCodes?: Partial<Record<string, readonly Code[]>>;
  /** Headers sent with every case (e.g. an auth token, to reach the decoding behind the check). */
  headers?: Record<string, string>;
  /**
   * RPC deadline sent with every case (grpc-timeout, connect-timeout-ms), for methods that legitimately
   * wait (long polls): they then end with DeadlineExceeded, which extraCodes must allow.
   */
  rpcTimeoutMs?: number;
  /** A digest of the state a failed call must not change (e.g. the op-log head and state digest). */
  fingerprint(): string | Promise<string>;
  /** A valid call that must succeed: proves the server still serves. Throws when it does not. */
  healthy(): Promise<void>;
}

export interface FuzzOptions {
  /** PRNG seed; print it so a failure can be replayed. */
  seed: number;
  /** Cases per method, spread over the three protocols. */
  casesPerMethod: number;
  /** Deadline of one call (ms): a call still open then is a hang. */
  deadlineMs: number;
  /** Run healthy() after this many cases. */
  healthEvery?: number;
}

export interface FuzzCase {
  method: string;
  protocol: Protocol;
  /** Which generator made it (shown in failures and in the summary). */
  kind: string;
  contentType: string;
  headers?: Record<string, string>;
  body: Uint8Array;
  /** The only acceptable answer is this HTTP status (wrong content types: 415). */
  expectHttpStatus?: number;
}

export interface FuzzOutcome {
  /** "ok", a Connect code name ("invalid_argument"), "http 415", or "hang"/"transport: …" (failures). */
  result: string;
  code?: Code;
  httpStatus?: number;
  message?: string;
}

export interface FuzzReport {
  cases: number;
  /** result → count, e.g. { ok: 12, invalid_argument: 800 }. */
  results: Record<string, number>;
  /** kind → count. */
  kinds: Record<string, number>;
  failures: string[];
}

/** Methods whose request is a single message: unary and server streaming. */
export function fuzzableMethods(service: DescService): DescMethod[] {
  return service.methods.filter((m) => m.methodKind === "unary" || m.methodKind === "server_streaming");
}

/** Runs the fuzz over a target and returns what happened; the caller asserts failures is empty. */
export async function fuzzService(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const rng = createRng(options.seed);
  const methods = fuzzableMethods(target.service).filter(
    (m) => !target.methods || target.methods.includes(m.name),
  );
  const report: FuzzReport = { cases: 0, results: {}, kinds: {}, failures: [] };
  const grpc = new GrpcRawClient(target.baseUrl);
  const healthEvery = options.healthEvery ?? 50;
  try {
    for (const method of methods) {
      const gen = new CaseGenerator(rng, method, target.stringSeeds ?? []);
      let before = await target.fingerprint();
      for (let i = 0; i < options.casesPerMethod; i++) {
        const protocol = PROTOCOLS[i % PROTOCOLS.length] as Protocol;
        const fuzzCase = gen.next(protocol);
        const outcome = await send(target, grpc, fuzzCase, options.deadlineMs);
        report.cases++;
        report.results[outcome.result] = (report.results[outcome.result] ?? 0) + 1;
        report.kinds[fuzzCase.kind] = (report.kinds[fuzzCase.kind] ?? 0) + 1;
        const after = await target.fingerprint();
        const problem = judge(target, fuzzCase, outcome, before !== after);
        if (problem) report.failures.push(`${problem}\n    ${describeCase(fuzzCase)}`);
        before = after;
        if (report.cases % healthEvery === 0) await checkHealthy(target, report, describeCase(fuzzCase));
        if (report.failures.length >= 20) return report;
      }
    }
    await checkHealthy(target, report, undefined);
    return report;
  } finally {
    grpc.close();
  }
}

function judge(target: FuzzTarget, c: FuzzCase, o: FuzzOutcome, changed: boolean): string | undefined {
  const where = `${target.name} ${c.method} over ${c.protocol} (${c.kind})`;
  if (c.expectHttpStatus !== undefined) {
    if (o.httpStatus !== c.expectHttpStatus)
      return `${where}: expected HTTP ${c.expectHttpStatus}, got ${o.result}`;
    return changed ? `${where}: refused, yet the state changed` : undefined;
  }
  if (o.result === "ok") return undefined;
  if (o.code === undefined) return `${where}: no Connect/gRPC error: ${o.result} ${o.message ?? ""}`;
  const allowed = [...BAD_INPUT_CODES, ...(target.extraCodes?.[c.method] ?? [])];
  if (!allowed.includes(o.code)) return `${where}: code ${Code[o.code]}: ${o.message ?? ""}`;
  if (changed) return `${where}: failed with ${Code[o.code]}, yet the state changed`;
  if (!o.message) return `${where}: ${Code[o.code]} without a message`;
  return undefined;
}

/** A valid call must still succeed (after `last`, the case just run, described for the failure). */
async function checkHealthy(
  target: { name: string; healthy: () => Promise<unknown> },
  report: FuzzReport,
  last: string | undefined,
): Promise<void> {
  try {
    await target.healthy();
  } catch (err) {
    const after = last ? ` after ${last}` : "";
    report.failures.push(`${target.name}: a valid call failed${after}: ${String(err)}`);
  }
}

function describeCase(c: FuzzCase): string {
  const hex = Buffer.from(c.body.subarray(0, 48)).toString("hex");
  return `${c.method} ${c.protocol} ${c.kind} content-type=${c.contentType} ${c.body.byteLength} bytes: ${hex}${c.body.byteLength > 48 ? "…" : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Sending: raw gRPC over node:http2, Connect over fetch (HTTP/1.1)

async function send(
  target: FuzzTarget,
  grpc: GrpcRawClient,
  c: FuzzCase,
  deadlineMs: number,
): Promise<FuzzOutcome> {
  const path = `/${target.service.typeName}/${c.method}`;
  const headers: Record<string, string> = { ...target.headers, ...c.headers, "content-type": c.contentType };
  if (target.rpcTimeoutMs !== undefined) {
    if (c.protocol === "grpc") headers["grpc-timeout"] = `${target.rpcTimeoutMs}m`;
    else headers["connect-timeout-ms"] = String(target.rpcTimeoutMs);
  }
  if (c.protocol === "grpc") return grpc.call(path, headers, c.body, deadlineMs);
  const streaming = c.contentType.startsWith("application/connect+");
  try {
    const res = await fetch(`${target.baseUrl}${path}`, {
      method: "POST",
      headers: { ...headers, "connect-protocol-version": "1" },
      body: c.body,
      signal: AbortSignal.timeout(deadlineMs),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    if (streaming && res.status === 200) return connectStreamOutcome(body);
    if (res.status === 200) return { result: "ok", httpStatus: 200 };
    return connectErrorOutcome(res.status, body);
  } catch (err) {
    const name = (err as Error).name;
    return { result: name === "TimeoutError" ? "hang" : `transport: ${String(err)}` };
  }
}

function connectErrorOutcome(status: number, body: Uint8Array): FuzzOutcome {
  try {
    const json = JSON.parse(Buffer.from(body).toString("utf8")) as { code?: unknown; message?: unknown };
    const code = codeFromName(json.code);
    if (code !== undefined) {
      return {
        result: String(json.code),
        code,
        httpStatus: status,
        message: typeof json.message === "string" ? json.message : "",
      };
    }
  } catch {
    // not JSON: an HTTP-level answer
  }
  return { result: `http ${status}`, httpStatus: status };
}

/** Connect streaming response: envelopes, the last one (flag 0x02) a JSON end-stream message. */
function connectStreamOutcome(body: Uint8Array): FuzzOutcome {
  const buf = Buffer.from(body);
  for (let pos = 0; pos + 5 <= buf.length;) {
    const flags = buf[pos] as number;
    const length = buf.readUInt32BE(pos + 1);
    const data = buf.subarray(pos + 5, pos + 5 + length);
    pos += 5 + length;
    if (flags & 0x02) {
      const end = JSON.parse(data.toString("utf8")) as { error?: { code?: unknown; message?: unknown } };
      if (!end.error) return { result: "ok", httpStatus: 200 };
      const code = codeFromName(end.error.code);
      return {
        result: String(end.error.code),
        httpStatus: 200,
        message: typeof end.error.message === "string" ? end.error.message : "",
        ...(code !== undefined ? { code } : {}),
      };
    }
  }
  return { result: "transport: stream without end-stream message", httpStatus: 200 };
}

const CODE_NAMES = new Map<string, Code>(
  Object.entries(Code)
    .filter((e): e is [string, Code] => typeof e[1] === "number")
    .map(([name, code]) => [
      name.replace(/[A-Z]/g, (ch, i: number) => (i > 0 ? "_" : "") + ch.toLowerCase()),
      code,
    ]),
);

function codeFromName(name: unknown): Code | undefined {
  return typeof name === "string" ? CODE_NAMES.get(name) : undefined;
}

/** A code as Connect spells it on the wire: "invalid_argument". */
export function codeName(code: Code): string {
  for (const [name, c] of CODE_NAMES) if (c === code) return name;
  return `code ${code}`;
}

/** gRPC by hand: one HTTP/2 connection, requests with the body written as given (frame headers included). */
export class GrpcRawClient {
  #session: http2.ClientHttp2Session | undefined;

  constructor(private readonly baseUrl: string) {}

  call(
    path: string,
    headers: Record<string, string>,
    body: Uint8Array,
    deadlineMs: number,
  ): Promise<FuzzOutcome> {
    const session = this.#connect();
    return new Promise((resolve) => {
      const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
      let status: number | undefined;
      let grpcStatus: string | undefined;
      let grpcMessage = "";
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish({ result: "hang" });
      }, deadlineMs);
      let done = false;
      const finish = (outcome: FuzzOutcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
        if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
      };
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        take(h);
      });
      stream.on("trailers", take);
      stream.on("data", () => undefined);
      stream.on("error", (err) => finish({ result: `transport: ${err.message}` }));
      stream.on("close", () => {
        if (status !== 200)
          return finish({ result: `http ${status ?? "none"}`, ...(status ? { httpStatus: status } : {}) });
        if (grpcStatus === undefined) return finish({ result: "transport: no grpc-status", httpStatus: 200 });
        // grpc-status 0 is OK, which Connect's Code enum leaves out.
        if (grpcStatus === "0") return finish({ result: "ok", httpStatus: 200 });
        const code = Number(grpcStatus) as Code;
        finish({ result: codeName(code), httpStatus: 200, message: grpcMessage, code });
      });
      stream.end(body);
    });
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  #connect(): http2.ClientHttp2Session {
    if (!this.#session || this.#session.closed || this.#session.destroyed) {
      this.#session = http2.connect(this.baseUrl);
      this.#session.on("error", () => undefined);
    }
    return this.#session;
  }
}

/** A gRPC length-prefixed message: flags byte, 4-byte big-endian length, data. */
export function grpcFrame(data: Uint8Array, flags = 0, declaredLength = data.byteLength): Uint8Array {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([header, data]);
}

// ---------------------------------------------------------------------------------------------
// Case generation

/** mulberry32: small, fast, and the same sequence on every machine for a seed. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (max) => Math.floor(next() * max),
    pick: <T>(items: readonly T[]) => items[Math.floor(next() * items.length)] as T,
    chance: (p) => next() < p,
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}

export interface Rng {
  next(): number;
  int(max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  bytes(n: number): Uint8Array;
}

const MiB = 1024 * 1024;
const INVALID_UTF8 = [
  [0xff],
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xe2, 0x82], // truncated sequence
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
];
const WRONG_CONTENT_TYPES = [
  "text/plain",
  "application/x-www-form-urlencoded",
  "application/grpc+nonsense",
  "application/protobuf-ish",
  "multipart/form-data; boundary=x",
];

type Generator = (protocol: Protocol) => { kind: string; body: Uint8Array } | undefined;

class CaseGenerator {
  readonly #input: DescMessage;
  readonly #generators: [number, Generator][];
  /** Huge cases are costly: a few per method and protocol. */
  #huge = 0;

  constructor(
    private readonly rng: Rng,
    private readonly method: DescMethod,
    private readonly seeds: string[],
  ) {
    this.#input = method.input;
    const binary =
      (kind: string, make: () => Uint8Array): Generator =>
      (p) =>
        p === "connect-json" ? undefined : { kind, body: make() };
    const json =
      (kind: string, make: () => Uint8Array): Generator =>
      (p) =>
        p === "connect-json" ? { kind, body: make() } : undefined;
    this.#generators = [
      [3, () => ({ kind: "random-bytes", body: rng.bytes(rng.chance(0.1) ? rng.int(4096) : rng.int(64)) })],
      [3, (p) => ({ kind: "valid-random", body: this.#validBody(p) })],
      [3, binary("mutated-valid", () => mutate(rng, this.#validBinary()))],
      [2, binary("wrong-wire-type", () => this.#wrongWireType())],
      [1, binary("invalid-tag", () => this.#invalidTag())],
      [2, binary("invalid-utf8", () => this.#invalidUtf8Binary())],
      [1, binary("length-overflow", () => this.#lengthOverflow())],
      [2, binary("number-edges", () => this.#numberEdgesBinary())],
      [1, binary("unknown-fields", () => this.#unknownFields())],
      [1, binary("deep-groups", () => deepGroups(20_000 + rng.int(100_000)))],
      [3, json("wrong-json-types", () => this.#jsonWrongTypes())],
      [2, json("json-number-edges", () => this.#jsonNumberEdges())],
      [1, json("deep-json", () => this.#deepJson())],
      [1, json("unknown-json-field", () => this.#jsonUnknownField())],
      [2, json("invalid-utf8-json", () => this.#invalidUtf8Json())],
      [1, json("truncated-json", () => truncate(rng, utf8(JSON.stringify(this.#validJson()))))],
      [1, (p) => this.#hugeField(p)],
      [1, (p) => this.#wrongContentType(p)],
    ];
  }

  next(protocol: Protocol): FuzzCase {
    const total = this.#generators.reduce((sum, [w]) => sum + w, 0);
    for (;;) {
      let roll = this.rng.next() * total;
      const entry = this.#generators.find(([w]) => (roll -= w) < 0) ?? this.#generators[0];
      const made = (entry as [number, Generator])[1](protocol);
      if (!made) continue;
      const wrongType = made.kind.startsWith("content-type ");
      const contentType = wrongType
        ? made.kind.slice("content-type ".length)
        : contentTypeOf(protocol, this.method);
      let body = made.body;
      if (protocol === "grpc" || contentType.startsWith("application/connect+"))
        body = this.#frame(body, made.kind);
      return {
        method: this.method.name,
        protocol,
        kind: made.kind,
        contentType,
        body,
        ...(wrongType ? { expectHttpStatus: 415 } : {}),
        ...(made.kind === "gzip-garbage"
          ? {
              headers: {
                [protocol === "grpc"
                  ? "grpc-encoding"
                  : protocol === "connect-proto" && !this.#streaming()
                    ? "content-encoding"
                    : "connect-content-encoding"]: "gzip",
              },
            }
          : {}),
      };
    }
  }

  #streaming(): boolean {
    return this.method.methodKind !== "unary";
  }

  /** gRPC and Connect-streaming frames, now and then with a lying header. */
  #frame(body: Uint8Array, kind: string): Uint8Array {
    if (kind === "gzip-garbage") return grpcFrame(body, 1);
    const r = this.rng.next();
    if (r < 0.04) return grpcFrame(body, 0, body.byteLength + 1 + this.rng.int(100)); // promises more
    if (r < 0.06) return grpcFrame(body).subarray(0, this.rng.int(5)); // header cut short
    if (r < 0.08) return Buffer.concat([grpcFrame(body), grpcFrame(body)]); // two messages
    if (r < 0.1) return grpcFrame(body, this.rng.pick([0x02, 0x80, 0xff]));
    if (r < 0.11) return new Uint8Array(0); // no message at all
    return grpcFrame(body);
  }

  #validJson(): JsonValue {
    return randomJson(this.rng, this.#input, this.seeds, 0);
  }

  #validBinary(): Uint8Array {
    try {
      return toBinary(this.#input, fromJson(this.#input, this.#validJson()));
    } catch {
      return new Uint8Array(0);
    }
  }

  #validBody(protocol: Protocol): Uint8Array {
    return protocol === "connect-json" ? utf8(JSON.stringify(this.#validJson())) : this.#validBinary();
  }

  #field(): DescField | undefined {
    return this.#input.fields.length > 0 ? this.rng.pick(this.#input.fields) : undefined;
  }

  #wrongWireType(): Uint8Array {
    const field = this.#field();
    const no = field?.number ?? 1;
    const natural = field ? wireTypeOf(field) : WireType.Varint;
    const w = new BinaryWriter();
    const wrong = this.rng.pick(
      [WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.StartGroup, WireType.Bit32].filter(
        (t) => t !== natural,
      ),
    );
    w.tag(no, wrong);
    if (wrong === WireType.Varint) w.uint64(BigInt(this.rng.int(1 << 30)));
    else if (wrong === WireType.Bit64) w.fixed64(BigInt(this.rng.int(1 << 30)));
    else if (wrong === WireType.Bit32) w.fixed32(this.rng.int(1 << 30));
    else if (wrong === WireType.LengthDelimited) w.bytes(this.rng.bytes(this.rng.int(16)));
    else w.tag(no, WireType.EndGroup);
    return Buffer.concat([this.#validBinary(), w.finish()]);
  }

  #invalidTag(): Uint8Array {
    return this.rng.pick([
      new Uint8Array([0x00]), // field number 0
      new Uint8Array([0x0e, 0x01]), // wire type 6
      new Uint8Array([0x0f, 0x01]), // wire type 7
      new Uint8Array([0x0c]), // end group without start
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11-byte varint
      new Uint8Array([0xf8, 0xff, 0xff, 0xff, 0x7f, 0x00]), // field number above 2^29
    ]);
  }

  #stringField(): DescField | undefined {
    const strings = this.#input.fields.filter((f) => f.scalar === ScalarType.STRING);
    return strings.length > 0 ? this.rng.pick(strings) : undefined;
  }

  #invalidUtf8Binary(): Uint8Array {
    const no = this.#stringField()?.number ?? 1;
    const bad = Buffer.concat([utf8("ab"), Buffer.from(this.rng.pick(INVALID_UTF8)), utf8("cd")]);
    return Buffer.concat([
      this.#validBinary(),
      new BinaryWriter().tag(no, WireType.LengthDelimited).bytes(bad).finish(),
    ]);
  }

  #lengthOverflow(): Uint8Array {
    const no = this.#stringField()?.number ?? 1;
    const w = new BinaryWriter().tag(no, WireType.LengthDelimited);
    w.uint64(this.rng.pick([100n, 2n ** 31n, 2n ** 32n + 3n, 2n ** 63n]));
    return Buffer.concat([w.finish(), utf8("short")]);
  }

  #numberEdgesBinary(): Uint8Array {
    const numeric = this.#input.fields.filter(
      (f) =>
        f.fieldKind === "enum" ||
        (f.scalar !== undefined && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES),
    );
    const no = numeric.length > 0 ? this.rng.pick(numeric).number : 2;
    const w = new BinaryWriter().tag(no, WireType.Varint);
    w.uint64(this.rng.pick([2n ** 32n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n, 4294967295n]));
    return Buffer.concat([this.#validBinary(), w.finish()]);
  }

  #unknownFields(): Uint8Array {
    const w = new BinaryWriter();
    w.tag(1000 + this.rng.int(1000), WireType.Varint).uint64(BigInt(this.rng.int(1 << 30)));
    w.tag(5000, WireType.LengthDelimited).bytes(this.rng.bytes(this.rng.int(64)));
    return Buffer.concat([this.#validBinary(), w.finish()]);
  }

  #jsonWrongTypes(): Uint8Array {
    const obj: Record<string, JsonValue> = {};
    for (const field of this.#input.fields) {
      if (this.rng.chance(0.5)) continue;
      obj[field.jsonName] = this.rng.pick<JsonValue>([
        true,
        12.5,
        -7,
        "not-a-number",
        [1, "two", null],
        { nested: { deeper: [] } },
        null,
        "",
      ]);
    }
    return utf8(this.rng.chance(0.1) ? JSON.stringify([obj]) : JSON.stringify(obj));
  }

  #jsonNumberEdges(): Uint8Array {
    const numeric = this.#input.fields.filter(
      (f) =>
        f.fieldKind === "enum" ||
        (f.scalar !== undefined && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES),
    );
    const field = numeric.length > 0 ? this.rng.pick(numeric) : undefined;
    const value = this.rng.pick([
      "4294967296",
      "-1",
      "1e400",
      "1.5",
      "-0",
      '"-1"',
      '"18446744073709551616"',
      '"0x10"',
      '"NaN"',
      '"Infinity"',
      "9007199254740993",
      '"99999999999999999999999"',
    ]);
    const base = this.#validJson();
    const rest =
      typeof base === "object" && base !== null && !Array.isArray(base)
        ? JSON.stringify(base).slice(1, -1)
        : "";
    const name = field?.jsonName ?? "replicaCount";
    return utf8(`{${rest}${rest ? "," : ""}"${name}":${value}}`);
  }

  #deepJson(): Uint8Array {
    const depth = 1_000 + this.rng.int(200_000);
    if (this.rng.chance(0.5)) return utf8("[".repeat(depth) + "]".repeat(depth));
    const name = this.#field()?.jsonName ?? "x";
    return utf8(`{"${name}":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`);
  }

  #jsonUnknownField(): Uint8Array {
    const base = this.#validJson();
    const obj = typeof base === "object" && base !== null && !Array.isArray(base) ? { ...base } : {};
    obj[this.rng.pick(["unknownField", "__proto__x", "constructor", "topic_"])] = this.rng.int(10);
    return utf8(JSON.stringify(obj));
  }

  #invalidUtf8Json(): Uint8Array {
    const name = this.#stringField()?.jsonName ?? "topic";
    return Buffer.concat([utf8(`{"${name}":"ab`), Buffer.from(this.rng.pick(INVALID_UTF8)), utf8(`"}`)]);
  }

  #hugeField(protocol: Protocol): { kind: string; body: Uint8Array } | undefined {
    if (this.#huge >= 6) return undefined;
    this.#huge++;
    const size = MiB + this.rng.int(2 * MiB);
    const text = "x".repeat(size);
    if (protocol === "connect-json") {
      const name = this.#stringField()?.jsonName ?? "topic";
      return { kind: "huge-string", body: utf8(JSON.stringify({ [name]: text })) };
    }
    if (this.rng.chance(0.3)) return { kind: "gzip-garbage", body: gzipSync(this.rng.bytes(256)) };
    const no = this.#stringField()?.number ?? 1;
    return {
      kind: "huge-string",
      body: new BinaryWriter().tag(no, WireType.LengthDelimited).string(text).finish(),
    };
  }

  #wrongContentType(protocol: Protocol): { kind: string; body: Uint8Array } {
    const type = this.rng.pick(WRONG_CONTENT_TYPES);
    return { kind: `content-type ${type}`, body: this.#validBody(protocol) };
  }
}

function contentTypeOf(protocol: Protocol, method: DescMethod): string {
  const streaming = method.methodKind !== "unary";
  if (protocol === "grpc") return "application/grpc";
  if (protocol === "connect-proto") return streaming ? "application/connect+proto" : "application/proto";
  return streaming ? "application/connect+json" : "application/json";
}

function wireTypeOf(field: DescField): WireType {
  if (field.fieldKind === "message" || field.fieldKind === "map") return WireType.LengthDelimited;
  if (field.fieldKind === "list") return WireType.LengthDelimited;
  switch (field.scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

/** A JSON value for a message, mostly well-formed for the schema (protobuf JSON mapping). */
function randomJson(rng: Rng, schema: DescMessage, seeds: string[], depth: number): JsonValue {
  const obj: Record<string, JsonValue> = {};
  for (const field of schema.fields) {
    if (field.oneof || rng.chance(0.3)) continue;
    if (field.fieldKind === "list") {
      const items: JsonValue[] = [];
      for (let i = rng.int(3); i > 0; i--) items.push(randomValue(rng, field, seeds, depth));
      obj[field.jsonName] = items;
    } else if (field.fieldKind !== "map") {
      obj[field.jsonName] = randomValue(rng, field, seeds, depth);
    }
  }
  return obj;
}

function randomValue(rng: Rng, field: DescField, seeds: string[], depth: number): JsonValue {
  if (field.message) return depth > 2 ? {} : randomJson(rng, field.message, seeds, depth + 1);
  if (field.enum) return rng.pick(field.enum.values).number;
  switch (field.scalar) {
    case ScalarType.STRING:
      return seeds.length > 0 && rng.chance(0.6) ? rng.pick(seeds) : randomText(rng);
    case ScalarType.BYTES:
      return Buffer.from(rng.bytes(rng.int(32))).toString("base64");
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return String(rng.pick([0, 1, -1, rng.int(1000), -rng.int(1000)]));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return String(rng.pick([0, 1, rng.int(1000), 2 ** 40]));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.next() * 100;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.pick([0, 1, -1, rng.int(100)]);
    default:
      return rng.pick([0, 1, 2, 3, rng.int(50), rng.int(5000)]);
  }
}

function randomText(rng: Rng): string {
  const alphabet = "abcxyz019._-/# é\u0000\u202e💥";
  let out = "";
  for (let i = rng.int(24); i > 0; i--) out += rng.pick([...alphabet]);
  return out;
}

function mutate(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes);
  switch (rng.int(4)) {
    case 0:
      return truncate(rng, out);
    case 1:
      if (out.length > 0) out[rng.int(out.length)] = rng.int(256);
      return out;
    case 2: {
      const at = rng.int(out.length + 1);
      return Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(4)), out.subarray(at)]);
    }
    default:
      return Buffer.concat([out, out.subarray(0, rng.int(out.length + 1))]);
  }
}

function truncate(rng: Rng, bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, bytes.length > 0 ? rng.int(bytes.length) : 0);
}

/** `depth` nested start-group tags of an unknown field: recursion bait for the decoder. */
function deepGroups(depth: number): Uint8Array {
  const open = Buffer.alloc(depth * 2);
  for (let i = 0; i < depth; i++) {
    open[i * 2] = 0xfb; // field 1023 wire type 3, as a 2-byte varint tag
    open[i * 2 + 1] = 0x3f;
  }
  return open;
}

function utf8(text: string): Uint8Array {
  return Buffer.from(text, "utf8");
}

// ---------------------------------------------------------------------------------------------
// Bidirectional streams: several messages on one HTTP/2 stream, a bad one among them

/** Bidi streams need HTTP/2: gRPC, and Connect (binary, JSON) over h2c. */
export type StreamProtocol = "grpc" | "connect-proto" | "connect-json";
const STREAM_PROTOCOLS: readonly StreamProtocol[] = ["grpc", "connect-proto", "connect-json"];

export interface StreamFuzzTarget {
  /** Shown in failure messages. */
  name: string;
  service: DescService;
  /** http://host:port of the server (cleartext HTTP/2). */
  baseUrl: string;
  /** Bidi methods to fuzz. */
  methods: string[];
  /** Strings that pass validation, to reach deeper checks in the random messages. */
  stringSeeds?: string[];
  /** A well-formed request (protobuf JSON) the method accepts: streams start and go on with these. */
  validMessage(method: string, rng: Rng): JsonValue;
  /** Codes a method may end with besides BAD_INPUT_CODES (e.g. Unavailable, DeadlineExceeded). */
  extraCodes?: Partial<Record<string, readonly Code[]>>;
  /** Headers sent with every stream (an auth token, say). */
  headers?: Record<string, string>;
  /** RPC deadline sent with every stream (grpc-timeout, connect-timeout-ms): streams that wait end with it. */
  rpcTimeoutMs?: number;
  /** Proves the server still serves (e.g. a request on a long-lived stream of another client). */
  healthy(): Promise<void>;
}

export interface StreamFuzzCase {
  method: string;
  protocol: StreamProtocol;
  /** What the bad step is (shown in failures and the summary). */
  kind: string;
  contentType: string;
  headers?: Record<string, string>;
  /** Written in order, each a chunk on the wire (a frame may be split over several). */
  writes: Uint8Array[];
  /** Valid messages written before the bad step. */
  validBefore: number;
  /** Mid-stream: after this many writes, wait for the server's first response before going on. */
  awaitAfter?: number;
  /** Half-close after the writes; when false, the server must end the stream on its own. */
  end: boolean;
  expectHttpStatus?: number;
}

/**
 * Fuzzes bidi streams: each case opens a stream, sends valid messages, then a bad step (a malformed
 * message, bad envelope flags, a lying or huge length, a huge field, random values), sometimes more
 * valid messages, and half-closes or not. The stream must end before the deadline with OK or a
 * Connect/gRPC error that blames the request and says why; `healthy` runs every `healthEvery` cases.
 */
export async function fuzzStreams(target: StreamFuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const rng = createRng(options.seed);
  const report: FuzzReport = { cases: 0, results: {}, kinds: {}, failures: [] };
  const client = new RawStreamClient(target.baseUrl);
  const healthEvery = options.healthEvery ?? 25;
  try {
    for (const name of target.methods) {
      const method = target.service.methods.find((m) => m.name === name);
      if (!method) throw new Error(`${target.name} has no method ${name}`);
      const gen = new StreamCaseGenerator(rng, method, target);
      for (let i = 0; i < options.casesPerMethod; i++) {
        const protocol = STREAM_PROTOCOLS[i % STREAM_PROTOCOLS.length] as StreamProtocol;
        const c = gen.next(protocol);
        const outcome = await client.run(target, c, options.deadlineMs);
        report.cases++;
        report.results[outcome.result] = (report.results[outcome.result] ?? 0) + 1;
        report.kinds[c.kind] = (report.kinds[c.kind] ?? 0) + 1;
        const problem = judgeStream(target, c, outcome);
        if (problem) report.failures.push(`${problem}\n    ${describeStreamCase(c)}`);
        if (report.cases % healthEvery === 0) await checkHealthy(target, report, describeStreamCase(c));
        if (report.failures.length >= 20) return report;
      }
    }
    await checkHealthy(target, report, undefined);
    return report;
  } finally {
    client.close();
  }
}

function judgeStream(target: StreamFuzzTarget, c: StreamFuzzCase, o: FuzzOutcome): string | undefined {
  const where = `${target.name} ${c.method} stream over ${c.protocol} (${c.kind}, ${c.validBefore} valid before, ${c.end ? "half-closed" : "left open"})`;
  if (c.expectHttpStatus !== undefined) {
    return o.httpStatus === c.expectHttpStatus
      ? undefined
      : `${where}: expected HTTP ${c.expectHttpStatus}, got ${o.result}`;
  }
  if (o.result === "ok") {
    return c.end ? undefined : `${where}: a stream left open ended OK, though its client never finished it`;
  }
  if (o.code === undefined) return `${where}: no Connect/gRPC error: ${o.result} ${o.message ?? ""}`;
  const allowed = [...BAD_INPUT_CODES, ...(target.extraCodes?.[c.method] ?? [])];
  if (!allowed.includes(o.code)) return `${where}: code ${Code[o.code]}: ${o.message ?? ""}`;
  if (!o.message) return `${where}: ${Code[o.code]} without a message`;
  return undefined;
}

function describeStreamCase(c: StreamFuzzCase): string {
  const all = Buffer.concat(c.writes);
  const hex = all.subarray(0, 64).toString("hex");
  return `${c.method} ${c.protocol} ${c.kind} content-type=${c.contentType} ${c.writes.length} writes, ${all.byteLength} bytes: ${hex}${all.byteLength > 64 ? "…" : ""}`;
}

class StreamCaseGenerator {
  readonly #single: CaseGenerator;
  readonly #input: DescMessage;

  constructor(
    private readonly rng: Rng,
    private readonly method: DescMethod,
    private readonly target: StreamFuzzTarget,
  ) {
    this.#single = new CaseGenerator(rng, method, target.stringSeeds ?? []);
    this.#input = method.input;
  }

  next(protocol: StreamProtocol): StreamFuzzCase {
    const rng = this.rng;
    const json = protocol === "connect-json";
    const contentType =
      protocol === "grpc"
        ? "application/grpc"
        : json
          ? "application/connect+json"
          : "application/connect+proto";
    const validBefore = rng.chance(0.2) ? 0 : 1 + rng.int(3);
    const valid = () => this.#encode(this.target.validMessage(this.method.name, rng), json);
    const writes: Uint8Array[] = [];
    for (let i = 0; i < validBefore; i++) writes.push(...this.#split(grpcFrame(valid())));
    const prefix = writes.length;
    let kind: string;
    let end = true;
    let headers: Record<string, string> | undefined;
    let expectHttpStatus: number | undefined;
    const roll = rng.int(10);
    if (roll < 4) {
      // A single-message case of the unary fuzz (malformed, lying header, huge field, wrong type…).
      const single = this.#single.next(protocol === "grpc" ? "grpc" : protocol);
      kind = single.kind;
      headers = single.headers;
      expectHttpStatus = single.expectHttpStatus;
      if (expectHttpStatus !== undefined) {
        // A content type the method does not take: the whole stream is refused up front.
        return {
          method: this.method.name,
          protocol,
          kind,
          contentType: single.contentType,
          writes: [single.body],
          validBefore: 0,
          end: true,
          expectHttpStatus,
        };
      }
      writes.push(...this.#split(single.body));
    } else if (roll < 5) {
      kind = "bad-flags";
      writes.push(grpcFrame(valid(), rng.pick([0x02, 0x04, 0x80, 0xfe])));
      end = rng.chance(0.5);
    } else if (roll < 6) {
      kind = "compressed-without-encoding";
      writes.push(grpcFrame(valid(), 0x01));
      end = rng.chance(0.5);
    } else if (roll < 7 && !json) {
      kind = rng.pick(["invalid-tag", "invalid-utf8"]);
      const body =
        kind === "invalid-tag"
          ? Buffer.concat([valid(), new Uint8Array([0x0f, 0x01])])
          : this.#invalidUtf8(valid());
      writes.push(grpcFrame(body));
      end = rng.chance(0.5);
    } else if (roll < 8) {
      kind = "huge-declared-length";
      writes.push(grpcFrame(rng.bytes(rng.int(64)), 0, 0x7fff_fff0 - rng.int(1 << 20)));
    } else {
      kind = "random-values";
      const message = randomJson(rng, this.#input, this.target.stringSeeds ?? [], 0);
      writes.push(...this.#split(grpcFrame(this.#encode(message, json))));
    }
    if (rng.chance(0.3)) for (let i = 1 + rng.int(2); i > 0; i--) writes.push(grpcFrame(valid()));
    return {
      method: this.method.name,
      protocol,
      kind,
      contentType,
      ...(headers ? { headers } : {}),
      writes,
      validBefore,
      ...(validBefore > 0 && rng.chance(0.5) ? { awaitAfter: prefix } : {}),
      end,
    };
  }

  #encode(message: JsonValue, json: boolean): Uint8Array {
    if (json) return utf8(JSON.stringify(message));
    try {
      return toBinary(this.#input, fromJson(this.#input, message));
    } catch {
      return new Uint8Array(0);
    }
  }

  /** One chunk, or now and then the same bytes in small pieces (frames split across DATA frames). */
  #split(bytes: Uint8Array): Uint8Array[] {
    if (bytes.byteLength < 2 || bytes.byteLength > 4096 || !this.rng.chance(0.2)) return [bytes];
    const out: Uint8Array[] = [];
    for (let at = 0; at < bytes.byteLength;) {
      const n = 1 + this.rng.int(Math.min(16, bytes.byteLength - at));
      out.push(bytes.subarray(at, at + n));
      at += n;
    }
    return out;
  }

  #invalidUtf8(valid: Uint8Array): Uint8Array {
    const strings = this.#input.fields.filter((f) => f.scalar === ScalarType.STRING);
    const no = strings.length > 0 ? this.rng.pick(strings).number : 1;
    const bad = Buffer.concat([utf8("ab"), Buffer.from(this.rng.pick(INVALID_UTF8)), utf8("cd")]);
    return Buffer.concat([valid, new BinaryWriter().tag(no, WireType.LengthDelimited).bytes(bad).finish()]);
  }
}

/** Bidi streams by hand over one HTTP/2 connection: gRPC or Connect, the request bytes as given. */
class RawStreamClient {
  #session: http2.ClientHttp2Session | undefined;

  constructor(private readonly baseUrl: string) {}

  run(target: StreamFuzzTarget, c: StreamFuzzCase, deadlineMs: number): Promise<FuzzOutcome> {
    const grpc = c.protocol === "grpc";
    const headers: Record<string, string> = {
      ...target.headers,
      ...c.headers,
      "content-type": c.contentType,
      ...(grpc ? { te: "trailers" } : { "connect-protocol-version": "1" }),
    };
    if (target.rpcTimeoutMs !== undefined) {
      if (grpc) headers["grpc-timeout"] = `${target.rpcTimeoutMs}m`;
      else headers["connect-timeout-ms"] = String(target.rpcTimeoutMs);
    }
    const session = this.#connect();
    return new Promise((resolve) => {
      const stream = session.request({
        ":method": "POST",
        ":path": `/${target.service.typeName}/${c.method}`,
        ...headers,
      });
      let status: number | undefined;
      let grpcStatus: string | undefined;
      let grpcMessage = "";
      const body: Buffer[] = [];
      let streamError: Error | undefined;
      let done = false;
      let firstData: (() => void) | undefined;
      const finish = (outcome: FuzzOutcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish({ result: "hang" });
      }, deadlineMs);
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
        if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
      };
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        take(h);
      });
      stream.on("trailers", take);
      stream.on("data", (chunk: Buffer) => {
        body.push(chunk);
        firstData?.();
      });
      // Writes after the server ended the stream fail; the outcome is what the server answered.
      stream.on("error", (err) => (streamError = err));
      stream.on("close", () => {
        if (status === undefined)
          return finish({ result: `transport: ${streamError?.message ?? "no response"}` });
        if (status !== 200) {
          return finish(
            grpc
              ? { result: `http ${status}`, httpStatus: status }
              : connectErrorOutcome(status, Buffer.concat(body)),
          );
        }
        if (!grpc) return finish(connectStreamOutcome(Buffer.concat(body)));
        if (grpcStatus === undefined) return finish({ result: "transport: no grpc-status", httpStatus: 200 });
        if (grpcStatus === "0") return finish({ result: "ok", httpStatus: 200 });
        const code = Number(grpcStatus) as Code;
        finish({ result: codeName(code), httpStatus: 200, message: grpcMessage, code });
      });
      void (async () => {
        let written = 0;
        for (const chunk of c.writes) {
          if (stream.destroyed || stream.closed) return;
          stream.write(chunk);
          written++;
          if (written === c.awaitAfter && body.length === 0) {
            // Mid-stream: the bad step goes out once the server has answered the first message.
            await new Promise<void>((wake) => {
              firstData = wake;
              setTimeout(wake, 1_000).unref();
            });
          }
        }
        if (c.end && !stream.destroyed && !stream.closed) stream.end();
      })();
    });
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  #connect(): http2.ClientHttp2Session {
    if (!this.#session || this.#session.closed || this.#session.destroyed) {
      this.#session = http2.connect(this.baseUrl);
      this.#session.on("error", () => undefined);
    }
    return this.#session;
  }
}
