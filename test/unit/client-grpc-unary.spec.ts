import assert from "node:assert/strict";
import http2 from "node:http2";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelope, unaryResponseMessage } from "../../src/common/grpc-frame.js";
import { networkError, resetError, responseError } from "../../src/client/grpc-unary-status.js";
import { isConnectionFailure, toClientError } from "../../src/client/errors.js";
import { OverloadedError, RETRY_AFTER_HEADER, UnauthenticatedError } from "../../src/errors.js";

const OK_HEADERS = {
  ":status": 200,
  "content-type": "application/grpc+proto",
} as unknown as http2.IncomingHttpHeaders;

function expectConnectError(err: ConnectError | undefined, code: Code, message: RegExp): ConnectError {
  assert.ok(err instanceof ConnectError, "expected a ConnectError");
  assert.equal(err.code, code, `code of "${err.rawMessage}"`);
  assert.match(err.rawMessage, message);
  return err;
}

describe("the lean gRPC client's framing", () => {
  it("reads back the one message an envelope carries", () => {
    const message = Buffer.from("a protobuf message");
    const body = envelope(message);
    assert.equal(body.length, 5 + message.length);
    assert.deepEqual(Buffer.from(unaryResponseMessage(body, 1024) as Uint8Array), message);
    assert.equal(unaryResponseMessage(Buffer.alloc(0), 1024), undefined, "an empty body has no message");
    assert.equal(
      unaryResponseMessage(envelope(new Uint8Array(0)), 1024)?.length,
      0,
      "an empty message is one",
    );
  });

  it("refuses what Connect's client refuses: truncated, compressed, a second message, too large", () => {
    const body = envelope(Buffer.from("abcdef"));
    const fail = (bytes: Buffer, max = 1024) => {
      try {
        unaryResponseMessage(bytes, max);
      } catch (err) {
        return err as ConnectError;
      }
      assert.fail("accepted");
    };
    expectConnectError(fail(body.subarray(0, 3)), Code.Internal, /incomplete envelope/);
    expectConnectError(fail(body.subarray(0, body.length - 1)), Code.Internal, /incomplete envelope/);
    const compressed = Buffer.from(body);
    compressed[0] = 1;
    expectConnectError(fail(compressed), Code.Internal, /flags 0x1/);
    expectConnectError(fail(Buffer.concat([body, body])), Code.Unimplemented, /extra output message/);
    expectConnectError(
      fail(body, 5),
      Code.ResourceExhausted,
      /message size 6 is larger than configured readMaxBytes 5/,
    );
  });
});

describe("the lean gRPC client's errors", () => {
  it("takes grpc-status 0 in the trailers (or a trailers-only answer) as success", () => {
    assert.equal(responseError(OK_HEADERS, { "grpc-status": "0" }), undefined);
    assert.equal(responseError({ ...OK_HEADERS, "grpc-status": "0" }, undefined), undefined);
  });

  it("maps a trailers-only refusal to its code and decoded message, as a typed SDK error", () => {
    const err = expectConnectError(
      responseError(
        { ...OK_HEADERS, "grpc-status": "16", "grpc-message": "missing%20credentials%3A%20no%20token" },
        undefined,
      ),
      Code.Unauthenticated,
      /^missing credentials: no token$/,
    );
    const typed = toClientError(err);
    assert.ok(typed instanceof UnauthenticatedError);
    assert.equal(typed.message, "missing credentials: no token");
  });

  it("carries the trailers' retry hint to the SDK's OverloadedError", () => {
    const err = expectConnectError(
      responseError(OK_HEADERS, {
        "grpc-status": String(Code.ResourceExhausted),
        "grpc-message": "too many topic creations pending",
        [RETRY_AFTER_HEADER]: "250",
      }),
      Code.ResourceExhausted,
      /too many topic creations/,
    );
    assert.equal(err.metadata.get(RETRY_AFTER_HEADER), "250");
    const typed = toClientError(err);
    assert.ok(typed instanceof OverloadedError);
    assert.equal(typed.retryAfterMs, 250);
    assert.equal(typed.retryable, true);
  });

  it("maps what is not a gRPC answer: HTTP errors, another content type, no status", () => {
    expectConnectError(
      responseError({ ":status": 503 } as unknown as http2.IncomingHttpHeaders, undefined),
      Code.Unavailable,
      /HTTP 503/,
    );
    expectConnectError(
      responseError({ ":status": 404 } as unknown as http2.IncomingHttpHeaders, undefined),
      Code.Unimplemented,
      /HTTP 404/,
    );
    expectConnectError(
      responseError({ ...OK_HEADERS, "content-type": "text/html" }, undefined),
      Code.Unknown,
      /unsupported content type text\/html/,
    );
    expectConnectError(responseError(OK_HEADERS, undefined), Code.Internal, /missing trailers/);
    expectConnectError(responseError(OK_HEADERS, { "x-other": "1" }), Code.Internal, /missing status/);
    expectConnectError(
      responseError(OK_HEADERS, { "grpc-status": "99" }),
      Code.Internal,
      /invalid grpc-status: 99/,
    );
  });

  it("maps resets and network failures to the codes the SDK fails over on", () => {
    const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INTERNAL_ERROR } =
      http2.constants;
    expectConnectError(resetError(NGHTTP2_REFUSED_STREAM), Code.Unavailable, /0x7/);
    expectConnectError(resetError(NGHTTP2_CANCEL), Code.Canceled, /0x8/);
    expectConnectError(resetError(NGHTTP2_ENHANCE_YOUR_CALM), Code.ResourceExhausted, /0xb/);
    expectConnectError(resetError(NGHTTP2_INTERNAL_ERROR), Code.Internal, /0x2/);

    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const cancelled = Object.assign(new Error("The pending stream has been canceled"), {
      code: "ERR_HTTP2_STREAM_CANCEL",
      cause: refused,
    });
    const unreachable = expectConnectError(networkError(cancelled), Code.Unavailable, /pending stream/);
    assert.equal(unreachable.cause, cancelled);
    assert.ok(isConnectionFailure(unreachable), "a refused connection is a connection failure");
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expectConnectError(networkError(reset), Code.Aborted, /ECONNRESET/);
  });
});
