import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { Broker } from "../../src/broker/broker.js";
import {
  Acks,
  BrokerService,
  MessageRequestSchema,
  ProduceError,
  type MessageRequest,
  type MessageResponse,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { startInProcessBroker, type InProcessBroker } from "../helpers/in-process-broker.js";
import { startInProcessSentinel, type InProcessSentinel } from "../helpers/in-process-sentinel.js";
import { freePort } from "../helpers/ports.js";
import { Pushable } from "../helpers/broker-process.js";
import {
  fuzzService,
  fuzzStreams,
  fuzzableMethods,
  type FuzzTarget,
  type Rng,
  type StreamFuzzTarget,
} from "../helpers/rpc-fuzz.js";
import { waitFor } from "../helpers/wait.js";

// A fixed seed keeps CI reproducible; GOULETTE_FUZZ_SEED=random (or a number) explores further.
const SEED =
  process.env.GOULETTE_FUZZ_SEED === "random"
    ? randomInt(2 ** 31)
    : Number(process.env.GOULETTE_FUZZ_SEED ?? 1);
const CASES = Number(process.env.GOULETTE_FUZZ_CASES ?? 300);
/** Streams per bidi method (a third per protocol). */
const STREAM_CASES = Number(process.env.GOULETTE_FUZZ_STREAM_CASES ?? 90);

/**
 * The broker's RPCs with a single request message (unary and PullMessage), fed the same random and
 * malformed requests as the sentinel's: no crash, no hang, codes that blame the request, and no change
 * to the broker's partitions (roles, epochs, log ends) for a request it refuses.
 */
describe("broker request decoding and validation under fuzzing", () => {
  let etcd: TestEtcd;
  let sentinel: InProcessSentinel;
  let node: InProcessBroker;
  let broker: Broker;

  before(async () => {
    etcd = await startEtcd();
    sentinel = await startInProcessSentinel(etcd, "broker-fuzz", { heartbeatTtlSeconds: 3600 });
    await waitFor(() => sentinel.sentinel.plane.isLeader, { what: "leadership" });
    // The topic is assigned before the broker starts, and the broker syncs with the sentinels only at
    // start: no background reconciliation changes its partitions while the fuzz watches them.
    const address = `127.0.0.1:${await freePort()}`;
    await sentinel.client.registerBroker({ brokerId: "fb1", address });
    await sentinel.client.getBrokers({ topic: "existing", replicaCount: 1, partitions: 2 });
    // The stream fuzz's own topic: the request fuzz may remove "existing" (a valid RemoveTopic is served).
    await sentinel.client.getBrokers({ topic: "streams", replicaCount: 1, partitions: 2 });
    // Replicated with a broker that never runs (fb2): where fb1 leads, a Replicate stream from "fb2"
    // opens a replication session, so the stream fuzz reaches the messages after the first.
    await sentinel.client.registerBroker({ brokerId: "fb2", address: `127.0.0.1:${await freePort()}` });
    await sentinel.client.getBrokers({ topic: "replicated", replicaCount: 2, partitions: 4 });
    node = await startInProcessBroker(sentinel.sentinel.url, "fb1", {
      address,
      maxMessageBytes: 64 * 1024,
      keepAliveIntervalMs: 3_600_000,
    });
    broker = node.broker;
    await waitFor(
      () => {
        const all = broker.partitions.all();
        const single = all.filter((p) => p.topic === "existing" || p.topic === "streams");
        const replicated = all.filter((p) => p.topic === "replicated");
        return (
          single.length === 4 &&
          single.every((p) => p.role === "leader") &&
          replicated.length === 4 &&
          replicated.every((p) => p.role === "leader" || p.role === "follower")
        );
      },
      { what: "the broker to lead its four partitions and take its roles in the replicated topic" },
    );
  });
  after(async () => {
    await node.stop();
    await sentinel.stop();
    await etcd.stop();
  });

  // Seed 745158090 found it: a Connect call answered before its body was read to the end (an error in
  // the first of two envelopes) left the rest unread, which stalled the keep-alive connection, so the
  // next call on it (this PullMessage, empty topic) was never answered.
  it("answers the next call on a keep-alive HTTP/1.1 connection after an early answer", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const deepGroups = Buffer.alloc(158_850);
      for (let i = 0; i < deepGroups.length; i += 2) deepGroups.set([0xfb, 0x3f], i);
      const envelope = Buffer.concat([connectEnvelopeHeader(deepGroups.length), deepGroups]);
      const first = await postConnect(agent, broker.address, Buffer.concat([envelope, envelope]));
      assert.match(first.end, /"code":"invalid_argument"/);
      for (let i = 0; i < 3; i++) {
        const next = await postConnect(agent, broker.address, Buffer.from("00000000061003182e3001", "hex"));
        assert.ok(next.reusedSocket, "the call went over the same connection");
        assert.match(next.end, /"code":"invalid_argument".*topic name is empty/);
      }
    } finally {
      agent.destroy();
    }
  });

  it(`survives ${CASES} cases per RPC over three protocols (seed ${SEED})`, async (t) => {
    t.diagnostic(`fuzz seed ${SEED}: GOULETTE_FUZZ_SEED=${SEED} replays this run`);
    const health = createClient(
      BrokerService,
      createConnectTransport({ baseUrl: `http://${broker.address}`, httpVersion: "1.1" }),
    );
    // Refusals a broker may rightly give to well-formed requests: not the leader, not ready, long poll over.
    const stateful = [Code.Unavailable, Code.DeadlineExceeded, Code.OutOfRange, Code.Aborted];
    const target: FuzzTarget = {
      name: "broker",
      service: BrokerService,
      baseUrl: `http://${broker.address}`,
      stringSeeds: ["existing", "fb1", broker.address, "group-1", "producer-1"],
      rpcTimeoutMs: 1_000,
      extraCodes: Object.fromEntries(fuzzableMethods(BrokerService).map((m) => [m.name, stateful])),
      fingerprint: () =>
        broker.partitions
          .all()
          .map((p) => `${p.key}:${p.role}:${p.epoch}:${p.log.logEndOffset}`)
          .sort()
          .join(","),
      healthy: async () => {
        const res = await health.health({}, { timeoutMs: 3_000 });
        assert.equal(res.brokerId, "fb1");
      },
    };
    const started = Date.now();
    const report = await fuzzService(target, { seed: SEED, casesPerMethod: CASES, deadlineMs: 5_000 });
    t.diagnostic(`${report.cases} cases in ${Date.now() - started} ms: ${JSON.stringify(report.results)}`);
    assert.deepEqual(report.failures, [], `seed ${SEED}:\n${report.failures.join("\n")}`);
    assert.equal(report.cases, CASES * fuzzableMethods(BrokerService).length, "every RPC was fuzzed");
    assert.ok((report.results.invalid_argument ?? 0) > CASES, "many requests refused as InvalidArgument");
    assert.ok((report.results.ok ?? 0) > 0, "some random requests were valid and served");
  });

  it(`survives ${STREAM_CASES} bidi streams per method over gRPC and Connect (h2c), another client's stream unharmed (seed ${SEED})`, async (t) => {
    t.diagnostic(`fuzz seed ${SEED}: GOULETTE_FUZZ_SEED=${SEED} replays this run`);
    // Another client's SendMessage stream, open for the whole run: every health check produces on it.
    const good = createClient(BrokerService, createGrpcTransport({ baseUrl: `http://${broker.address}` }));
    const requests = new Pushable<MessageRequest>();
    const responses = good.sendMessage(requests)[Symbol.asyncIterator]();
    let goodId = 0n;
    const produceOnGoodStream = async () => {
      goodId++;
      requests.push(
        create(MessageRequestSchema, {
          topic: "streams",
          partition: 0,
          producerId: "good-client",
          acks: Acks.LEADER,
          records: [{ messageId: goodId, payload: new TextEncoder().encode(`good ${goodId}`) }],
        }),
      );
      const next = await Promise.race([
        responses.next(),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("the good stream did not answer within 3 s")), 3_000).unref(),
        ),
      ]);
      assert.ok(!next.done, "the good stream is still open");
      const ack = (next.value as MessageResponse).acks[0];
      assert.equal(ack?.error, ProduceError.NONE, ack?.errorMessage);
      assert.equal(ack?.messageId, goodId);
    };
    const health = createClient(
      BrokerService,
      createConnectTransport({ baseUrl: `http://${broker.address}`, httpVersion: "1.1" }),
    );
    // Replicate as fb2 to a partition fb1 leads (a real session), now and then to one it does not.
    const led = broker.partitions.all().filter((p) => p.topic === "replicated" && p.role === "leader");
    t.diagnostic(`fb1 leads ${led.length} of the 4 replicated partitions`);
    const replicateTo = (rng: Rng): JsonObject => {
      const p = led.length > 0 && rng.chance(0.8) ? rng.pick(led) : undefined;
      return {
        topic: p ? "replicated" : "streams",
        partition: p ? p.partition : rng.int(2),
        followerId: "fb2",
        fetchOffset: String(rng.int(3)),
        epoch: String(p ? p.epoch : 1),
      };
    };
    // ReplicateSession as fb2: start, acknowledge or remove partitions (led by fb1 or not).
    const sessionMessage = (rng: Rng): JsonObject => {
      const { followerId = "fb2", topic = "streams", partition = 0, ...position } = replicateTo(rng);
      return {
        followerId,
        fetches: [{ topic, partition, ...position, start: rng.chance(0.5) }],
        removed: rng.chance(0.2) ? [{ topic, partition }] : [],
      };
    };
    const target: StreamFuzzTarget = {
      name: "broker",
      service: BrokerService,
      baseUrl: `http://${broker.address}`,
      methods: ["SendMessage", "Replicate", "ReplicateSession"],
      stringSeeds: ["streams", "replicated", "fb1", "fb2", "producer-1"],
      rpcTimeoutMs: 2_000,
      // Replicate from a broker that is no follower is Unavailable; a stream may outlive its deadline.
      extraCodes: {
        SendMessage: [Code.Unavailable, Code.DeadlineExceeded],
        Replicate: [Code.Unavailable, Code.DeadlineExceeded, Code.OutOfRange],
        // A session fails only on a malformed message; refused partitions are answered inside it.
        ReplicateSession: [Code.DeadlineExceeded],
      },
      validMessage: (method, rng): JsonObject =>
        method === "SendMessage"
          ? {
              topic: "streams",
              partition: rng.int(2),
              producerId: `fuzz-${rng.int(4)}`,
              acks: rng.pick(["ACKS_LEADER", "ACKS_ALL"]),
              records: [{ messageId: String(1 + rng.int(1_000_000)), payload: "ZnV6eg==" }],
            }
          : method === "Replicate"
            ? replicateTo(rng)
            : sessionMessage(rng),
      healthy: async () => {
        await produceOnGoodStream();
        const res = await health.health({}, { timeoutMs: 3_000 });
        assert.equal(res.brokerId, "fb1");
      },
    };
    const started = Date.now();
    try {
      const report = await fuzzStreams(target, {
        seed: SEED,
        casesPerMethod: STREAM_CASES,
        deadlineMs: 5_000,
      });
      t.diagnostic(
        `${report.cases} streams in ${Date.now() - started} ms: ${JSON.stringify(report.results)}`,
      );
      t.diagnostic(`bad steps: ${JSON.stringify(report.kinds)}`);
      assert.deepEqual(report.failures, [], `seed ${SEED}:\n${report.failures.join("\n")}`);
      assert.equal(report.cases, STREAM_CASES * target.methods.length, "every bidi method was fuzzed");
      assert.ok(
        (report.results.invalid_argument ?? 0) > STREAM_CASES / 2,
        "many streams refused as InvalidArgument",
      );
      assert.ok((report.results.ok ?? 0) > 0, "some streams were valid and served");
      assert.ok(goodId > 0n, "the good stream was checked");
    } finally {
      requests.end();
      await responses.return?.();
    }
  });
});

function connectEnvelopeHeader(length: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(length, 1);
  return header;
}

/** A Connect PullMessage over one agent's connection; the end-stream message as text. */
function postConnect(
  agent: http.Agent,
  address: string,
  body: Buffer,
): Promise<{ end: string; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `http://${address}/goulette.v1.BrokerService/PullMessage`,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
        signal: AbortSignal.timeout(5_000),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            end: Buffer.concat(chunks).subarray(5).toString("utf8"),
            reusedSocket: req.reusedSocket,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
