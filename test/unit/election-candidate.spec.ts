import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCandidate, encodeCandidate } from "../../src/coordination/leader-election.js";

describe("election values", () => {
  it("carry the id and URL as JSON and read back", () => {
    const value = encodeCandidate("sentinel-1", "https://10.0.0.1:7100");
    assert.deepEqual(JSON.parse(value), { id: "sentinel-1", url: "https://10.0.0.1:7100" });
    assert.deepEqual(decodeCandidate(value), { id: "sentinel-1", url: "https://10.0.0.1:7100" });
  });

  it("read an older sentinel's bare URL as a candidate without an id", () => {
    assert.deepEqual(decodeCandidate("http://127.0.0.1:7100"), { id: "", url: "http://127.0.0.1:7100" });
    assert.equal(encodeCandidate(undefined, "http://a:1"), "http://a:1");
  });

  it("treat anything that is not {id,url} JSON as a URL rather than failing", () => {
    assert.deepEqual(decodeCandidate("{not json"), { id: "", url: "{not json" });
    assert.deepEqual(decodeCandidate('{"id":"x"}'), { id: "", url: '{"id":"x"}' });
    assert.deepEqual(decodeCandidate('{"id":7,"url":"http://a:1"}'), { id: "", url: "http://a:1" });
    assert.deepEqual(decodeCandidate("null"), { id: "", url: "null" });
  });
});
