import { toBinary } from "@bufbuild/protobuf";
import { ENVELOPE_HEADER_BYTES } from "../common/grpc-frame.js";
import {
  delimitedSize,
  varintSize,
  writeBytes,
  writeString,
  writeVarint,
  writeVarintField,
} from "../common/protobuf-wire.js";
import {
  ReplicateResponseSchema,
  SessionPartitionAnswerSchema,
  type SessionPartitionAnswer,
} from "../gen/goulette/v1/broker_pb.js";

/**
 * A ReplicateSessionResponse encoded into one buffer sized up front, inside its 5-byte stream envelope,
 * with each partition's `frames` — the bulk of it, the leader's stored records as they are — copied
 * once, from the tail cache or the read buffer, into the response. Through protobuf-es and Connect the
 * same bytes are copied about five times into fresh buffers (encoded-responses.ts), once per follower.
 * The small rest of each answer (high watermark, epochs, consumer offsets, errors) is encoded by
 * protobuf-es, so the bytes are exactly toBinary's for the whole message: fields 1–8 by protobuf-es,
 * then `frames`, then `log_start_offset` and `log_start_moved` (the only fields numbered after it), and
 * `data` is followed only by the error fields, which are unset whenever `data` is set
 * (test/unit/session-encoding.spec.ts compares the two).
 *
 *   ReplicateSessionResponse: partitions = 1
 *   SessionPartitionAnswer:   topic = 1, partition = 2, data = 3, error_code = 4, error_message = 5
 *   ReplicateResponse:        records = 1 … offsets_snapshot = 8, frames = 9, log_start_offset = 10,
 *                             log_start_moved = 11
 */

const RESPONSE_PARTITIONS = 0x0a;
const ANSWER_TOPIC = 0x0a;
const ANSWER_PARTITION = 0x10;
const ANSWER_DATA = 0x1a;
const DATA_FRAMES = 0x4a;
const DATA_LOG_START = 0x50;
const DATA_LOG_START_MOVED = 0x58;
const NO_FRAMES = new Uint8Array(0);

/** An answer as planned before the buffer is sized: encoded whole, or around its frames. */
type PlannedAnswer =
  | { kind: "whole"; bytes: Uint8Array }
  | {
      kind: "frames";
      answer: SessionPartitionAnswer;
      /** The answer's ReplicateResponse without its frames and log start. */
      head: Uint8Array;
      frames: Uint8Array;
      logStartOffset: number;
      logStartMoved: boolean;
      dataSize: number;
      size: number;
    };

function plan(answer: SessionPartitionAnswer): PlannedAnswer {
  const data = answer.data;
  if (
    data === undefined ||
    data.frames.length === 0 ||
    answer.errorCode !== 0 ||
    answer.errorMessage !== ""
  ) {
    return { kind: "whole", bytes: toBinary(SessionPartitionAnswerSchema, answer) };
  }
  const head = toBinary(ReplicateResponseSchema, {
    ...data,
    frames: NO_FRAMES,
    logStartOffset: 0n,
    logStartMoved: false,
  });
  const logStartOffset = Number(data.logStartOffset);
  const logStartMoved = data.logStartMoved;
  const dataSize =
    head.length +
    delimitedSize(data.frames.length) +
    (logStartOffset === 0 ? 0 : 1 + varintSize(logStartOffset)) +
    (logStartMoved ? 2 : 0);
  const topicBytes = Buffer.byteLength(answer.topic, "utf8");
  const size =
    (topicBytes === 0 ? 0 : delimitedSize(topicBytes)) +
    (answer.partition === 0 ? 0 : 1 + varintSize(answer.partition)) +
    delimitedSize(dataSize);
  return {
    kind: "frames",
    answer,
    head,
    frames: data.frames,
    logStartOffset,
    logStartMoved,
    dataSize,
    size,
  };
}

/** The ReplicateSessionResponse of these answers as one uncompressed stream envelope (flags 0, u32 length). */
export function encodeSessionEnvelope(answers: readonly SessionPartitionAnswer[]): Buffer {
  const planned = answers.map(plan);
  let size = 0;
  for (const p of planned) size += delimitedSize(p.kind === "whole" ? p.bytes.length : p.size);

  const buf = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + size);
  buf[0] = 0;
  buf.writeUInt32BE(size, 1);
  let pos = ENVELOPE_HEADER_BYTES;
  for (const p of planned) {
    if (p.kind === "whole") {
      pos = writeBytes(buf, pos, RESPONSE_PARTITIONS, p.bytes);
      continue;
    }
    buf[pos++] = RESPONSE_PARTITIONS;
    pos = writeVarint(buf, pos, p.size);
    if (p.answer.topic.length !== 0) pos = writeString(buf, pos, ANSWER_TOPIC, p.answer.topic);
    pos = writeVarintField(buf, pos, ANSWER_PARTITION, p.answer.partition);
    buf[pos++] = ANSWER_DATA;
    pos = writeVarint(buf, pos, p.dataSize);
    buf.set(p.head, pos);
    pos += p.head.length;
    pos = writeBytes(buf, pos, DATA_FRAMES, p.frames);
    pos = writeVarintField(buf, pos, DATA_LOG_START, p.logStartOffset);
    if (p.logStartMoved) {
      buf[pos++] = DATA_LOG_START_MOVED;
      buf[pos++] = 1;
    }
  }
  if (pos !== buf.length) throw new Error(`session response encoded to ${pos} bytes, sized ${buf.length}`);
  return buf;
}
