import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, equals, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { decodeFetchResponse } from "../../src/client/fetch-decoding.js";
import {
  FetchResponseSchema,
  MessageSchema,
  type FetchResponse,
} from "../../src/gen/goulette/v1/broker_pb.js";

/** A small seeded generator (mulberry32): the same cases on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXTS = ["", "t", "orders.eu-west", "données-🎉", "x".repeat(300)];
const INT64S = [0n, 1n, -1n, 127n, 128n, 2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n)];
const UINT64S = [0n, 1n, 300n, 2n ** 64n - 1n];

function randomResponse(next: () => number): FetchResponse {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const bytes = (max: number) => Uint8Array.from({ length: Math.floor(next() * max) }, () => next() * 256);
  return create(FetchResponseSchema, {
    topic: pick(TEXTS),
    partition: pick([0, 1, 4_294_967_295]),
    highWatermark: pick(INT64S),
    logStartOffset: pick(INT64S),
    messages: Array.from({ length: Math.floor(next() * 6) }, () => ({
      topic: pick(TEXTS),
      partition: pick([0, 7]),
      offset: pick(INT64S),
      timestamp: pick(INT64S),
      key: bytes(20),
      payload: bytes(2_000),
      headers: Array.from({ length: Math.floor(next() * 3) }, () => ({ key: pick(TEXTS), value: bytes(10) })),
      producerId: pick(TEXTS),
      messageId: pick(UINT64S),
      highWatermark: pick(INT64S),
    })),
  });
}

/** Both decoders agree; the hand one's bytes fields are views onto the input. */
function assertSameAsProtobufEs(bytes: Uint8Array, what: string): void {
  const expected = fromBinary(FetchResponseSchema, bytes, { readUnknownFields: false });
  const actual = decodeFetchResponse(bytes);
  assert.ok(
    equals(FetchResponseSchema, actual, expected),
    `${what}: ${JSON.stringify(toJson(FetchResponseSchema, actual))} != ${JSON.stringify(toJson(FetchResponseSchema, expected))}`,
  );
  // Same shape too: no field missing or extra (equals compares through the schema).
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), what);
  actual.messages.forEach((m, i) => {
    assert.deepEqual(Object.keys(m).sort(), Object.keys(expected.messages[i] ?? {}).sort(), what);
    if (m.payload.length > 0) assert.equal(m.payload.buffer, bytes.buffer, `${what}: payload is a view`);
  });
}

describe("decodeFetchResponse (the SDK's hand decoder of fetched records)", () => {
  it("gives what protobuf-es's fromBinary gives, over 500 generated responses", () => {
    const next = random(20261207);
    for (let i = 0; i < 500; i++) {
      const response = randomResponse(next);
      assertSameAsProtobufEs(toBinary(FetchResponseSchema, response), `case ${i}`);
    }
  });

  it("skips unknown fields of every wire type, at the top and inside records and headers", () => {
    const unknown = (w: BinaryWriter) =>
      w
        .tag(15, WireType.Varint)
        .uint64(2n ** 63n)
        .tag(16, WireType.LengthDelimited)
        .bytes(new Uint8Array([1, 2, 3]))
        .tag(17, WireType.Bit64)
        .fixed64(9n)
        .tag(18, WireType.Bit32)
        .fixed32(7);
    const header = unknown(new BinaryWriter().tag(1, WireType.LengthDelimited).string("h")).finish();
    const record = unknown(
      new BinaryWriter()
        .tag(3, WireType.Varint)
        .int64(42n)
        .tag(7, WireType.LengthDelimited)
        .bytes(header)
        .tag(6, WireType.LengthDelimited)
        .bytes(new Uint8Array([9, 9])),
    ).finish();
    const response = unknown(
      new BinaryWriter()
        .tag(1, WireType.LengthDelimited)
        .string("t")
        .tag(3, WireType.LengthDelimited)
        .bytes(record),
    ).finish();
    assertSameAsProtobufEs(response, "unknown fields");
    const decoded = decodeFetchResponse(response);
    assert.equal(decoded.messages[0]?.offset, 42n);
    assert.equal(decoded.messages[0]?.headers[0]?.key, "h");
  });

  it("merges as protobuf does: a field seen twice keeps the last value, records accumulate", () => {
    const next = random(7);
    const a = toBinary(FetchResponseSchema, randomResponse(next));
    const b = toBinary(FetchResponseSchema, randomResponse(next));
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    assertSameAsProtobufEs(both, "two responses back to back");
    // A record whose fields come out of order and twice.
    const record = toBinary(
      MessageSchema,
      create(MessageSchema, { offset: 5n, payload: new Uint8Array([1]) }),
    );
    const again = new BinaryWriter().tag(3, WireType.Varint).int64(6n).finish();
    const merged = new Uint8Array(record.length + again.length);
    merged.set(again);
    merged.set(record, again.length);
    const response = new BinaryWriter().tag(3, WireType.LengthDelimited).bytes(merged).finish();
    assertSameAsProtobufEs(response, "record fields out of order");
    assert.equal(decodeFetchResponse(response).messages[0]?.offset, 5n);
  });

  it("throws on a truncated response, as protobuf-es does", () => {
    const response = randomResponse(random(3));
    response.messages.push(create(MessageSchema, { payload: new Uint8Array(100), producerId: "p" }));
    const bytes = toBinary(FetchResponseSchema, response);
    let checked = 0;
    for (const cut of [1, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const truncated = bytes.subarray(0, cut);
      let expected: unknown;
      try {
        fromBinary(FetchResponseSchema, truncated);
      } catch (err) {
        expected = err;
      }
      if (expected === undefined) continue; // a cut that happens to fall between fields
      assert.throws(() => decodeFetchResponse(truncated), `cut at ${cut} of ${bytes.length}`);
      checked++;
    }
    assert.ok(checked >= 2, `only ${checked} cuts made protobuf-es throw`);
  });
});
