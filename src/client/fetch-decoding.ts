import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { HeaderSchema, type FetchResponse, type Message } from "../gen/goulette/v1/broker_pb.js";

/**
 * FetchResponse decoded field by field with protobuf-es's own BinaryReader, without its reflection
 * (a field lookup, a type check and a generic setter per field of every record): a consumer reads
 * hundreds of records per response, about 1.1 µs each through fromBinary and 0.2 µs here
 * (`npm run bench -- decode`). For every well-formed message the result is what
 * `fromBinary(FetchResponseSchema, bytes, { readUnknownFields: false })` gives — the same reader, the
 * same defaults, bytes fields as views onto `bytes`, unknown fields skipped — which
 * test/unit/client-fetch-decoding.spec.ts checks against it; a malformed one throws. Keep the field
 * numbers in step with proto/goulette/v1/broker.proto.
 */
export function decodeFetchResponse(bytes: Uint8Array): FetchResponse {
  const reader = new BinaryReader(bytes);
  // A literal, not create(FetchResponseSchema): with the reflective object the whole decode ran at a
  // third of this speed (npm run bench -- decode).
  const out: FetchResponse = {
    $typeName: "goulette.v1.FetchResponse",
    topic: "",
    partition: 0,
    messages: [],
    highWatermark: 0n,
    logStartOffset: 0n,
  };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 3) out.messages.push(readMessage(reader));
    else if (field === 1) out.topic = reader.string();
    else if (field === 2) out.partition = reader.uint32();
    else if (field === 4) out.highWatermark = reader.int64() as bigint;
    else if (field === 5) out.logStartOffset = reader.int64() as bigint;
    else reader.skip(wireType, field);
  }
  return out;
}

function readMessage(reader: BinaryReader): Message {
  const length = reader.uint32();
  const end = reader.pos + length;
  const message: Message = {
    $typeName: "goulette.v1.Message",
    topic: "",
    partition: 0,
    offset: 0n,
    timestamp: 0n,
    key: EMPTY,
    payload: EMPTY,
    headers: [],
    producerId: "",
    messageId: 0n,
    highWatermark: 0n,
  };
  while (reader.pos < end) {
    const [field, wireType] = reader.tag();
    // By field number, as protobuf-es reads a known field whatever its wire type says.
    switch (field) {
      case 1:
        message.topic = reader.string();
        break;
      case 2:
        message.partition = reader.uint32();
        break;
      case 3:
        message.offset = reader.int64() as bigint;
        break;
      case 4:
        message.timestamp = reader.int64() as bigint;
        break;
      case 5:
        message.key = reader.bytes();
        break;
      case 6:
        message.payload = reader.bytes();
        break;
      case 7:
        // Rare: protobuf-es decodes them (its views onto `bytes` as well).
        message.headers.push(fromBinary(HeaderSchema, reader.bytes(), { readUnknownFields: false }));
        break;
      case 8:
        message.producerId = reader.string();
        break;
      case 9:
        message.messageId = reader.uint64() as bigint;
        break;
      case 10:
        message.highWatermark = reader.int64() as bigint;
        break;
      default:
        reader.skip(wireType, field);
    }
  }
  if (reader.pos !== end) throw new Error("premature EOF in goulette.v1.Message");
  return message;
}

/** Shared by every absent bytes field: zero-length, so nobody can write into it. */
const EMPTY = new Uint8Array(0);
