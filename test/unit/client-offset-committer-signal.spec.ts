import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import { createRouterTransport } from "@connectrpc/connect";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { OffsetCommitter, type CommitTarget } from "../../src/client/offset-committer.js";
import type { TopicMetadata } from "../../src/client/topic-metadata.js";
import type { ClientTransport } from "../../src/client/transport.js";

const PARTITIONS = 12;

describe("OffsetCommitter and the consumer's signal", () => {
  it("a commit round over many partitions adds no listener per partition to the long-lived signal", async () => {
    let inFlight = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const broker = createRouterTransport(({ service }) => {
      service(BrokerService, {
        async commitOffset() {
          inFlight++;
          await gate;
          return {};
        },
      });
    });
    const transport: ClientTransport = {
      sentinel: () => broker,
      broker: () => broker,
      produceMode: "unary",
      forget: () => undefined,
      close: () => undefined,
    };
    const partitions = Array.from({ length: PARTITIONS }, (_, partition) => ({
      partition,
      leaderId: "b1",
      address: "127.0.0.1:1",
      replicas: ["b1"],
      epoch: 1n,
    }));
    // Only `current` is read by a round that succeeds.
    const metadata = { current: { topic: "t", version: 1n, partitions } } as unknown as TopicMetadata;
    const committer = new OffsetCommitter({
      group: "g",
      transport,
      headers: {},
      metadata: () => metadata,
      emit: () => undefined,
      onFenced: () => undefined,
    });
    const consumer = new AbortController();
    const targets = (): CommitTarget[] =>
      partitions.map((p) => ({ topic: "t", partition: p.partition, offset: 5, epoch: 1 }));
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const round = committer.commit(targets, {
        signal: consumer.signal,
        throwOnError: true,
        closing: false,
      });
      while (inFlight < PARTITIONS) await new Promise((resolve) => setImmediate(resolve));
      // Connect links each call to the signal it is given: one listener per call was 12 here.
      assert.ok(
        getEventListeners(consumer.signal, "abort").length <= 1,
        `${getEventListeners(consumer.signal, "abort").length} abort listeners on the consumer's signal`,
      );
      release();
      assert.equal(await round, true);
      assert.equal(committer.commits, PARTITIONS);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning"),
        [],
      );
    } finally {
      process.off("warning", onWarning);
    }
  });
});
