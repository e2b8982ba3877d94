import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Consumer,
  FailedPreconditionError,
  InvalidArgumentError,
  Producer,
  createNodeTransport,
  type ClientTransport,
  type ConsumedMessage,
} from "../../src/index.js";
import { BrokerStatus } from "../../src/gen/goulette/v1/common_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { freePort } from "../helpers/ports.js";
import { runGoulette, type GouletteRun } from "../helpers/goulette-process.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Listeners (docs/kubernetes.md, "Reaching Goulette from outside"): every broker advertises two
 * addresses, its internal one and an "external" one that is a TCP proxy on another loopback port (what
 * a per-broker LoadBalancer or NodePort Service is in Kubernetes). The first sentinel is also reachable
 * through a proxy that its --listener-hosts names as external, like an external sentinel Service.
 *
 * A client on the external listener must dial only the proxies; a default client only the internal
 * addresses; replication between brokers stays on the internal addresses (the proxies are cut while it
 * is checked); an unknown listener is a clear error, never an empty address.
 */

const BROKERS = ["b1", "b2", "b3"];

/** A transport that records every broker address the client dials. */
function recording(dialled: Set<string>): ClientTransport {
  const inner = createNodeTransport();
  return { ...inner, broker: (address) => (dialled.add(address), inner.broker(address)) };
}

async function consumeAll(consumer: Consumer, count: number): Promise<ConsumedMessage[]> {
  const messages: ConsumedMessage[] = [];
  while (messages.length < count) {
    const message = await consumer.receive({ timeoutMs: 20_000 });
    assert.ok(message, `only ${messages.length} of ${count} messages arrived`);
    messages.push(message);
  }
  return messages;
}

const goulette = (args: string[]): Promise<GouletteRun> => runGoulette(args);

describe("listeners: a client outside the cluster dials the brokers' external addresses", () => {
  let cluster: TestCluster;
  const externalPorts = new Map<string, number>();
  /** Each broker's --advertise-listeners value, read at every (re)start. */
  const advertised = new Map<string, string>();
  const proxies = new Map<string, TcpProxy>();
  let sentinelProxy: TcpProxy;
  /** The first sentinel, through the host its --listener-hosts calls external. */
  let externalSentinelUrl: string;
  const external = (id: string) => `127.0.0.1:${externalPorts.get(id)}`;
  const externalAddresses = () => new Set(BROKERS.map(external));
  const internalAddresses = () => new Set(BROKERS.map((id) => cluster.brokerAddress(id)));
  const accepted = () => [...proxies.values()].reduce((sum, p) => sum + p.accepted, 0);
  const sentinelClient = (url: string): Client<typeof SentinelService> =>
    createClient(SentinelService, createGrpcTransport({ baseUrl: url }));

  before(async () => {
    for (const id of BROKERS) {
      externalPorts.set(id, await freePort());
      advertised.set(id, `external=${external(id)}`);
    }
    const sentinelProxyPort = await freePort();
    externalSentinelUrl = `http://127.0.0.1:${sentinelProxyPort}`;
    cluster = await startCluster({
      sentinels: 2,
      brokers: BROKERS.length,
      // acks=all then means every replica has the records: replication is checked by every ack.
      brokerArgs: ["--min-insync-replicas", "3"],
      brokerArgsFor: (id) => ["--advertise-listeners", advertised.get(id) ?? ""],
      sentinelArgs: ["--listener-hosts", `external=127.0.0.1:${sentinelProxyPort}`],
    });
    // The proxies start on the ports the brokers advertise; nothing dials them before the tests do.
    for (const id of BROKERS) {
      proxies.set(
        id,
        await startTcpProxy({ target: cluster.brokerAddress(id), port: externalPorts.get(id) as number }),
      );
    }
    const firstSentinel = new URL(cluster.sentinelUrls[0] as string).host;
    sentinelProxy = await startTcpProxy({ target: firstSentinel, port: sentinelProxyPort });
  });
  after(async () => {
    for (const proxy of proxies.values()) await proxy.close();
    await sentinelProxy?.close();
    await cluster?.stop();
  });

  it("every sentinel answers GetBrokers and GetClusterStatus with the addresses of the listener asked for", async () => {
    const created = await cluster
      .sentinel()
      .getBrokers({ topic: "ext", partitions: 3, replicaCount: 3, listener: "external" });
    assert.equal(created.partitions.length, 3);
    for (const sentinel of cluster.sentinels.values()) {
      const onExternal = await sentinel.client.getBrokers({ topic: "ext", listener: "external" });
      assert.deepEqual(
        new Set(onExternal.brokers.map((b) => b.address)),
        externalAddresses(),
        `${sentinel.id}: external listener`,
      );
      for (const b of onExternal.brokers) assert.equal(b.address, external(b.brokerId));
      for (const listener of ["", "internal"]) {
        const res = await sentinel.client.getBrokers({ topic: "ext", listener });
        assert.deepEqual(
          new Set(res.brokers.map((b) => b.address)),
          internalAddresses(),
          `${sentinel.id}: listener '${listener}'`,
        );
      }
      const status = await sentinel.client.getClusterStatus({ listener: "external" });
      for (const b of status.brokers) {
        assert.equal(b.address, external(b.brokerId));
        assert.deepEqual(
          b.listeners.map((l) => [l.name, l.address]),
          [["external", external(b.brokerId)]],
        );
      }
    }
  });

  it("a client with listener 'external' produces and consumes through the proxies only", async () => {
    const before = new Map([...proxies].map(([id, p]) => [id, p.accepted]));
    const dialled = new Set<string>();
    const transport = recording(dialled);
    const producer = new Producer({
      sentinels: cluster.sentinelUrls,
      listener: "external",
      transport,
      topic: "ext",
      acks: "all",
    });
    const consumer = new Consumer({
      sentinels: cluster.sentinelUrls,
      listener: "external",
      transport,
      topic: "ext",
      from: "earliest",
    });
    try {
      const count = 600;
      const acks = await Promise.all(
        Array.from({ length: count }, (_, i) => producer.send({ key: `k${i % 37}`, value: `m${i}` })),
      );
      assert.equal(acks.length, count);
      const messages = await consumeAll(consumer, count);
      assert.deepEqual(new Set(messages.map((m) => m.text())), new Set(acks.map((_, i) => `m${i}`)));
      // In order per partition: offsets 0, 1, 2… with nothing skipped.
      const next = new Map<number, number>();
      for (const m of messages) {
        assert.equal(m.offset, next.get(m.partition) ?? 0, `partition ${m.partition}`);
        next.set(m.partition, m.offset + 1);
      }
    } finally {
      await producer.close();
      await consumer.close();
      transport.close();
    }
    assert.ok(dialled.size > 0);
    for (const address of dialled) {
      assert.ok(externalAddresses().has(address), `the external client dialled ${address}, not a proxy`);
      assert.ok(!internalAddresses().has(address));
    }
    const leaders = new Set((await cluster.layout("ext")).partitions.map((p) => p.leader));
    for (const id of leaders) {
      assert.ok(
        (proxies.get(id) as TcpProxy).accepted > (before.get(id) ?? 0),
        `the proxy of partition leader ${id} carried no connection`,
      );
    }
  });

  it("a client calling the sentinel through its external host gets the external addresses without the option", async () => {
    const viaProxy = sentinelClient(externalSentinelUrl);
    const implicit = await viaProxy.getBrokers({ topic: "ext" });
    assert.deepEqual(new Set(implicit.brokers.map((b) => b.address)), externalAddresses());
    const explicit = await viaProxy.getBrokers({ topic: "ext", listener: "internal" });
    assert.deepEqual(new Set(explicit.brokers.map((b) => b.address)), internalAddresses(), "the option wins");

    // A new topic through the first sentinel: forwarded to the leader when it follows, listener included.
    const dialled = new Set<string>();
    const transport = recording(dialled);
    const producer = new Producer({
      sentinels: [externalSentinelUrl],
      transport,
      topic: "implicit",
      createTopic: { partitions: 2, replicas: 3 },
    });
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send({ value: `i${i}` })));
    } finally {
      await producer.close();
      transport.close();
    }
    assert.ok(dialled.size > 0);
    for (const address of dialled) assert.ok(externalAddresses().has(address), `dialled ${address}`);
  });

  it("a default client dials the internal addresses, and replication never goes through the proxies", async () => {
    for (const proxy of proxies.values()) proxy.setMode("drop");
    const dialled = new Set<string>();
    const transport = recording(dialled);
    const producer = new Producer({ sentinels: cluster.sentinelUrls, transport, topic: "ext", acks: "all" });
    const consumer = new Consumer({
      sentinels: cluster.sentinelUrls,
      transport,
      topic: "ext",
      from: "earliest",
    });
    try {
      // min-insync-replicas 3: each ack needs both followers to have fetched from the leader.
      await Promise.all(Array.from({ length: 200 }, (_, i) => producer.send({ value: `d${i}` })));
      const messages = await consumeAll(consumer, 800);
      assert.equal(messages.filter((m) => m.text().startsWith("d")).length, 200);
    } finally {
      await producer.close();
      await consumer.close();
      transport.close();
      for (const proxy of proxies.values()) proxy.setMode("forward");
    }
    assert.ok(dialled.size > 0);
    for (const address of dialled) assert.ok(internalAddresses().has(address), `dialled ${address}`);
  });

  it("an unknown listener is FAILED_PRECONDITION naming the broker's listeners; a malformed name is refused", async () => {
    await assert.rejects(
      cluster.sentinel().getBrokers({ topic: "ext", listener: "public" }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.FailedPrecondition);
        assert.match(err.rawMessage, /has no listener 'public' \(it advertises: internal, external\)/);
        return true;
      },
    );
    await assert.rejects(cluster.sentinel().getClusterStatus({ listener: "public" }), /no listener 'public'/);
    await assert.rejects(cluster.sentinel().getBrokers({ topic: "ext", listener: "Public!" }), /lowercase/);

    const producer = new Producer({ sentinels: cluster.sentinelUrls, listener: "public", topic: "ext" });
    const consumer = new Consumer({ sentinels: cluster.sentinelUrls, listener: "public", topic: "ext" });
    try {
      await assert.rejects(
        producer.send({ value: "x" }),
        /no listener 'public' \(it advertises: internal, external\)/,
      );
      await assert.rejects(consumer.receive({ timeoutMs: 10_000 }), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError, String(err));
        assert.match(err.message, /no listener 'public'/);
        return true;
      });
    } finally {
      await producer.close();
      await consumer.close();
    }
    assert.throws(
      () => new Producer({ sentinels: cluster.sentinelUrls, listener: "EXTERNAL", topic: "ext" }),
      InvalidArgumentError,
    );
  });

  it("the CLI takes --listener: admin status shows the external addresses, produce and consume use them", async () => {
    const sentinel = ["--sentinel", cluster.sentinelUrls.join(",")];
    const status = await goulette(["admin", "status", ...sentinel, "--listener", "external", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const brokers = (JSON.parse(status.stdout) as { brokers: { brokerId: string; address: string }[] })
      .brokers;
    assert.deepEqual(new Set(brokers.map((b) => b.address)), externalAddresses());
    const table = await goulette(["admin", "status", ...sentinel]);
    assert.match(table.stdout, /LISTENERS/);
    assert.match(table.stdout, new RegExp(`external=${external("b1")}`));

    const before = accepted();
    const produced = await goulette([
      "produce",
      ...sentinel,
      "--listener",
      "external",
      "--topic",
      "cli",
      "a",
      "b",
      "c",
    ]);
    assert.equal(produced.code, 0, produced.stderr);
    const consumed = await goulette([
      "consume",
      ...sentinel,
      "--listener",
      "external",
      "--topic",
      "cli",
      "--offset",
      "earliest",
      "--max",
      "3",
    ]);
    assert.equal(consumed.code, 0, consumed.stderr);
    assert.deepEqual(consumed.stdout.split("\n").filter(Boolean).sort(), ["a", "b", "c"]);
    assert.ok(accepted() > before, "the CLI's connections went through the proxies");

    const unknown = await goulette(["produce", ...sentinel, "--listener", "public", "--topic", "cli", "x"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no listener 'public'/);
  });

  it("a registration that lost the listeners (as an older sentinel leader records it) is repaired by the broker", async () => {
    const client = cluster.sentinel();
    const address = cluster.brokerAddress("b2");
    const beat = { brokerId: "b2", address, status: BrokerStatus.HEALTHY };
    // KeepAlive tells a broker whose listeners differ, without unregistering it.
    const stale = await client.keepAlive({ ...beat, listeners: [] });
    assert.equal(stale.registered, true);
    assert.equal(stale.listenersChanged, true);
    const fresh = await client.keepAlive({
      ...beat,
      listeners: [{ name: "external", address: external("b2") }],
    });
    assert.equal(fresh.listenersChanged, false);

    await client.registerBroker({ brokerId: "b2", address }); // recorded without listeners
    await assert.rejects(
      client.getClusterStatus({ listener: "external" }),
      /broker 'b2' has no listener 'external' \(it advertises: internal\)/,
    );
    // The broker's next KeepAlive says listeners_changed; it registers them again.
    await waitFor(
      async () => {
        const status = await client.getClusterStatus({ listener: "external" });
        return status.brokers.find((b) => b.brokerId === "b2")?.address === external("b2");
      },
      { timeoutMs: 10_000, what: "b2 to register its listeners again" },
    );
  });

  it("a broker restarted with other listeners re-registers them, and every sentinel answers the new ones", async () => {
    const moved = await freePort();
    const backup = await freePort();
    advertised.set("b3", `external=127.0.0.1:${moved},backup=127.0.0.1:${backup}`);
    await cluster.restartBroker("b3");
    for (const sentinel of cluster.sentinels.values()) {
      await waitFor(
        async () => {
          const status = await sentinel.client.getClusterStatus({ listener: "external" });
          const b3 = status.brokers.find((b) => b.brokerId === "b3");
          return (
            b3?.address === `127.0.0.1:${moved}` &&
            b3.listeners.map((l) => l.name).join(",") === "backup,external"
          );
        },
        { timeoutMs: 15_000, what: `${sentinel.id} to answer b3's new listeners` },
      );
    }
    const status = await cluster.sentinel().getClusterStatus({});
    const digests = await Promise.all(
      [...cluster.sentinels.values()].map(async (s) => (await s.client.getClusterStatus({})).stateDigest),
    );
    assert.equal(new Set(digests).size, 1, "every sentinel holds the same state");
    assert.equal(status.brokers.find((b) => b.brokerId === "b3")?.address, cluster.brokerAddress("b3"));
  });
});
