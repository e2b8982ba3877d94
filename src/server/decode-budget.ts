import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** Bounds on what decoding one request message may build. */
export interface DecodeLimits {
  /** Estimated heap the decoded message may take, in bytes (see decodedSize). */
  maxDecodedBytes: number;
  /** Elements of repeated and map fields in the whole message, nested ones included. */
  maxElements: number;
}

/** Nesting deeper than this is refused before decoding (the decoder recurses per level). */
const MAX_DEPTH = 64;

/*
 * Heap a decoded value takes in V8 (protobuf-es v2 objects), measured with --expose-gc on Node 20 for
 * the shapes Goulette's requests have: an empty sub-message of 2 fields is ~74 bytes for 2 wire bytes,
 * an empty ProduceRecord ~130. Estimates err on the high side.
 */
const MESSAGE_BASE = 48;
const PER_FIELD = 8;
/** Every bytes, repeated or map field starts with its own empty Uint8Array, array or object. */
const PER_CONTAINER_FIELD = 16;
const LIST_SLOT = 8;
/** A Uint8Array view onto the request buffer (the bytes themselves are the request's, already held). */
const BYTES_VIEW = 96;
const STRING_BASE = 24;
const BIGINT = 24;

interface FieldInfo {
  field: DescField;
  /** Repeated or map: each occurrence is one more element. */
  list: boolean;
}

const tables = new WeakMap<DescMessage, { fields: Map<number, FieldInfo>; base: number }>();

function tableOf(desc: DescMessage): { fields: Map<number, FieldInfo>; base: number } {
  let table = tables.get(desc);
  if (!table) {
    const fields = new Map<number, FieldInfo>();
    let base = MESSAGE_BASE;
    for (const field of desc.fields) {
      fields.set(field.number, { field, list: field.fieldKind === "list" || field.fieldKind === "map" });
      base += PER_FIELD;
      const bytesScalar = field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES;
      if (bytesScalar || field.fieldKind === "list" || field.fieldKind === "map") base += PER_CONTAINER_FIELD;
    }
    table = { fields, base };
    tables.set(desc, table);
  }
  return table;
}

class Scan {
  size = 0;
  elements = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly limits: DecodeLimits,
  ) {}
}

/** Thrown inside the scan when the bytes are not valid protobuf: the decoder reports those better. */
class Malformed extends Error {}

/**
 * Walks the wire bytes of a `schema` message without building it and refuses, before the decoder
 * allocates anything, a message that would take more than `limits` once decoded: too many elements in
 * repeated fields (InvalidArgument: no Goulette request needs them), or too large an estimated decoded
 * size (ResourceExhausted). Wire size alone does not bound this: a repeated empty sub-message is 2
 * bytes on the wire and ~74 on the heap. Returns the estimate, which the caller charges to the
 * in-flight budget. Malformed bytes end the walk early; the decoder then refuses them with its message.
 */
export function decodedSize(schema: DescMessage, bytes: Uint8Array, limits: DecodeLimits): number {
  const scan = new Scan(bytes, limits);
  try {
    walk(scan, schema, 0, bytes.length, 0);
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
  }
  return scan.size;
}

function walk(scan: Scan, desc: DescMessage, start: number, end: number, depth: number): void {
  if (depth > MAX_DEPTH) {
    throw new ConnectError(`request message nests deeper than ${MAX_DEPTH} levels`, Code.InvalidArgument);
  }
  const table = tableOf(desc);
  add(scan, table.base, desc);
  const buf = scan.buf;
  let pos = start;
  while (pos < end) {
    const tag = varint(buf, pos, end);
    pos = varintEnd;
    const wireType = tag & 7;
    const info = table.fields.get(Math.floor(tag / 8));
    let length = 0;
    switch (wireType) {
      case 0:
        varint(buf, pos, end);
        length = varintEnd - pos;
        break;
      case 1:
        length = 8;
        break;
      case 5:
        length = 4;
        break;
      case 2:
        length = varint(buf, pos, end);
        pos = varintEnd;
        break;
      default:
        // Groups (3, 4) and invalid wire types: proto3 has none; the decoder explains.
        throw new Malformed();
    }
    if (pos + length > end) throw new Malformed();
    if (info) field(scan, info, wireType, pos, pos + length, depth);
    pos += length;
  }
}

function field(scan: Scan, info: FieldInfo, wireType: number, start: number, end: number, depth: number) {
  const { field } = info;
  if (info.list) {
    scan.elements++;
    if (scan.elements > scan.limits.maxElements) {
      throw new ConnectError(
        `request message has more than ${scan.limits.maxElements} elements in repeated fields ` +
          `(crossed in '${field.name}'); send fewer per request`,
        Code.InvalidArgument,
      );
    }
    add(scan, LIST_SLOT, field.parent);
  }
  if (field.fieldKind === "map") {
    // An entry: key and value, each at most a small message's worth.
    add(scan, 2 * MESSAGE_BASE + (end - start), field.parent);
    return;
  }
  if (field.message) {
    if (wireType !== 2) throw new Malformed();
    walk(scan, field.message, start, end, depth + 1);
    return;
  }
  const scalar = field.scalar ?? ScalarType.INT32; // an enum is a varint
  if (
    wireType === 2 &&
    field.fieldKind === "list" &&
    scalar !== ScalarType.STRING &&
    scalar !== ScalarType.BYTES
  ) {
    // Packed: one element per varint (a byte without its high bit ends one) or per fixed-size word.
    const count = packedCount(scan.buf, scalar, start, end);
    scan.elements += count - 1;
    const each = LIST_SLOT + (is64(scalar) ? BIGINT : 0);
    add(scan, count * each, field.parent);
    if (scan.elements > scan.limits.maxElements) {
      throw new ConnectError(
        `request message has more than ${scan.limits.maxElements} elements in repeated fields ` +
          `(crossed in '${field.name}'); send fewer per request`,
        Code.InvalidArgument,
      );
    }
    return;
  }
  if (scalar === ScalarType.STRING) add(scan, STRING_BASE + (end - start), field.parent);
  else if (scalar === ScalarType.BYTES) add(scan, end > start ? BYTES_VIEW : 0, field.parent);
  else if (is64(scalar)) add(scan, BIGINT, field.parent);
}

function add(scan: Scan, bytes: number, desc: DescMessage): void {
  scan.size += bytes;
  if (scan.size > scan.limits.maxDecodedBytes) {
    throw new ConnectError(
      `request message would take more than ${scan.limits.maxDecodedBytes} bytes of memory once decoded ` +
        `(${desc.typeName} with ${scan.elements} repeated elements so far, from ${scan.buf.length} bytes ` +
        "on the wire); send smaller requests",
      Code.ResourceExhausted,
    );
  }
}

function is64(scalar: ScalarType): boolean {
  return (
    scalar === ScalarType.INT64 ||
    scalar === ScalarType.UINT64 ||
    scalar === ScalarType.SINT64 ||
    scalar === ScalarType.FIXED64 ||
    scalar === ScalarType.SFIXED64
  );
}

function packedCount(buf: Uint8Array, scalar: ScalarType, start: number, end: number): number {
  switch (scalar) {
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.DOUBLE:
      return Math.floor((end - start) / 8);
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return Math.floor((end - start) / 4);
    default: {
      let count = 0;
      for (let i = start; i < end; i++) if (((buf[i] as number) & 0x80) === 0) count++;
      return count;
    }
  }
}

/** Where the last varint read ended (a module variable: the walk allocates nothing per field). */
let varintEnd = 0;

/** The varint at `pos`; values above 2^53 lose precision, which no length or tag reaches. */
function varint(buf: Uint8Array, pos: number, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < end && i < pos + 10; i++) {
    const byte = buf[i] as number;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      varintEnd = i + 1;
      return value;
    }
    scale *= 128;
  }
  throw new Malformed();
}
