import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { ConsumedMessage } from "../../src/client/node.js";
import { compileFormat, parseStart } from "../../src/cmd/consume-format.js";
import { parseHeaders, readMessageFile, splitKey } from "../../src/cmd/produce-input.js";
import { InvalidArgumentError } from "../../src/errors.js";

const text = new TextEncoder();
const message: ConsumedMessage = {
  topic: "orders",
  partition: 2,
  offset: 41,
  timestamp: 1_700_000_000_000,
  key: text.encode("user1"),
  value: text.encode("hello"),
  headers: [
    { key: "a", value: text.encode("1") },
    { key: "b", value: text.encode("x,y") },
  ],
  producerId: "",
  messageId: 0,
  highWatermark: 42,
  text: () => "hello",
} as ConsumedMessage;

describe("consume --format", () => {
  it("fills kcat's fields and escapes", () => {
    assert.equal(
      compileFormat("%t/%p@%o %k=%s %T [%h] 100%%")(message),
      "orders/2@41 user1=hello 1700000000000 [a=1,b=x,y] 100%",
    );
    assert.equal(compileFormat("%k\\t%s")(message), "user1\thello");
    assert.equal(compileFormat("plain")(message), "plain");
  });

  it("refuses an unknown or dangling %", () => {
    assert.throws(() => compileFormat("%k %x"), /--format: unknown '%x'/);
    assert.throws(() => compileFormat("value %"), /--format: unknown '%'/);
  });
});

describe("consume start: --offset, --last, --from-beginning", () => {
  it("reads earliest, latest, an offset, and -n or --last n as the last n", () => {
    assert.equal(parseStart("", 0, false), "latest");
    assert.equal(parseStart("", 0, true), "earliest");
    assert.equal(parseStart("earliest", 0, true), "earliest");
    assert.equal(parseStart("17", 0, false), 17);
    assert.deepEqual(parseStart("-5", 0, false), { last: 5 });
    assert.deepEqual(parseStart("", 5, false), { last: 5 });
  });

  it("refuses contradictions and non-offsets, saying what it takes", () => {
    assert.throws(
      () => parseStart("first", 0, false),
      /--offset must be earliest, latest or an offset ≥ 0, got 'first' \(-n: the last n messages\)/,
    );
    assert.throws(() => parseStart("1.5", 0, false), InvalidArgumentError);
    assert.throws(() => parseStart("3", 2, false), /--last contradicts --offset 3/);
    assert.throws(() => parseStart("", 2, true), /--from-beginning contradicts --last/);
    assert.throws(() => parseStart("latest", 0, true), /--from-beginning contradicts --offset latest/);
  });
});

describe("produce input", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "goulette-cli-input-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("parses --header k=v, keeping '=' and ',' in the value", () => {
    assert.deepEqual(parseHeaders(["a=1", "b=x=y,z", "a=2"]), { a: "2", b: "x=y,z" });
    assert.throws(() => parseHeaders(["novalue"]), /--header must be key=value, got 'novalue'/);
    assert.throws(() => parseHeaders(["=v"]), /--header must be key=value/);
  });

  it("splits a line on the first key separator, and fails a line without one", () => {
    assert.deepEqual(splitKey("user1:hello:world", ":", "line 1"), { key: "user1", value: "hello:world" });
    assert.deepEqual(splitKey("a::b", "::", "line 1"), { key: "a", value: "b" });
    assert.deepEqual(splitKey("no key", "", "line 1"), { value: "no key" });
    assert.throws(() => splitKey("nokey", ":", "message 3"), /message 3 has no key separator ':'/);
  });

  it("reads a file as one message, and names a missing one", () => {
    const file = path.join(dir, "m.txt");
    writeFileSync(file, "line 1\nline 2\n");
    assert.equal(Buffer.from(readMessageFile(file).value).toString(), "line 1\nline 2\n");
    assert.throws(() => readMessageFile(path.join(dir, "missing")), /--file .*missing: .*ENOENT/);
  });
});
