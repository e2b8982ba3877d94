import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";

import { readAnswer } from "../../src/broker/replication-leader.js";
import { serveReplicateSession } from "../../src/broker/replication-session-leader.js";
import { encodeSessionEnvelope } from "../../src/broker/session-encoding.js";
import {
  ReplicateSessionRequestSchema,
  ReplicateSessionResponseSchema,
  SessionPartitionAnswerSchema,
  type SessionPartitionAnswer,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { EncodedEnvelopes } from "../../src/common/encoded-envelopes.js";
import { RECORD_MAGIC } from "../../src/storage/index.js";
import { leadWithFollowerB2, openTestPartition, temporaryDirs } from "../helpers/test-partition.js";
import { patternedBytes as bytes } from "../helpers/patterned-bytes.js";

const tempDir = temporaryDirs("goulette-session-encoding-");

function answer(
  init: Parameters<typeof create<typeof SessionPartitionAnswerSchema>>[1],
): SessionPartitionAnswer {
  return create(SessionPartitionAnswerSchema, init);
}

function assertSameAsProtobufEs(answers: SessionPartitionAnswer[]): void {
  const envelope = encodeSessionEnvelope(answers);
  const expected = toBinary(
    ReplicateSessionResponseSchema,
    create(ReplicateSessionResponseSchema, { partitions: answers }),
  );
  assert.equal(envelope[0], 0, "uncompressed envelope");
  assert.equal(envelope.readUInt32BE(1), expected.length, "envelope length");
  assert.deepEqual(new Uint8Array(envelope.subarray(5)), expected);
  const decoded = fromBinary(ReplicateSessionResponseSchema, envelope.subarray(5));
  assert.deepEqual(
    decoded.partitions.map((a) => a.data?.frames.length ?? -1),
    answers.map((a) => a.data?.frames.length ?? -1),
  );
}

describe("ReplicateSessionResponse encoded around stored frames", () => {
  it("writes the same bytes as protobuf-es: frames of every length-prefix width, with the fields around them", () => {
    const full = {
      highWatermark: 2n ** 40n,
      epoch: 7n,
      offsets: [{ consumerGroup: "g", topic: "orders", partition: 3, offset: 99n, memberEpoch: 2n }],
      leaderEpochs: [
        { epoch: 6n, startOffset: 0n },
        { epoch: 7n, startOffset: 1_000n },
      ],
      offsetsVersion: 12n,
      offsetsSnapshot: true,
      // The fields numbered after frames: written after them.
      logStartOffset: 2n ** 33n + 5n,
      logStartMoved: true,
    };
    assertSameAsProtobufEs([
      answer({ topic: "orders", partition: 3, data: { ...full, frames: bytes(100, 1) } }),
      answer({ topic: "orders", partition: 4, data: { frames: bytes(20_000, 2) } }),
      answer({ topic: "orders", partition: 6, data: { frames: bytes(30, 4), logStartMoved: true } }),
      answer({ topic: "orders", partition: 5, data: { ...full, frames: bytes(3_000_000, 3) } }),
    ]);
  });

  it("encodes answers without frames as protobuf-es does: records, truncations, errors, keep-alives", () => {
    assertSameAsProtobufEs([]);
    assertSameAsProtobufEs([
      answer({
        topic: "t",
        partition: 1,
        data: {
          records: [{ offset: 5n, timestamp: 9n, payload: bytes(300, 4), producerId: "p", messageId: 1n }],
          highWatermark: 6n,
        },
      }),
      answer({ topic: "t", partition: 2, data: { truncateTo: 0n, highWatermark: 4n, epoch: 3n } }),
      answer({ topic: "t", partition: 3, errorCode: 14, errorMessage: "not a follower here" }),
      answer({ topic: "t", partition: 4, data: { frames: bytes(10, 5) } }),
    ]);
  });

  it("omits defaults and encodes multi-byte UTF-8 and the widest partition numbers", () => {
    assertSameAsProtobufEs([
      answer({ topic: "", partition: 0, data: { frames: bytes(50, 6) } }),
      answer({ topic: "tópico-✓-𝄞", partition: 0xffff_ffff, data: { frames: bytes(200, 7), epoch: 1n } }),
    ]);
  });

  it("copies frames that are views into a larger buffer (the tail cache) from where they start", () => {
    const backing = Buffer.from(bytes(8_192, 8));
    assertSameAsProtobufEs([answer({ topic: "t", data: { frames: backing.subarray(1_000, 5_000) } })]);
  });
});

describe("a leader's session with pre-encoded answers", () => {
  it("queues each answer encoded, its frames the leader's stored bytes, and yields a placeholder in its place", async () => {
    const leader = await openTestPartition(await tempDir());
    await leadWithFollowerB2(leader);
    await leader.log.append(
      Array.from({ length: 20 }, (_, i) => ({
        payload: bytes(1_000 + i, i),
        producerId: "p1",
        messageId: BigInt(i + 1),
      })),
    );
    const expected = await readAnswer(leader, 0, undefined, {
      maxRecords: 1_000,
      maxBytes: 1 << 20,
      frames: true,
    });
    assert.ok(expected.response.frames.length > 20_000);

    const encoded = new EncodedEnvelopes();
    const abort = new AbortController();
    const first = create(ReplicateSessionRequestSchema, {
      followerId: "b2",
      frameFormat: RECORD_MAGIC,
      fetches: [{ topic: "t", partition: 0, fetchOffset: 0n, epoch: 1n, start: true }],
    });
    // The follower's stream stays open until the test ends it.
    let endRequests: () => void = () => undefined;
    const requests = (async function* () {
      yield first;
      await new Promise<void>((resolve) => (endRequests = resolve));
    })();
    const session = serveReplicateSession(
      { lookup: () => leader, idleResponseMs: 60_000 },
      requests,
      abort.signal,
      encoded,
    );
    try {
      let frames: Uint8Array | undefined;
      while (frames === undefined) {
        const { value, done } = await session.next();
        assert.equal(done, false, "the session ended before answering");
        assert.deepEqual(toBinary(ReplicateSessionResponseSchema, value), new Uint8Array(0), "a placeholder");
        const envelope = encoded.substitute(new Uint8Array(5));
        assert.ok(envelope.length > 5, "the encoded answer was queued before its placeholder");
        const response = fromBinary(ReplicateSessionResponseSchema, envelope.subarray(5));
        frames = response.partitions.find((a) => (a.data?.frames.length ?? 0) > 0)?.data?.frames;
      }
      assert.deepEqual(frames, expected.response.frames);
    } finally {
      endRequests();
      abort.abort();
      await session.return(undefined);
      await leader.close();
    }
  });
});
