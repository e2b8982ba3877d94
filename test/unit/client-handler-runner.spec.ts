import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { runHandlers, type HandlerRunnerHost } from "../../src/client/handler-runner.js";
import { MessageBuffer } from "../../src/client/message-buffer.js";
import type { ConsumedMessage } from "../../src/client/messages.js";
import type { PartitionFetcher } from "../../src/client/partition-fetcher.js";
import { PartitionState, type FetchRun, type Fetched } from "../../src/client/partition-state.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A consumer reduced to what run()'s loop sees: a real MessageBuffer of fetched messages for a few real
 * PartitionStates, each with a fetch run that the test can stop (as a revocation does).
 */
function consumerOf(partitions: number[], capacity = 100) {
  const buffer = new MessageBuffer<Fetched>(capacity);
  const states = new Map<number, PartitionState>();
  for (const partition of partitions) {
    const state = new PartitionState({ topic: "t", partition, epoch: 0 });
    state.run = newRun(state);
    states.set(partition, state);
  }
  let closed = false;
  const refetched: string[] = [];
  const next = new Map<number, number>();
  const host: HandlerRunnerHost = {
    start: async () => undefined,
    closed: () => closed,
    suspended: () => false,
    take: (max) => buffer.takeAvailable(max).filter((item) => host.deliverable(item)),
    deliverable: (item) => item.run.state.run === item.run,
    handOut: (item) => {
      item.seq = item.run.state.seq;
      item.run.state.handedOut(item.message.offset);
      return item.message;
    },
    bufferCapacity: () => buffer.capacity,
    whenAvailable: (signal) => buffer.whenAvailable(signal),
    whenResumed: async () => undefined,
    refetch: (key) => refetched.push(key),
  };
  /** Fetches `count` more messages of `partition` into the buffer. */
  const fetch = (partition: number, count: number) => {
    const state = states.get(partition) as PartitionState;
    for (let i = 0; i < count; i++) {
      const offset = next.get(partition) ?? 0;
      next.set(partition, offset + 1);
      assert.ok(buffer.tryPut({ message: message(partition, offset), run: state.run as FetchRun, seq: 0 }));
    }
  };
  return { host, states, fetch, refetched, close: () => (closed = true) };
}

function newRun(state: PartitionState): FetchRun {
  return {
    state,
    abort: new AbortController(),
    fetcher: undefined as unknown as PartitionFetcher,
    done: Promise.resolve(),
  };
}

function message(partition: number, offset: number): ConsumedMessage {
  return {
    topic: "t",
    partition,
    offset,
    timestamp: 0,
    key: new Uint8Array(),
    value: new Uint8Array(),
    headers: [],
    producerId: "",
    messageId: 0,
    highWatermark: offset + 1,
    text: () => "",
  };
}

/** A handler whose calls the test finishes one by one. */
function handHandler() {
  const running: { m: ConsumedMessage; finish: (err?: Error) => void }[] = [];
  const handler = (m: ConsumedMessage) =>
    new Promise<void>((resolve, reject) => {
      running.push({ m, finish: (err) => (err ? reject(err) : resolve()) });
    });
  const finish = (partition: number, offset: number, err?: Error) => {
    const i = running.findIndex((r) => r.m.partition === partition && r.m.offset === offset);
    assert.notEqual(i, -1, `handler of ${partition}/${offset} is running`);
    const [call] = running.splice(i, 1);
    call?.finish(err);
  };
  return { handler, running, finish };
}

describe("runHandlers (Consumer.run's loop)", () => {
  it("runs up to the limit at once, never two of one partition, each partition in offset order", async () => {
    const { host, states, fetch } = consumerOf([0, 1, 2]);
    fetch(0, 3);
    fetch(1, 2);
    fetch(2, 1);
    const { handler, running, finish } = handHandler();
    const stop = new AbortController();
    const done = runHandlers(host, handler, 2, stop.signal);

    await waitFor(() => running.length === 2, { what: "two handlers" });
    assert.deepEqual(
      running.map((r) => `${r.m.partition}/${r.m.offset}`),
      ["0/0", "1/0"],
      "the limit, one per partition",
    );
    finish(0, 0);
    await waitFor(() => running.length === 2, { what: "the next handler" });
    assert.ok(
      running.every((r, i, all) => all.findIndex((o) => o.m.partition === r.m.partition) === i),
      "never two handlers of one partition",
    );
    const order: string[] = ["0/0"];
    while (order.length < 6) {
      const r = running[0];
      assert.ok(r);
      order.push(`${r.m.partition}/${r.m.offset}`);
      finish(r.m.partition, r.m.offset);
      await waitFor(() => running.length > 0 || order.length === 6, { what: "more handlers" });
    }
    for (const p of [0, 1, 2]) {
      const offsets = order.filter((o) => o.startsWith(`${p}/`)).map((o) => Number(o.split("/")[1]));
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
        `partition ${p} in offset order`,
      );
    }
    await waitFor(() => states.get(0)?.processed === 3, { what: "partition 0 processed" });
    assert.equal(states.get(1)?.processed, 2);
    assert.equal(states.get(2)?.processed, 1);
    stop.abort();
    await done;
  });

  it("a handler that throws ends run with its error once the others settled, leaving its message unprocessed", async () => {
    const { host, states, fetch, refetched } = consumerOf([0, 1]);
    fetch(0, 2);
    fetch(1, 1);
    const { handler, running, finish } = handHandler();
    const done = runHandlers(host, handler, 2, new AbortController().signal);
    await waitFor(() => running.length === 2, { what: "two handlers" });
    const boom = new Error("handler failed");
    finish(0, 0, boom);
    // The loop waits for the running handler of partition 1 before it ends.
    let ended = false;
    void done.catch(() => undefined).then(() => (ended = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(ended, false, "waits for the running handler");
    finish(1, 0);
    await assert.rejects(done, (err) => err === boom);
    assert.equal(states.get(0)?.processed, undefined, "the failed message is not processed");
    assert.equal(states.get(1)?.processed, 1);
    assert.deepEqual(refetched, ["t/0"], "partition 0's queued message is fetched again");
  });

  it("a message whose partition was revoked after it was taken is not handed out", async () => {
    const { host, states, fetch } = consumerOf([0]);
    fetch(0, 2);
    const { handler, running, finish } = handHandler();
    const stop = new AbortController();
    const done = runHandlers(host, handler, 1, stop.signal);
    await waitFor(() => running.length === 1, { what: "the first handler" });
    const state = states.get(0) as PartitionState;
    state.run = undefined; // revoked: the fetch run that took offset 1 stopped
    finish(0, 0);
    await waitFor(() => state.processed === 1, { what: "offset 0 processed" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(running.length, 0, "offset 1 is not handed out");
    stop.abort();
    await done;
  });

  it("hands out nothing more once the session is in doubt, even in the middle of a pass", async () => {
    const { host, fetch } = consumerOf([0, 1, 2]);
    fetch(0, 1);
    fetch(1, 1);
    fetch(2, 1);
    // The process "wakes up from a freeze" right after the first hand-out: suspended from then on.
    let suspended = false;
    let resume: () => void = () => undefined;
    const handOut = host.handOut;
    host.suspended = () => suspended;
    host.handOut = (item) => {
      suspended = true;
      return handOut(item);
    };
    host.whenResumed = (signal) =>
      new Promise<void>((resolve) => {
        resume = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    const { handler, running, finish } = handHandler();
    const stop = new AbortController();
    const done = runHandlers(host, handler, 3, stop.signal);
    await waitFor(() => running.length === 1, { what: "the first handler" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(running.length, 1, "the two others wait, though the limit allows three");
    suspended = false;
    host.handOut = handOut;
    resume();
    await waitFor(() => running.length === 3, { what: "the others, once resumed" });
    for (const r of [...running]) finish(r.m.partition, r.m.offset);
    stop.abort();
    await done;
  });

  it("ends when the consumer closes, with nothing refetched", async () => {
    const { host, fetch, refetched, close } = consumerOf([0]);
    fetch(0, 2);
    const { handler, running, finish } = handHandler();
    const done = runHandlers(host, handler, 1, new AbortController().signal);
    await waitFor(() => running.length === 1, { what: "the first handler" });
    close();
    finish(0, 0);
    await done;
    assert.deepEqual(refetched, []);
  });
});
