import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  consumerMode,
  fetchStart,
  staticPartitions,
  validateOptions,
  validateTopics,
  type ConsumerOptions,
} from "../../src/client/consumer-options.js";
import type { ClientTransport } from "../../src/client/transport.js";
import { InvalidArgumentError } from "../../src/errors.js";

const transport = {} as ClientTransport;
const options = (extra: Partial<ConsumerOptions>): ConsumerOptions => ({
  sentinels: ["http://127.0.0.1:1"],
  transport,
  topic: "t",
  ...extra,
});

describe("consumer options", () => {
  it("joins a group unless partitions are chosen statically; peeks without a group", () => {
    assert.equal(consumerMode({}), "peek");
    assert.equal(consumerMode({ group: "" }), "peek");
    assert.equal(consumerMode({ group: "g" }), "group");
    assert.equal(consumerMode({ group: "g", partitions: [0] }), "static");
    assert.equal(consumerMode({ group: "g", member: { index: 0, count: 2 } }), "static");
  });

  it("chooses a static consumer's partitions of every topic, refusing ones a topic lacks", () => {
    const counts = new Map([
      ["a", 4],
      ["b", 3],
    ]);
    assert.deepEqual(
      staticPartitions(counts, { member: { index: 1, count: 2 } }).map((p) => `${p.topic}/${p.partition}`),
      ["a/1", "a/3", "b/1"],
    );
    assert.deepEqual(
      staticPartitions(counts, {}).map((p) => `${p.topic}/${p.partition}`),
      ["a/0", "a/1", "a/2", "a/3", "b/0", "b/1", "b/2"],
    );
    assert.throws(
      () => staticPartitions(counts, { partitions: [3] }),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.message === "topic b has 3 partitions; there is no 3",
    );
  });

  it("starts a fetch at the committed offset in a group, else where `from` says", () => {
    assert.deepEqual(fetchStart("initial", undefined, "g", "earliest"), {
      kind: "committed",
      otherwise: "earliest",
    });
    assert.deepEqual(fetchStart("initial", undefined, "", 42), { kind: "offset", offset: 42 });
    assert.deepEqual(fetchStart("initial", undefined, "", { last: 5 }), { kind: "last", count: 5 });
    assert.deepEqual(fetchStart("initial", undefined, "", "latest"), { kind: "latest" });
    assert.deepEqual(fetchStart("resume", 17, "g", "latest"), { kind: "offset", offset: 17 });
    assert.deepEqual(fetchStart("resume", undefined, "g", "latest"), {
      kind: "committed",
      otherwise: "latest",
    });
    assert.deepEqual(fetchStart("seek", 17, "g", "latest", { kind: "earliest" }), { kind: "earliest" });
  });

  it("refuses bad options with a message naming them", () => {
    assert.throws(
      () => validateTopics(options({ topics: ["a", "a"], topic: undefined })),
      /lists a topic twice/,
    );
    assert.throws(() => validateTopics(options({ topics: ["a"] })), /`topic` or `topics`, not both/);
    assert.throws(
      () => validateOptions(options({ from: -1 }), "peek"),
      /from must be "earliest", "latest", an offset ≥ 0 or \{ last: n ≥ 0 \}, got -1/,
    );
    assert.throws(
      () => validateOptions(options({ group: "g", sessionTimeoutMs: 1_000 }), "group"),
      /sessionTimeoutMs must be 2000–300000, got 1000/,
    );
    assert.throws(
      () => validateOptions(options({ instanceId: "pod-0" }), "peek"),
      /instanceId needs group membership; a consumer without a group does not join/,
    );
    validateOptions(options({ group: "g", instanceId: "pod-0", from: { last: 3 } }), "group");
  });
});
